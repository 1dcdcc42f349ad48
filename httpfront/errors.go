package httpfront

import (
	"strconv"

	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// status maps a domain error code to its HTTP status and OpenAI error type.
// It is the only place that decides statuses.
func status(code string) (int, string) {
	switch code {
	case hermes.EInvalid, hermes.EPreviousNotFound, hermes.EContextLength, hermes.EModelNotVision:
		return fasthttp.StatusBadRequest, "invalid_request_error"
	case hermes.EUnauthorized:
		return fasthttp.StatusUnauthorized, "invalid_request_error"
	case hermes.ENotFound, hermes.EModelNotFound:
		return fasthttp.StatusNotFound, "invalid_request_error"
	case hermes.EMethodNotAllowed:
		return fasthttp.StatusMethodNotAllowed, "invalid_request_error"
	case hermes.EForbidden:
		return fasthttp.StatusForbidden, "invalid_request_error"
	case hermes.EConflict, hermes.EConversationBusy:
		return fasthttp.StatusConflict, "invalid_request_error"
	case hermes.ETooLarge:
		return fasthttp.StatusRequestEntityTooLarge, "invalid_request_error"
	case hermes.EHeaderTooLarge:
		return fasthttp.StatusRequestHeaderFieldsTooLarge, "invalid_request_error"
	case hermes.ERequestTimeout:
		return fasthttp.StatusRequestTimeout, "invalid_request_error"
	case hermes.ERateLimited:
		return fasthttp.StatusTooManyRequests, "rate_limit_error"
	case hermes.EUpstream:
		return fasthttp.StatusBadGateway, "server_error"
	case hermes.ETimeout:
		return fasthttp.StatusGatewayTimeout, "server_error"
	case hermes.EUnavailable:
		return fasthttp.StatusServiceUnavailable, "server_error"
	case hermes.ECancelled:
		return 499, "server_error"
	}
	return fasthttp.StatusInternalServerError, "server_error"
}

// wireCode is the envelope's code field: the domain code, except that the
// generic invalid_request_error code is null, as OpenAI sends it.
func wireCode(e *hermes.Error) string {
	if e.Code == hermes.EInvalid {
		return ""
	}
	return e.Code
}

// appendErrorObject appends {"message","type","param","code"}.
func appendErrorObject(b []byte, e *hermes.Error) []byte {
	_, typ := status(e.Code)
	b = append(b, `{"message":`...)
	b = appendString(b, e.Message)
	b = append(b, `,"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"param":`...)
	b = appendNullString(b, e.Param)
	b = append(b, `,"code":`...)
	b = appendNullString(b, wireCode(e))
	return append(b, '}')
}

// writeError answers with the OpenAI error envelope and the mapped status.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	e := hermes.AsError(err)
	st, _ := status(e.Code)
	if e.RetryAfter > 0 {
		secs := int(e.RetryAfter.Seconds() + 0.999)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
	}
	if st >= 500 || st == 499 {
		// A failed agent run may have had side effects: clients must not
		// silently start a second one.
		ctx.Response.Header.Set("x-should-retry", "false")
	}
	if st == 499 {
		st = fasthttp.StatusRequestTimeout
	}
	ctx.SetStatusCode(st)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(appendErrorEnvelope(ctx.Response.Body()[:0], e))
}

// appendErrorEnvelope appends {"error":{…}}.
func appendErrorEnvelope(b []byte, e *hermes.Error) []byte {
	b = append(b, `{"error":`...)
	b = appendErrorObject(b, e)
	return append(b, '}')
}
