package httpfront

import (
	"crypto/sha256"
	"encoding/hex"

	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// maxIdempotencyKey bounds the header; longer keys are a client bug.
const maxIdempotencyKey = 255

// idempotent wraps a POST handler with Idempotency-Key handling: the same
// key (per principal and route) with the same body replays the first
// answer byte for byte and runs nothing; concurrent duplicates wait for the
// first; a different body under the key is a 409. Streams are not replayed
// (they are not bytes one can store before they end) and run as usual.
func (s *Server) idempotent(route string, next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		key := ctx.Request.Header.Peek("Idempotency-Key")
		if len(key) == 0 {
			next(ctx)
			return
		}
		if len(key) > maxIdempotencyKey {
			writeError(ctx, hermes.InvalidParam("Idempotency-Key", "Idempotency-Key is longer than %d bytes", maxIdempotencyKey))
			return
		}
		sum := sha256.Sum256(ctx.PostBody())
		fp := hex.EncodeToString(sum[:])
		scoped := principal(ctx) + "|" + route + "|" + string(key)
		for {
			if s.replay(ctx, scoped, fp) {
				return
			}
			release, wait := s.rt.BeginFlight(scoped)
			if release == nil {
				<-wait // the first request with this key finished: look again
				continue
			}
			defer release()
			if s.replay(ctx, scoped, fp) { // it finished between our look and our claim
				return
			}
			next(ctx)
			if ctx.IsBodyStream() || ctx.Response.StatusCode() >= 500 || ctx.Response.StatusCode() == 429 {
				return // failures and rate limits are not remembered: a retry may run
			}
			e := &hermes.IdempotencyEntry{Fingerprint: fp, Status: ctx.Response.StatusCode(),
				ContentType: string(ctx.Response.Header.ContentType()), Body: append([]byte(nil), ctx.Response.Body()...)}
			if err := s.rt.SaveIdempotency(scoped, e); err != nil {
				s.log.Error("storing idempotency entry failed", "err", err)
			}
			return
		}
	}
}

// replay answers from a stored entry; it reports whether it answered.
func (s *Server) replay(ctx *fasthttp.RequestCtx, key, fp string) bool {
	e, ok, err := s.rt.Idempotency(key)
	if err != nil || !ok {
		return false
	}
	if e.Fingerprint != fp {
		writeError(ctx, &hermes.Error{Code: hermes.EConflict, Param: "Idempotency-Key",
			Message: "Idempotency-Key was already used with a different request body"})
		return true
	}
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType(e.ContentType)
	ctx.Response.Header.Set("Idempotent-Replayed", "true")
	ctx.Response.SetBodyRaw(e.Body)
	return true
}
