package httpfront

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// maxIdempotencyKey bounds the header; longer keys are a client bug.
const maxIdempotencyKey = 255

// maxRecorded bounds the copy of a stream kept for replay: a runaway
// answer must not hold (and then store) unbounded memory. A longer stream
// is remembered as a 409 saying so, so a duplicate still runs nothing.
const maxRecorded = 4 << 20

// idempotent wraps a POST handler with Idempotency-Key handling: the same
// key (per principal and route) with the same body replays the first
// answer byte for byte and runs nothing; duplicates that arrive while the
// first runs wait for it and then replay; a different body under the key is
// a 409. A stream is recorded as it is written and remembered when it ends,
// so its duplicates replay the same SSE bytes.
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
		if !printableASCII(key) {
			writeError(ctx, hermes.InvalidParam("Idempotency-Key", "Idempotency-Key must be printable ASCII"))
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
			s.runOnce(ctx, &recording{s: s, key: scoped, fp: fp, release: release}, next)
			return
		}
	}
}

// runOnce runs next as the one request for its key and remembers the
// answer. A stream started by next takes the flight over and ends it.
func (s *Server) runOnce(ctx *fasthttp.RequestCtx, rec *recording, next fasthttp.RequestHandler) {
	defer func() {
		if !rec.streaming {
			rec.release()
		}
	}()
	if s.replay(ctx, rec.key, rec.fp) { // it finished between our look and our claim
		return
	}
	ctx.SetUserValue(recordingKey{}, rec)
	next(ctx)
	if rec.streaming || ctx.IsBodyStream() { // a stream no recording follows is not remembered
		return
	}
	s.remember(rec.key, rec.fp, ctx.Response.StatusCode(), string(ctx.Response.Header.ContentType()), ctx.Response.Body())
}

// retryable reports whether an answer with this status is one a retry
// should run again rather than replay: failures, rate limits and
// cancellations.
func retryable(code int) bool {
	return code >= 499 || code == fasthttp.StatusTooManyRequests || code == fasthttp.StatusRequestTimeout
}

// remember stores an answer under key, unless a retry should run again.
func (s *Server) remember(key, fp string, code int, contentType string, body []byte) {
	if retryable(code) {
		return
	}
	e := &hermes.IdempotencyEntry{Fingerprint: fp, Status: code, ContentType: contentType, Body: append([]byte(nil), body...)}
	if err := s.rt.SaveIdempotency(key, e); err != nil {
		s.log.Error("storing idempotency entry failed", "err", err)
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
	if strings.HasPrefix(e.ContentType, "text/event-stream") {
		ctx.Response.Header.Set("Cache-Control", "no-cache")
	}
	ctx.Response.Header.Set("Idempotent-Replayed", "true")
	ctx.Response.SetBodyRaw(e.Body)
	return true
}

// recordingKey is the request value under which idempotent hands a
// recording to stream.
type recordingKey struct{}

// recording is one keyed request's flight: stream copies its frames here
// and, when the stream ends, remembers them and releases the flight.
type recording struct {
	s       *Server
	key, fp string
	release func()
	// streaming is set (on the handler's goroutine) when a stream took
	// the flight over; the stream's writer then owns buf and release.
	streaming bool
	buf       []byte
	over      bool // more than maxRecorded was written
}

// streamRecording hands the request's recording, if any, to a stream
// that is starting.
func streamRecording(ctx *fasthttp.RequestCtx) *recording {
	rec, _ := ctx.UserValue(recordingKey{}).(*recording)
	if rec != nil {
		rec.streaming = true
	}
	return rec
}

func (r *recording) add(b []byte) {
	if r.over {
		return
	}
	if len(r.buf)+len(b) > maxRecorded {
		r.over, r.buf = true, nil
		return
	}
	r.buf = append(r.buf, b...)
}

// end remembers a finished stream and lets its duplicates go. A stream the
// client did not receive whole, or whose turn failed in a way a retry may
// cure, is forgotten: the next request with the key runs.
func (r *recording) end(sw *sseWriter) {
	defer r.release()
	if sw.failed || sw.result == nil {
		return
	}
	if err := sw.result.Err; err != nil {
		// The headers said 200, but the turn failed: judge it by the
		// status a request that was not streamed would have got.
		if code, _ := status(err.Code); retryable(code) {
			return
		}
	}
	if r.over {
		e := &hermes.Error{Code: hermes.EConflict, Param: "Idempotency-Key",
			Message: "A request with this Idempotency-Key already ran; its stream was too long to keep for replay"}
		r.s.remember(r.key, r.fp, fasthttp.StatusConflict, "application/json", appendErrorEnvelope(nil, e))
		return
	}
	r.s.remember(r.key, r.fp, fasthttp.StatusOK, sseContentType, r.buf)
}

// printableASCII reports whether b is all printable ASCII. Keys are
// stored, and a byte no store can keep as text (PostgreSQL's text holds
// neither NUL nor invalid UTF-8) would fail the turn's commit after its
// model had already run: refused here, before anything runs.
func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
