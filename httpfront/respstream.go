package httpfront

import (
	"bufio"
	"context"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// responseStream writes one response as Responses API events. Items get
// the same ids and order that outputItems gives the stored record, so the
// final response.completed matches what GET returns.
type responseStream struct {
	s      *Server
	req    *hermes.TurnRequest
	events <-chan hermes.Event
	cancel context.CancelFunc
	first  *hermes.Event
	sw     *sseWriter
	seq    int64
	index  int    // output index of the next item
	openID string // the message item receiving text, "" when none
	text   []byte // text of the open message item
}

func (st *responseStream) run(ctx *fasthttp.RequestCtx, w *bufio.Writer) {
	defer st.cancel()
	st.sw = newSSEWriter(ctx, w, st.s.opts.StreamWriteTimeout, st.cancel)
	stub := &hermes.StoredResponse{ID: st.req.ResponseID, Previous: st.req.Previous, Conversation: st.req.Conversation,
		Status: hermes.StatusInProgress, Created: st.req.Created, Model: st.req.Model, Wire: st.req.Wire}
	obj := responseObj(stub)
	st.event("response.created", map[string]any{"response": obj})
	st.event("response.in_progress", map[string]any{"response": obj})
	pump(st.sw, st.first, st.events, st.s.opts.KeepAlive, st.handle)
}

// event writes one event: type and sequence_number first, then fields.
func (st *responseStream) event(typ string, fields map[string]any) {
	b := append(st.sw.buf[:0], "event: "...)
	b = append(b, typ...)
	b = append(b, "\ndata: {\"type\":"...)
	b = appendString(b, typ)
	b = append(b, `,"sequence_number":`...)
	b = appendInt(b, st.seq)
	st.seq++
	if len(fields) > 0 {
		body, err := json.Marshal(fields)
		if err == nil && len(body) > 2 {
			b = append(b, ',')
			b = append(b, body[1:len(body)-1]...)
		}
	}
	st.sw.buf = append(b, "}\n\n"...)
	st.sw.write(st.sw.buf)
}

func (st *responseStream) nextID(prefix string) (string, int) {
	k := st.index
	st.index++
	return itemID(prefix, st.req.ResponseID, itoa(k)), k
}

func (st *responseStream) delta(text string) {
	if text == "" {
		return
	}
	if st.openID == "" {
		id, k := st.nextID("msg_")
		st.openID = id
		st.text = st.text[:0]
		st.event("response.output_item.added", map[string]any{"output_index": k,
			// A map, not item: item's omitempty would drop the empty content
			// list, and SDK stream accumulators push parts into it.
			"item": map[string]any{"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []contentPart{}}})
		st.event("response.content_part.added", map[string]any{"item_id": id, "output_index": k, "content_index": 0,
			"part": contentPart{Type: "output_text", Text: "", Annotations: &emptyList}})
	}
	st.text = append(st.text, text...)
	// The hot path: built by hand.
	b := append(st.sw.buf[:0], "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":"...)
	b = appendInt(b, st.seq)
	st.seq++
	b = append(b, `,"item_id":`...)
	b = appendString(b, st.openID)
	b = append(b, `,"output_index":`...)
	b = appendInt(b, int64(st.index-1))
	b = append(b, `,"content_index":0,"delta":`...)
	b = appendString(b, text)
	st.sw.buf = append(b, ",\"logprobs\":[]}\n\n"...)
	st.sw.write(st.sw.buf)
}

// closeMessage finishes the open message item, if any, with status
// completed, or incomplete when the turn was cut short.
func (st *responseStream) closeMessage(status string) {
	if st.openID == "" {
		return
	}
	id, k, text := st.openID, st.index-1, string(st.text)
	st.event("response.output_text.done", map[string]any{"item_id": id, "output_index": k, "content_index": 0, "text": text, "logprobs": emptyList})
	st.event("response.content_part.done", map[string]any{"item_id": id, "output_index": k, "content_index": 0,
		"part": contentPart{Type: "output_text", Text: text, Annotations: &emptyList}})
	st.event("response.output_item.done", map[string]any{"output_index": k, "item": messageItem(id, status, text)})
	st.openID = ""
}

func (st *responseStream) call(c hermes.ToolCall) {
	id, k := st.nextID("fc_")
	added := callItem(id, "in_progress", hermes.ToolCall{ID: c.ID, Name: c.Name})
	st.event("response.output_item.added", map[string]any{"output_index": k, "item": added})
	if c.Arguments != "" {
		st.event("response.function_call_arguments.delta", map[string]any{"item_id": id, "output_index": k, "delta": c.Arguments})
	}
	st.event("response.function_call_arguments.done", map[string]any{"item_id": id, "output_index": k, "name": c.Name, "arguments": c.Arguments})
	st.event("response.output_item.done", map[string]any{"output_index": k, "item": callItem(id, "completed", c)})
}

func (st *responseStream) handle(ev hermes.Event) bool {
	switch ev.Kind {
	case hermes.EventTextDelta:
		st.delta(ev.Text)
	case hermes.EventToolStarted:
		st.closeMessage("completed")
		st.call(hermes.ToolCall{ID: ev.Tool.CallID, Name: ev.Tool.Name, Arguments: ev.Tool.Arguments})
	case hermes.EventToolFinished:
		id, k := st.nextID("fco_")
		it := callOutputItem(id, hermes.Message{Role: hermes.RoleTool, ToolCallID: ev.Tool.CallID, Content: ev.Tool.Output})
		st.event("response.output_item.added", map[string]any{"output_index": k, "item": it})
		st.event("response.output_item.done", map[string]any{"output_index": k, "item": it})
	case hermes.EventDone:
		st.done(ev.Result)
		return false
	}
	return true
}

func (st *responseStream) done(res *hermes.TurnResult) {
	rec := res.Record
	msgStatus := "completed"
	if rec == nil || rec.Status != hermes.StatusCompleted {
		msgStatus = "incomplete"
	}
	st.closeMessage(msgStatus)
	for _, c := range res.ClientToolCalls {
		st.call(c)
	}
	if rec == nil {
		// Nothing could be recorded (the history failed to load): report
		// the error as an event, the one terminal frame of this stream.
		e := hermes.AsError(res.Err)
		_, typ := status(e.Code)
		st.event("error", map[string]any{"code": wireCode(e), "message": e.Message, "param": nullable(e.Param),
			"error": map[string]any{"type": typ, "code": wireCode(e), "message": e.Message, "param": nullable(e.Param)}})
		return
	}
	typ := "response.completed"
	switch rec.Status {
	case hermes.StatusFailed:
		typ = "response.failed"
	case hermes.StatusIncomplete, hermes.StatusCancelled:
		typ = "response.incomplete"
	}
	st.event(typ, map[string]any{"response": responseObj(rec)})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
