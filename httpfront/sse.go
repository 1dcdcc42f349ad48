package httpfront

import (
	"bufio"
	"context"
	"net"
	"strings"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// sseWriter writes a stream's frames, each under a write deadline. The
// first failed write means the client is gone: the turn is cancelled and
// every later write is dropped.
type sseWriter struct {
	w       *bufio.Writer
	conn    net.Conn
	timeout time.Duration
	buf     []byte
	failed  bool
	cancel  context.CancelFunc
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
	if sw.ws == nil {
		b = append(b, "\n\n"...)
	}
	sw.buf = b
	sw.write(b)
}

// write sends one frame (recorded for replay when the request has a key).
func (sw *sseWriter) write(b []byte) {
	if sw.rec != nil && !sw.failed {
		sw.rec.add(b)
	}
	sw.send(b)
}

// send writes bytes to the client unrecorded.
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
	if sw.conn != nil {
		_ = sw.conn.SetWriteDeadline(time.Now().Add(sw.timeout))
	}
	if _, err := sw.w.Write(b); err != nil {
		sw.fail()
	}
}

// flush sends what is buffered; a failure means the client left, so the
// turn is cancelled.
func (sw *sseWriter) flush() bool {
	if sw.failed {
		return false
	}
	if sw.ws != nil {
		return true // each message went out whole as it was written
	}
	if sw.conn != nil {
		_ = sw.conn.SetWriteDeadline(time.Now().Add(sw.timeout))
	}
	if err := sw.w.Flush(); err != nil {
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
	sw.send([]byte(": keep-alive\n\n"))
	return sw.flush()
}

func newSSEWriter(conn net.Conn, w *bufio.Writer, timeout time.Duration, cancel context.CancelFunc) *sseWriter {
	return &sseWriter{w: w, conn: conn, timeout: timeout, cancel: cancel, buf: make([]byte, 0, 512)}
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
	// held is the answer text kept for one chunk at the end
	// (API_SERVER_STREAMING=false).
	held strings.Builder
}

func (st *chatStream) run(sw *sseWriter) {
	defer st.cancel()
	st.sw = sw
	p := append([]byte(nil), `data: {"id":`...)
	p = appendString(p, st.req.ResponseID)
	p = append(p, `,"object":"chat.completion.chunk","created":`...)
	p = appendInt(p, st.req.Created.Unix())
	p = append(p, `,"model":`...)
	p = appendString(p, st.req.Model)
	st.prefix = append(p, `,"choices":[`...)

	st.chunk(`{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}`)
	pump(st.sw, st.first, st.events, st.s.opts.KeepAlive, st.handle)
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
