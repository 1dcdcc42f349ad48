package httpfront

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// turnChannelSize bounds the events a turn may run ahead of its client
// before the turn waits: enough to absorb bursts, small enough that a slow
// reader costs little memory.
const turnChannelSize = 16

// submit starts a turn whose events the returned channel carries; cancel
// ends the turn and must be called.
func (s *Server) submit(req *hermes.TurnRequest) (<-chan hermes.Event, context.CancelFunc, error) {
	return s.submitIn(context.Background(), req)
}

// submitIn is submit for a turn that also ends when parent does (its
// WebSocket connection closes).
func (s *Server) submitIn(parent context.Context, req *hermes.TurnRequest) (<-chan hermes.Event, context.CancelFunc, error) {
	// Only a stream can notice its client leaving (a write fails), so only
	// a stream's turn needs a context to cancel; the others skip the cost.
	ctx, cancel := parent, context.CancelFunc(func() {})
	if req.Progress {
		ctx, cancel = context.WithCancel(ctx)
	}
	size := 1 // only the final event
	if req.Progress {
		size = turnChannelSize
	}
	events := make(chan hermes.Event, size)
	req.Ctx, req.Events = ctx, events
	if req.Created.IsZero() {
		req.Created = s.opts.Now()
	}
	if err := s.rt.Submit(req); err != nil {
		cancel()
		return nil, nil, err
	}
	return events, cancel, nil
}

// wait drains events until the turn is done.
func wait(events <-chan hermes.Event) *hermes.TurnResult {
	for ev := range events {
		if ev.Kind == hermes.EventDone {
			return ev.Result
		}
	}
	return nil
}

// stream answers a streaming request. It holds the headers until the turn's
// first event, so a turn that fails before producing anything (upstream
// down, rate limited) still gets a real status code and a JSON error;
// otherwise the response becomes an SSE stream that run writes. A request
// with an Idempotency-Key keeps its flight until the stream ends, so its
// duplicates wait for the whole stream and replay what it wrote.
func (s *Server) stream(ctx *fasthttp.RequestCtx, events <-chan hermes.Event, cancel context.CancelFunc, run func(first *hermes.Event, sw *sseWriter)) {
	first, failed := s.firstEvent(events)
	if failed {
		cancel()
		writeError(ctx, first.Result.Err)
		return
	}
	if first != nil && first.Kind == hermes.EventModel {
		ctx.Response.Header.Set(modelHeader, first.Text) // a fallback answers
	}
	startSSE(ctx)
	// Everything the body needs is taken from ctx here, on the handler's
	// goroutine: once the client is gone fasthttp may recycle ctx while
	// the body still runs.
	ctx.Response.SetBodyStream(&sseBody{conn: ctx.Conn(), rec: streamRecording(ctx),
		timeout: s.opts.StreamWriteTimeout, cancel: cancel, first: first, run: run}, -1)
}

// sseBody is a stream's response body. fasthttp hands it the connection's
// own writer (WriteTo) on the connection's goroutine once the handler has
// returned, so frames go from the turn's events to the socket with no
// goroutine or pipe in between (fasthttp's SetBodyStreamWriter runs the
// writer in a goroutine of its own and copies every frame through an
// in-memory pipe to the connection's goroutine: two hand-offs a frame).
type sseBody struct {
	conn    net.Conn
	rec     *recording
	timeout time.Duration
	cancel  context.CancelFunc
	first   *hermes.Event
	run     func(first *hermes.Event, sw *sseWriter)
	ran     bool
	closed  bool
}

// errStreamGone ends a body whose client left, so fasthttp closes the
// connection instead of finishing the chunked body.
var errStreamGone = errors.New("httpfront: the client left during the stream")

// SupportsBodyWriteTo tells fasthttp to use WriteTo, not Read.
func (b *sseBody) SupportsBodyWriteTo() bool { return true }

// WriteTo runs the stream into w, the response body: every Write of w is
// one chunk, flushed to the client.
func (b *sseBody) WriteTo(w io.Writer) (int64, error) {
	b.ran = true
	sw := newSSEWriter(b.conn, w, b.timeout, b.cancel)
	sw.rec = b.rec
	if b.rec != nil {
		defer b.rec.end(sw)
	}
	b.run(b.first, sw)
	if !sw.flush() {
		return 0, errStreamGone
	}
	return 0, nil
}

// Read is never used: fasthttp reads a body that supports WriteTo only
// through it.
func (b *sseBody) Read([]byte) (int, error) {
	return 0, errors.New("httpfront: sseBody is written, not read")
}

// Close is called by fasthttp once it is done with the body. A body that
// never ran (the response was dropped before its body was written) still
// ends its turn and lets its duplicates go.
func (b *sseBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.ran {
		b.cancel()
		if b.rec != nil {
			b.rec.end(&sseWriter{failed: true})
		}
	}
	return nil
}

// firstEventWait is how long a stream holds its headers for the turn's
// first event: long enough for an upstream that refuses at once (down,
// rate limited) to get a real status, short enough that a slow model does
// not leave the client without headers.
const firstEventWait = 2 * time.Second

// firstEvent waits up to firstEventWait for the turn's first event; failed
// is true when the turn ended in an error before producing anything.
func (s *Server) firstEvent(events <-chan hermes.Event) (first *hermes.Event, failed bool) {
	t := time.NewTimer(firstEventWait)
	defer t.Stop()
	select {
	case ev := <-events:
		return &ev, ev.Kind == hermes.EventDone && ev.Result.Err != nil && ev.Result.Text == ""
	case <-t.C:
		return nil, false
	}
}

const sseContentType = "text/event-stream; charset=utf-8"

func startSSE(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	h := &ctx.Response.Header
	h.SetContentType(sseContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}
