package httpfront

import (
	"bufio"
	"context"
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
	startSSE(ctx)
	// Everything the writer goroutine needs is taken from ctx here, on the
	// handler's goroutine: once the client is gone fasthttp may recycle ctx
	// while the writer still runs.
	conn, rec := ctx.Conn(), streamRecording(ctx)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		sw := newSSEWriter(conn, w, s.opts.StreamWriteTimeout, cancel)
		sw.rec = rec
		if rec != nil {
			defer rec.end(sw)
		}
		run(first, sw)
	})
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
