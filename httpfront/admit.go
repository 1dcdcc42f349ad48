package httpfront

import (
	"bytes"
	"crypto/subtle"
	"io"
	"slices"
	"sync/atomic"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// A request is admitted from its request line and headers alone, before its
// body is read: fasthttp used to allocate the declared Content-Length
// (rounded up to a power of two) before the first body byte arrived and
// before auth ran, so 300 unauthenticated connections declaring 10 MB each
// took the process to 4.8 GB. The server streams request bodies
// (StreamRequestBody); HeaderReceived keeps fasthttp from reading more than
// one body byte before the handler runs; the middleware refuses, leaves a
// body no route takes unread, or reserves the body's size from the shared
// memory budget and reads the body itself within the body limit.

// refusedReadTimeout bounds how long a connection whose request will be
// refused may take to deliver the one body byte fasthttp reads before the
// refusal is written.
const refusedReadTimeout = 5 * time.Second

// bodyReadChunk is the first allocation for a body: a body's buffer grows
// with the bytes that arrive, never with what Content-Length declares.
const bodyReadChunk = 64 << 10

// admit decides whether a request may go on, from its headers and the raw
// path the router matches: the Host, the origin, the key, the path's shape
// and the declared body size. It reads nothing and writes nothing.
func (s *Server) admit(h *fasthttp.RequestHeader, path []byte) *hermes.Error {
	// The health routes answer any Host: a supervisor's probe may name the
	// machine however it likes, and {"status":"ok"} tells a page nothing.
	if !s.hosts.allows(h.Host()) && !healthPath(path) {
		return errHostNotAllowed()
	}
	if o := h.Peek("Origin"); len(o) > 0 && !s.origins[string(o)] {
		return hermes.Errorf(hermes.EForbidden, "Origin %s is not allowed (API_SERVER_CORS_ORIGINS)", o)
	}
	if h.IsOptions() {
		return nil // a preflight carries no key; the middleware answers it
	}
	if !s.authorized(h, path) {
		return hermes.Errorf(hermes.EUnauthorized, "Invalid API key")
	}
	if ambiguousPath(path) {
		return hermes.Errorf(hermes.EInvalid, "The request path may not contain encoded slashes, encoded dots or dot segments")
	}
	if limit := s.bodyLimit(h, path); h.ContentLength() > limit {
		return hermes.Errorf(hermes.ETooLarge, "Request body exceeds the limit of %d bytes", limit)
	}
	return nil
}

// authorized checks the bearer key in constant time. Only the health
// routes are open, and only when the raw path, the one the router matches,
// is exactly theirs: fasthttp's Path() decodes and normalises, so
// /v1/responses/..%2F..%2Fhealth reads as /health there while the router
// sends it to /v1/responses/{id}.
func (s *Server) authorized(h *fasthttp.RequestHeader, path []byte) bool {
	if s.authHdr == nil || healthPath(path) {
		return true
	}
	return subtle.ConstantTimeCompare(h.Peek("Authorization"), s.authHdr) == 1
}

// healthPath reports whether the raw path is exactly a health route's.
func healthPath(path []byte) bool {
	return bytes.Equal(path, []byte("/health")) || bytes.Equal(path, []byte("/v1/health"))
}

// ambiguousPath reports whether a raw path holds an encoded slash or
// backslash, an encoded dot, a backslash or a dot segment: each reads one
// way decoded and another way raw. No route or id of the API needs them.
func ambiguousPath(p []byte) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		switch {
		case p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F' || p[i+2] == 'e' || p[i+2] == 'E'),
			p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C'):
			return true
		}
	}
	if bytes.IndexByte(p, '\\') >= 0 {
		return true
	}
	for seg := range bytes.SplitSeq(p, []byte("/")) {
		if bytes.Equal(seg, []byte(".")) || bytes.Equal(seg, []byte("..")) {
			return true
		}
	}
	return false
}

// hasBody reports whether the request announces a body (a length above
// zero, or chunked).
func hasBody(h *fasthttp.RequestHeader) bool {
	cl := h.ContentLength()
	return cl > 0 || cl == -1
}

// headerReceived runs once a request's headers are in, before fasthttp
// reads its body. A streamed body is prefetched up to the request's limit
// (at most 8 KiB) before the handler runs; a limit of one byte hands the body
// to the middleware at once, so budget and refusals are decided before the
// rest arrives. A request that will be refused also gets a short deadline
// for that byte.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if !hasBody(h) {
		return fasthttp.RequestConfig{}
	}
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	// The same parse fasthttp gives the router, so this is the path it matches.
	if uri.Parse(h.Host(), h.RequestURI()) != nil || s.admit(h, uri.PathOriginal()) != nil {
		return fasthttp.RequestConfig{MaxRequestBodySize: 1, ReadTimeout: refusedReadTimeout}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: 1}
}

// expect answers "Expect: 100-continue" before the client sends its body:
// a refused request gets its error envelope, and never a 100 Continue.
// fasthttp asks ExpectHandlers to leave the response alone, but when the
// answer is not 100 it writes the response as it stands and closes the
// connection; TestSecurityErrorHeadersEveryLayer checks that the envelope
// and headers set here arrive.
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	path := ctx.Request.URI().PathOriginal()
	e := s.admit(&ctx.Request.Header, path)
	// An upload is streamed to disk, not held: it takes nothing of the budget.
	if e == nil && !s.isUpload(&ctx.Request.Header, path) && !s.budget.fits(bodyReservation(&ctx.Request.Header, s.opts.MaxBodyBytes)) {
		e = errBodyBudget()
	}
	if e == nil {
		return fasthttp.StatusContinue
	}
	start := time.Now()
	rid := s.commonHeaders(ctx)
	writeError(ctx, e)
	s.logRequest(ctx, rid, start)
	return ctx.Response.StatusCode()
}

// bodyReservation is what a body may take of the budget: its declared
// length, or the whole limit for a chunked body whose length is unknown.
func bodyReservation(h *fasthttp.RequestHeader, limit int) int {
	if cl := h.ContentLength(); cl >= 0 {
		return cl
	}
	if hasBody(h) {
		return limit
	}
	return 0
}

func errBodyBudget() *hermes.Error {
	return &hermes.Error{Code: hermes.EUnavailable, Message: "Too many request bodies are being received at once (API_SERVER_MAX_BODY_MEMORY); retry shortly",
		RetryAfter: time.Second}
}

// readBody reads an admitted request's body whole, within the body limit,
// after reserving its size from the budget; handlers find it in PostBody.
// It returns the bytes reserved, to be released once the handler returns.
func (s *Server) readBody(ctx *fasthttp.RequestCtx) (int, *hermes.Error) {
	r := ctx.RequestBodyStream()
	if r == nil {
		return 0, nil // no body, or fasthttp read it already (tests that build a ctx by hand)
	}
	n := bodyReservation(&ctx.Request.Header, s.opts.MaxBodyBytes)
	if !s.budget.acquire(n) {
		return 0, errBodyBudget()
	}
	body, e := readAtMost(r, ctx.Request.Header.ContentLength(), s.opts.MaxBodyBytes)
	if e != nil {
		s.budget.release(n)
		return 0, e
	}
	ctx.Request.SetBodyRaw(body)
	return n, nil
}

// readAtMost reads r to its end: contentLength bytes when it is known,
// otherwise (chunked) at most limit bytes. The buffer grows with what
// arrives, so a client that declares much and sends little costs little.
func readAtMost(r io.Reader, contentLength, limit int) ([]byte, *hermes.Error) {
	want := contentLength
	if want < 0 {
		want = limit + 1 // one byte more shows a chunked body over the limit
	}
	buf := make([]byte, 0, min(want, bodyReadChunk))
	for len(buf) < want {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), want-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), want)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, hermes.Errorf(hermes.ETooLarge, "Request body exceeds the limit of %d bytes", limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &hermes.Error{Code: hermes.EInvalid, Message: "The request body could not be read", Cause: err}
		}
	}
	if contentLength >= 0 && len(buf) < contentLength {
		return nil, hermes.Errorf(hermes.EInvalid, "The request body ended after %d of its %d bytes", len(buf), contentLength)
	}
	return buf, nil
}

// bodyBudget bounds the request body bytes held at once across all
// connections (API_SERVER_MAX_BODY_MEMORY): beyond it a request is answered
// 503 with Retry-After before its body is read.
type bodyBudget struct {
	limit int64
	used  atomic.Int64
}

func (b *bodyBudget) fits(n int) bool { return b.used.Load()+int64(n) <= b.limit }

func (b *bodyBudget) acquire(n int) bool {
	if b.used.Add(int64(n)) > b.limit {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

func (b *bodyBudget) release(n int) { b.used.Add(-int64(n)) }
