package httpfront

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// turnChannelSize bounds the events a turn may run ahead of its client
// before the turn waits: enough to absorb bursts, small enough that a slow
// reader costs little memory.
const turnChannelSize = 16

// sinkChannelSize is the channel of a turn whose stream writes its own
// frames (directSink): it holds only what the turn emits before the body
// starts writing, so a few events do. An event is 56 bytes, and the
// channel is allocated for every stream.
const sinkChannelSize = 4

// submit starts a turn whose events the returned channel carries; cancel
// ends the turn and must be called.
func (s *Server) submit(req *hermes.TurnRequest) (<-chan hermes.Event, context.CancelFunc, error) {
	if req.Progress {
		// An HTTP stream: its frames are written on the turn's goroutine
		// once the stream's body is writing (directSink).
		req.Sink = &directSink{ended: make(chan struct{})}
	}
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
	d, sink := req.Sink.(*directSink)
	switch {
	case sink:
		size = sinkChannelSize
	case req.Progress:
		size = turnChannelSize
	}
	events := make(chan hermes.Event, size)
	req.Ctx, req.Events = ctx, events
	if sink {
		d.events, d.ctx = events, ctx
	}
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

// encoder turns a stream's events into frames: begin writes the opening
// frames, handle one event (false once the stream is over).
type encoder interface {
	begin(sw *sseWriter)
	handle(ev hermes.Event) bool
}

// stream answers a streaming request. It holds the headers until the turn's
// first event, so a turn that fails before producing anything (upstream
// down, rate limited) still gets a real status code and a JSON error;
// otherwise the response becomes an SSE stream, encoded by what start
// returns for the first event. A request with an Idempotency-Key keeps
// its flight until the stream ends, so its duplicates wait for the whole
// stream and replay what it wrote.
func (s *Server) stream(ctx *fasthttp.RequestCtx, req *hermes.TurnRequest, events <-chan hermes.Event, cancel context.CancelFunc, start func(first *hermes.Event) encoder) {
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
	sink, _ := req.Sink.(*directSink)
	ctx.Response.SetBodyStream(&sseBody{conn: ctx.Conn(), rec: streamRecording(ctx), timeout: s.opts.StreamWriteTimeout,
		keepAlive: s.opts.KeepAlive, cancel: cancel, first: first, events: events, sink: sink, enc: start(first)}, -1)
}

// sseBody is a stream's response body. fasthttp hands it the connection's
// own writer (WriteTo) on the connection's goroutine once the handler has
// returned. fasthttp's SetBodyStreamWriter would run the writer in a
// goroutine of its own and copy every frame through an in-memory pipe to
// the connection's goroutine: two hand-offs a frame. Here the events that
// came before the body started are written from the events channel, and
// from then on the turn writes each frame itself (directSink).
type sseBody struct {
	conn      net.Conn
	rec       *recording
	timeout   time.Duration
	keepAlive time.Duration
	cancel    context.CancelFunc
	first     *hermes.Event
	events    <-chan hermes.Event
	sink      *directSink // nil: every event comes through events
	enc       encoder
	ran       bool
	closed    bool
	logLine   *requestLine // the request's log line, written once the body ends
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
	defer b.cancel()
	sw := newSSEWriter(b.conn, w, b.timeout, b.cancel)
	defer sw.release() // after the recording's end, the last to read it
	sw.rec = b.rec
	if b.rec != nil {
		defer b.rec.end(sw)
	}
	b.enc.begin(sw)
	if b.sink != nil {
		b.sink.run(sw, b.first, b.enc.handle, b.keepAlive)
	} else {
		pump(sw, b.first, b.events, b.keepAlive, b.enc.handle)
	}
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
	if b.logLine != nil {
		defer b.logLine.log()
	}
	if !b.ran {
		b.cancel()
		if b.rec != nil {
			b.rec.end(&sseWriter{failed: true})
		}
	}
	return nil
}

// directSink is an HTTP stream's TurnRequest.Sink. Until the stream's body
// is writing, events go through the events channel as for any turn (the
// handler waits there for the first one); from then on (run) the turn's
// own goroutine encodes and writes each frame, with no hand-off to another
// goroutine. Frames that arrived together (More) are sent in one write.
type directSink struct {
	events chan hermes.Event
	ctx    context.Context // the request's: done once nobody listens
	// ended is closed once the stream is over: its last event written,
	// or its client gone.
	ended chan struct{}

	mu       sync.Mutex // guards the fields below, and sw
	attached bool       // run has taken over: Emit writes
	over     bool       // ended is closed
	more     bool       // the model holds more output: hold the frames
	sw       *sseWriter
	handle   func(hermes.Event) bool
}

// Emit writes ev once the body is writing; before, it queues it on the
// events channel, as a turn without a sink does. A send that waited on a
// full channel while run took the stream over is written from here: once
// run has taken over, only the lock's holder reads the channel, so the
// check of its length in drain is never stale (run reading it too left a
// turn's drain waiting for an event run had taken, and run waiting for
// the lock the turn held).
func (d *directSink) Emit(ev hermes.Event) bool {
	d.mu.Lock()
	if d.attached {
		ok := d.deliver(ev)
		d.mu.Unlock()
		return ok
	}
	d.mu.Unlock()
	select {
	case d.events <- ev:
	case <-d.ctx.Done():
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.attached {
		return true // run drains it when it takes over
	}
	d.drain()
	d.send()
	return !d.sw.failed
}

// More holds frames while the model has more at hand, and sends what is
// held when it has not.
func (d *directSink) More(more bool) {
	d.mu.Lock()
	d.more = more
	if !more && d.attached && !d.over && !d.sw.flush() {
		d.end()
	}
	d.mu.Unlock()
}

// deliver writes ev after any event still queued on the channel (one sent
// just as run took over), so the order is kept. d.mu is held.
func (d *directSink) deliver(ev hermes.Event) bool {
	d.drain()
	d.take(ev)
	d.send()
	return !d.sw.failed
}

// drain encodes the events queued on the channel. d.mu is held.
func (d *directSink) drain() {
	for len(d.events) > 0 && !d.over {
		d.take(<-d.events)
	}
}

// take encodes one event; the stream's last is sent at once. d.mu is held.
func (d *directSink) take(ev hermes.Event) {
	if d.over {
		return
	}
	if ev.Kind == hermes.EventDone {
		d.sw.result = ev.Result
	}
	if !d.handle(ev) {
		d.sw.flush()
		d.end()
	}
}

// send writes what is encoded, unless the model has more at hand. d.mu
// is held.
func (d *directSink) send() {
	if !d.over && (d.sw.failed || (!d.more && !d.sw.flush())) {
		d.end()
	}
}

func (d *directSink) end() {
	d.over = true
	close(d.ended)
}

// run takes the stream over on the connection's goroutine: it writes the
// first event and whatever queued behind it, lets Emit write from then on,
// and waits for the end, sending keep-alives while it waits.
func (d *directSink) run(sw *sseWriter, first *hermes.Event, handle func(hermes.Event) bool, keepAliveEvery time.Duration) {
	d.mu.Lock()
	d.sw, d.handle = sw, handle
	if first != nil {
		d.take(*first)
	}
	d.drain()
	d.attached = true
	if !d.over && !sw.flush() {
		d.end()
	}
	d.mu.Unlock()
	ka := time.NewTimer(keepAliveEvery)
	defer ka.Stop()
	for {
		select {
		case <-d.ended:
			return
		case <-ka.C:
			d.mu.Lock()
			if !d.over && !sw.keepAlive() {
				d.end()
			}
			d.mu.Unlock()
			ka.Reset(keepAliveEvery)
		}
	}
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
