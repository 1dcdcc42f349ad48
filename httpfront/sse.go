package httpfront

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// sseWriter writes a stream's frames, each under a write deadline. The
// first failed write means the client is gone: the turn is cancelled and
// every later write is dropped.
//
// Frames wait in pending until flush, which sends them all with one Write
// of out: fasthttp makes that one chunk and, when it fits its buffer, one
// write syscall. pump flushes whenever no further event is waiting, so a
// client that keeps up gets each frame as it comes, and frames that piled
// up while a write to a slow client was blocked go out together instead
// of a syscall each.
type sseWriter struct {
	out     io.Writer
	conn    net.Conn
	timeout time.Duration
	// deadlineSet is when the write deadline was last moved (flush).
	deadlineSet time.Time
	buf         []byte     // the frame being built
	bufs        *frameBufs // where buf and pending go back (release)
	pending     []byte     // frames written and not yet sent
	failed      bool
	cancel      context.CancelFunc
	// result is the turn's final result once pump has handled it; nil
	// when the stream ended without one.
	result *hermes.TurnResult
	// rec keeps a copy of every frame when the request carries an
	// Idempotency-Key, for its duplicates to replay.
	rec *recording
	// ws, when set, takes each frame as a WebSocket text message, bare
	// JSON without SSE framing (Responses over WebSocket).
	ws *socket
}

// maxPending bounds the frames held for one write: a burst larger than
// this is sent in several writes rather than held whole in memory.
const maxPending = 64 << 10

// begin starts a frame for an event of type typ: its SSE framing, or
// nothing on a WebSocket. The event's JSON follows; end finishes it.
func (sw *sseWriter) begin(typ string) []byte {
	if sw.ws != nil {
		return sw.buf[:0]
	}
	b := append(sw.buf[:0], "event: "...)
	b = append(b, typ...)
	return append(b, "\ndata: "...)
}

// end finishes a frame begun by begin and writes it.
func (sw *sseWriter) end(b []byte) {
	sw.endAt(b, 0)
}

// beginAfter is begin for a frame built after the one last ended, which
// stays in the buffer for the new one to copy from: the new frame is
// b[at:], to be finished with endAt.
func (sw *sseWriter) beginAfter(typ string) (b []byte, at int) {
	at = len(sw.buf)
	b = sw.buf
	if sw.ws == nil {
		b = append(append(append(b, "event: "...), typ...), "\ndata: "...)
	}
	return b, at
}

// endAt finishes the frame b[at:] and writes it.
func (sw *sseWriter) endAt(b []byte, at int) {
	if sw.ws == nil {
		b = append(b, "\n\n"...)
	}
	sw.buf = b
	sw.write(b[at:])
}

// write sends one frame (recorded for replay when the request has a key).
func (sw *sseWriter) write(b []byte) {
	if sw.rec != nil && !sw.failed {
		sw.rec.add(b)
	}
	sw.send(b)
}

// send queues bytes for the client unrecorded; a WebSocket message goes
// out at once, whole.
func (sw *sseWriter) send(b []byte) {
	if sw.failed {
		return
	}
	if sw.ws != nil {
		if sw.ws.write(b) != nil {
			sw.fail()
		}
		return
	}
	sw.pending = append(sw.pending, b...)
	if len(sw.pending) >= maxPending {
		sw.flush()
	}
}

// flush sends the pending frames in one write; a failure means the client
// left, so the turn is cancelled.
func (sw *sseWriter) flush() bool {
	if sw.failed {
		return false
	}
	if len(sw.pending) == 0 {
		return true // nothing to send (always so on a WebSocket)
	}
	if sw.conn != nil {
		// Moving the deadline re-arms a runtime timer, a visible share of
		// a token's cost when done for every frame: it is moved once a
		// quarter of the timeout has passed, so a write that blocks fails
		// after between ¾ of the timeout and the whole.
		if now := time.Now(); now.Sub(sw.deadlineSet) >= sw.timeout/4 {
			_ = sw.conn.SetWriteDeadline(now.Add(sw.timeout))
			sw.deadlineSet = now
		}
	}
	_, err := sw.out.Write(sw.pending)
	sw.pending = sw.pending[:0]
	if err != nil {
		sw.fail()
		return false
	}
	return true
}

func (sw *sseWriter) fail() {
	sw.failed = true
	sw.cancel()
}

// keepAlive sends an SSE comment. It is not recorded: a replay is not idle.
func (sw *sseWriter) keepAlive() bool {
	if sw.ws != nil {
		return !sw.failed // the connection's own pings keep it alive
	}
	sw.send(keepAliveFrame)
	return sw.flush()
}

var keepAliveFrame = []byte(": keep-alive\n\n")

func newSSEWriter(conn net.Conn, out io.Writer, timeout time.Duration, cancel context.CancelFunc) *sseWriter {
	fb, ok := frameBufPool.Get().(*frameBufs)
	if !ok {
		fb = &frameBufs{buf: make([]byte, 0, 512), pending: make([]byte, 0, 1024)}
	}
	return &sseWriter{out: out, conn: conn, timeout: timeout, cancel: cancel, bufs: fb, buf: fb.buf[:0], pending: fb.pending[:0]}
}

// frameBufs are an sseWriter's buffers, kept between streams: a stream's
// frames would otherwise grow new ones each time (a Responses stream's
// response objects and closing events, several KB, grew its pending
// buffer three or four times a request).
type frameBufs struct{ buf, pending []byte }

var frameBufPool sync.Pool

// maxPooledFrameBuf bounds a buffer kept for the next stream, so one long
// answer does not pin its buffers' size in the pool.
const maxPooledFrameBuf = maxPending

// release hands sw's buffers to the next stream. The stream must be over:
// nothing encodes or sends on sw after it (a frame begun later would get
// a new buffer, never another stream's).
func (sw *sseWriter) release() {
	if fb := sw.bufs; fb != nil && cap(sw.buf) <= maxPooledFrameBuf && cap(sw.pending) <= maxPooledFrameBuf {
		fb.buf, fb.pending = sw.buf, sw.pending
		frameBufPool.Put(fb)
	}
	sw.bufs, sw.buf, sw.pending = nil, nil, nil
}

// pump feeds events to handle until the turn is done or the client leaves,
// flushing whenever no further event is already waiting (token-by-token
// delivery without a syscall per token under load). The writer keeps the
// turn's result: whoever ends the stream (idempotency) learns from it how
// the turn went.
func pump(sw *sseWriter, first *hermes.Event, events <-chan hermes.Event, keepAliveEvery time.Duration, handle func(hermes.Event) bool) {
	if first != nil {
		if first.Kind == hermes.EventDone {
			sw.result = first.Result
		}
		if !handle(*first) {
			sw.flush()
			return
		}
	}
	ka := time.NewTimer(keepAliveEvery)
	defer ka.Stop()
	for {
		if len(events) == 0 && !sw.flush() {
			return
		}
		select {
		case ev, ok := <-events:
			if ok && ev.Kind == hermes.EventDone {
				sw.result = ev.Result
			}
			if !ok || !handle(ev) {
				sw.flush()
				return
			}
		case <-ka.C:
			if !sw.keepAlive() {
				return
			}
			ka.Reset(keepAliveEvery)
		}
	}
}

// chatStream writes one chat completion as chunks.
type chatStream struct {
	s            *Server
	req          *hermes.TurnRequest
	events       <-chan hermes.Event
	cancel       context.CancelFunc
	first        *hermes.Event
	mode         string // tool progress: inline, events or off (progressMode)
	includeUsage bool
	prefix       []byte // `data: {"id":…,"choices":[` shared by every chunk
	sw           *sseWriter
	// model is the model the chunks name: the request's, until a
	// fallback takes over (the turn reads req, so it is not changed).
	model string
	// held is the answer text kept for one chunk at the end
	// (API_SERVER_STREAMING=false).
	held strings.Builder
}

// begin writes the chunk that opens the stream.
func (st *chatStream) begin(sw *sseWriter) {
	st.sw = sw
	st.model = st.req.Model
	if st.first != nil && st.first.Kind == hermes.EventModel {
		st.model = st.first.Text // a fallback answers; the header says so too
	}
	st.setPrefix()
	st.chunk(`{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}`)
}

// setPrefix makes the start every chunk shares, naming st.model.
func (st *chatStream) setPrefix() {
	p := append([]byte(nil), `data: {"id":`...)
	p = appendString(p, st.req.ResponseID)
	p = append(p, `,"object":"chat.completion.chunk","created":`...)
	p = appendInt(p, st.req.Created.Unix())
	p = append(p, `,"model":`...)
	p = appendString(p, st.model)
	st.prefix = append(p, `,"choices":[`...)
}

// chunk writes one chunk whose choices array holds choice.
func (st *chatStream) chunk(choice string) {
	b := append(st.sw.buf[:0], st.prefix...)
	b = append(b, choice...)
	st.sw.buf = st.end(b)
	st.sw.write(st.sw.buf)
}

func (st *chatStream) end(b []byte) []byte {
	b = append(b, ']')
	if st.includeUsage {
		b = append(b, `,"usage":null`...)
	}
	return append(b, "}\n\n"...)
}

func (st *chatStream) content(text string) { st.delta(`{"index":0,"delta":{"content":`, text) }

// reasoning writes a piece of reasoning as delta.reasoning_content, the
// field Open WebUI, LibreChat and the SDKs' reasoning models read, never
// mixed into content.
func (st *chatStream) reasoning(text string) {
	st.delta(`{"index":0,"delta":{"reasoning_content":`, text)
}

// delta writes a chunk whose delta has one string field: open is the
// choice up to that field's value.
func (st *chatStream) delta(open, text string) {
	b := append(st.sw.buf[:0], st.prefix...)
	b = append(b, open...)
	b = appendString(b, text)
	b = append(b, `},"logprobs":null,"finish_reason":null}`...)
	st.sw.buf = st.end(b)
	st.sw.write(st.sw.buf)
}

func (st *chatStream) handle(ev hermes.Event) bool {
	switch ev.Kind {
	case hermes.EventModel:
		// A fallback took over after the stream began: the chunks from
		// now on name it.
		st.model = ev.Text
		st.setPrefix()
	case hermes.EventTextDelta:
		if st.s.opts.HoldAnswer {
			st.held.WriteString(ev.Text)
			break
		}
		st.content(ev.Text)
	case hermes.EventReasoningDelta:
		st.reasoning(ev.Text)
	case hermes.EventToolStarted:
		switch st.mode {
		case "inline":
			st.content(marker(ev.Tool))
		case "events":
			b := append(st.sw.buf[:0], "event: hermes.tool.progress\ndata: {\"tool\":"...)
			b = appendString(b, ev.Tool.Name)
			b = append(b, `,"emoji":`...)
			b = appendString(b, ev.Tool.Emoji)
			b = append(b, `,"label":`...)
			b = appendString(b, ev.Tool.Label)
			b = append(b, `,"toolCallId":`...)
			b = appendString(b, ev.Tool.CallID)
			st.sw.buf = append(b, ",\"status\":\"running\"}\n\n"...)
			st.sw.write(st.sw.buf)
		}
	case hermes.EventToolFinished:
		if st.mode == "events" {
			b := append(st.sw.buf[:0], "event: hermes.tool.progress\ndata: {\"tool\":"...)
			b = appendString(b, ev.Tool.Name)
			b = append(b, `,"toolCallId":`...)
			b = appendString(b, ev.Tool.CallID)
			st.sw.buf = append(b, ",\"status\":\"completed\"}\n\n"...)
			st.sw.write(st.sw.buf)
		}
	case hermes.EventDone:
		st.done(ev.Result)
		return false
	}
	return true
}

// toolCall writes one delta carrying part of the turn's index-th call.
func (st *chatStream) toolCall(index int, c hermes.ToolCall, part callPart) {
	b := append(st.sw.buf[:0], st.prefix...)
	b = append(b, `{"index":0,"delta":{"tool_calls":[`...)
	b = appendToolCall(b, index, c, part)
	b = append(b, `]},"logprobs":null,"finish_reason":null}`...)
	st.sw.buf = st.end(b)
	st.sw.write(st.sw.buf)
}

func (st *chatStream) done(res *hermes.TurnResult) {
	if st.held.Len() > 0 {
		st.content(st.held.String())
	}
	if res.Err != nil {
		b := append(st.sw.buf[:0], `data: {"error":`...)
		b = appendErrorObject(b, res.Err)
		st.sw.write(append(b, "}\n\n"...))
		return
	}
	for i, c := range res.ClientToolCalls {
		st.toolCall(i, c, callHead)
		if c.Arguments != "" {
			st.toolCall(i, c, callArguments)
		}
	}
	b := append(st.sw.buf[:0], st.prefix...)
	b = append(b, `{"index":0,"delta":{},"logprobs":null,"finish_reason":`...)
	b = appendString(b, string(finishReason(res)))
	b = append(b, '}')
	st.sw.write(st.end(b))
	if st.includeUsage {
		b = append(st.sw.buf[:0], st.prefix...)
		b = append(b, `],"usage":`...)
		b = appendChatUsage(b, res.Usage)
		st.sw.write(append(b, "}\n\n"...))
	}
	st.sw.write([]byte("data: [DONE]\n\n"))
}
