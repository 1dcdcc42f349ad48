package httpfront

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strconv"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
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
	held   []byte // text not sent yet (Options.HoldAnswer)
	// thinkID is the reasoning item receiving reasoning, "" when none;
	// thinkK its output index and thought its text so far.
	thinkID string
	thinkK  int
	thought []byte
	// wire is the request's codec fields for the response objects of the
	// opening and closing events: the decoder's, or decoded from req.Wire
	// when nil (a WebSocket response).
	wire *responseWire
	form itemForm
	// params and meta are the encoded request echo and metadata of the
	// response objects (kept for records with the request's Wire), params
	// for the previous response id paramsPrev.
	params, meta []byte
	paramsPrev   string
	// running holds the hosted items of agent tools started and not yet
	// finished, by call id.
	running map[string]runningTool
}

// runningTool is an agent tool run whose hosted item is open.
type runningTool struct {
	id   string
	k    int
	call hermes.ToolCall
}

func (st *responseStream) run(sw *sseWriter) {
	defer st.cancel()
	st.begin(sw)
	pump(st.sw, st.first, st.events, st.s.opts.KeepAlive, st.handle)
}

// begin writes the events that open the stream.
func (st *responseStream) begin(sw *sseWriter) {
	st.sw = sw
	if st.wire == nil {
		st.wire = new(responseWire)
		_ = json.Unmarshal(st.req.Wire, st.wire)
	}
	st.form = st.s.recordForm(st.wire)
	// Both events carry the same object: it is built once, and the
	// second frame copies it from the first.
	b := append(st.open("response.created"), `,"response":`...)
	start := len(b)
	b = st.appendResponse(b, st.stub(hermes.StatusInProgress))
	end := len(b)
	st.sw.end(append(b, '}'))
	b, at := st.sw.beginAfter("response.in_progress")
	b = append(st.head(b, "response.in_progress"), `,"response":`...)
	st.sw.endAt(append(append(b, b[start:end]...), '}'), at)
}

// responseEvent writes an event whose one field is rec's response object.
func (st *responseStream) responseEvent(typ string, rec *hermes.StoredResponse) {
	b := append(st.open(typ), `,"response":`...)
	st.sw.end(append(st.appendResponse(b, rec), '}'))
}

// appendResponse appends rec's response object in the bytes
// json.Marshal(s.responseObj(rec)) gives: the fields that change during a
// response by hand, the request's echo encoded once.
func (st *responseStream) appendResponse(b []byte, rec *hermes.StoredResponse) []byte {
	w, form := st.wire, st.form
	same := bytes.Equal(rec.Wire, st.req.Wire)
	if !same {
		w = new(responseWire)
		_ = json.Unmarshal(rec.Wire, w)
		form = st.s.recordForm(w)
	}
	var o responseObject
	fillResponseObj(&o, rec, w)
	b = appendResponseHead(b, &o)
	b = append(b, `,"output":[`...)
	for i, it := range st.s.responseItems(rec, form) {
		if i > 0 {
			b = append(b, ',')
		}
		if it.Type == "message" && it.Role == "assistant" && len(it.Content) == 1 && it.Content[0].Type == "output_text" {
			b = appendMessageItem(b, it.ID, it.Status, &it.Content[0].Text)
			continue
		}
		j, _ := json.Marshal(it.wire())
		b = append(b, j...)
	}
	b = append(b, "],"...)
	params, meta := st.params, st.meta
	if !same || params == nil || rec.Previous != st.paramsPrev {
		// One buffer for both, sized for the echo with its raw fields.
		buf := make([]byte, 0, 512+len(o.Tools)+len(o.ToolChoice)+len(o.Metadata)*64)
		buf = appendParams(buf, &o.responseParams)
		params = buf[:len(buf):len(buf)]
		meta = appendMetadata(buf[len(buf):], o.Metadata)
		if same {
			st.params, st.meta, st.paramsPrev = params, meta, rec.Previous
		}
	}
	b = append(b, params...)
	b = append(b, `,"usage":`...)
	if u := o.Usage; u == nil {
		b = append(b, "null"...)
	} else {
		b = appendInt(append(b, `{"input_tokens":`...), int64(u.InputTokens))
		b = appendInt(append(b, `,"input_tokens_details":{"cached_tokens":`...), int64(u.InputTokensDetails.CachedTokens))
		b = appendInt(append(b, `},"output_tokens":`...), int64(u.OutputTokens))
		b = appendInt(append(b, `,"output_tokens_details":{"reasoning_tokens":`...), int64(u.OutputTokensDetails.ReasoningTokens))
		b = append(appendInt(append(b, `},"total_tokens":`...), int64(u.TotalTokens)), '}')
	}
	b = append(append(b, `,"metadata":`...), meta...)
	b = append(b, `,"conversation":`...)
	if o.Conversation == nil {
		b = append(b, "null"...)
	} else {
		b = append(appendString(append(b, `{"id":`...), o.Conversation.ID), '}')
	}
	return append(b, '}')
}

// appendResponseHead appends a response object's fields up to its model,
// opening brace included.
func appendResponseHead(b []byte, o *responseObject) []byte {
	b = appendString(append(b, `{"id":`...), o.ID)
	b = appendInt(append(b, `,"object":"response","created_at":`...), o.CreatedAt)
	b = appendString(append(b, `,"status":`...), string(o.Status))
	b = strconv.AppendBool(append(b, `,"background":`...), o.Background)
	b = appendNullInt(append(b, `,"completed_at":`...), o.CompletedAt)
	b = append(b, `,"error":`...)
	if o.Error == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(append(b, `{"code":`...), o.Error.Code)
		b = append(appendString(append(b, `,"message":`...), o.Error.Message), '}')
	}
	b = append(b, `,"incomplete_details":`...)
	if o.IncompleteDetails == nil {
		b = append(b, "null"...)
	} else {
		b = append(appendString(append(b, `{"reason":`...), o.IncompleteDetails.Reason), '}')
	}
	b = append(b, `,"instructions":`...)
	if o.Instructions == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *o.Instructions)
	}
	b = appendNullInt(append(b, `,"max_output_tokens":`...), o.MaxOutputTokens)
	b = appendNullInt(append(b, `,"max_tool_calls":`...), o.MaxToolCalls)
	return appendString(append(b, `,"model":`...), o.Model)
}

// appendParams appends p's fields, without braces, in the bytes
// json.Marshal gives them.
func appendParams(b []byte, p *responseParams) []byte {
	b = strconv.AppendBool(append(b, `"parallel_tool_calls":`...), p.ParallelToolCalls)
	b = appendNullStringPtr(append(b, `,"previous_response_id":`...), p.PreviousResponseID)
	b = appendReasoning(append(b, `,"reasoning":`...), p.Reasoning)
	b = strconv.AppendBool(append(b, `,"store":`...), p.Store)
	b = appendFloat(append(b, `,"temperature":`...), p.Temperature)
	b = appendFloat(append(b, `,"top_p":`...), p.TopP)
	b = appendFloat(append(b, `,"presence_penalty":`...), p.PresencePenalty)
	b = appendFloat(append(b, `,"frequency_penalty":`...), p.FrequencyPenalty)
	b = appendInt(append(b, `,"top_logprobs":`...), int64(p.TopLogprobs))
	b = appendString(append(b, `,"service_tier":`...), p.ServiceTier)
	b = appendNullStringPtr(append(b, `,"safety_identifier":`...), p.SafetyIdentifier)
	b = appendNullStringPtr(append(b, `,"prompt_cache_key":`...), p.PromptCacheKey)
	b = appendRaw(append(b, `,"tool_choice":`...), p.ToolChoice, p.canonical)
	b = appendRaw(append(b, `,"tools":`...), p.Tools, p.canonical)
	b = appendString(append(b, `,"truncation":`...), p.Truncation)
	return appendRaw(append(b, `,"text":`...), p.Text, true) // textFormat
}

// appendReasoning appends r as json.Marshal does (null when nil).
func appendReasoning(b []byte, r *reasoningConfig) []byte {
	if r == nil {
		return append(b, "null"...)
	}
	b = appendNullStringPtr(append(b, `{"effort":`...), r.Effort)
	return append(appendNullStringPtr(append(b, `,"summary":`...), r.Summary), '}')
}

// appendMetadata appends m as json.Marshal does: keys sorted.
func appendMetadata(b []byte, m map[string]string) []byte {
	if len(m) == 0 {
		return append(b, "{}"...)
	}
	var held [maxMetadataPairs]string
	keys := held[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(append(appendString(b, k), ':'), m[k])
	}
	return append(b, '}')
}

// appendNullStringPtr appends *s, or null when s is nil.
func appendNullStringPtr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

// appendFloat appends f as json.Marshal does. Only the defaults (0 and 1)
// are written here: a value the client sent goes through the encoder, so
// its digits are the encoder's by construction.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0 && !math.Signbit(f):
		return append(b, '0')
	}
	j, _ := json.Marshal(f)
	return append(b, j...)
}

// appendRaw appends raw JSON as json.Marshal does a json.RawMessage:
// compacted, with <, >, &, U+2028 and U+2029 escaped in its strings.
// canonical says raw is so already (the decoder made it so): it is
// copied. Checking that byte by byte would cost more than the encoder.
func appendRaw(b []byte, raw json.RawMessage, canonical bool) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	if canonical {
		return append(b, raw...)
	}
	return append(b, canonicalRaw(raw)...)
}

// canonicalRaw is raw as json.Marshal writes a json.RawMessage.
func canonicalRaw(raw json.RawMessage) json.RawMessage {
	if j, err := json.Marshal(raw); err == nil {
		return j
	}
	return raw // decoded before, so valid: not reached
}

// appendNullInt appends *n, or null when n is nil.
func appendNullInt[T int | int64](b []byte, n *T) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return appendInt(b, int64(*n))
}

// stub is the record of this response before the turn reports one.
func (st *responseStream) stub(status hermes.Status) *hermes.StoredResponse {
	return &hermes.StoredResponse{ID: st.req.ResponseID, Previous: st.req.Previous, Conversation: st.req.Conversation,
		Status: status, Created: st.req.Created, Model: st.req.Model, Wire: st.req.Wire}
}

// open begins the frame of an event: its type and sequence_number, the
// fields to follow and the closing brace to add before sw.end.
func (st *responseStream) open(typ string) []byte {
	return st.head(st.sw.begin(typ), typ)
}

// head appends an event's type and sequence_number to its begun frame.
func (st *responseStream) head(b []byte, typ string) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"sequence_number":`...)
	b = appendInt(b, st.seq)
	st.seq++
	return b
}

// event writes one event of the rarer kinds (tools, reasoning, errors):
// type and sequence_number first, then fields in key order. A text
// response's events are appended by hand instead (delta, closeMessage),
// in the same bytes.
func (st *responseStream) event(typ string, fields map[string]any) {
	b := st.open(typ)
	if len(fields) > 0 {
		body, err := json.Marshal(fields)
		if err == nil && len(body) > 2 {
			b = append(b, ',')
			b = append(b, body[1:len(body)-1]...)
		}
	}
	st.sw.end(append(b, '}'))
}

func (st *responseStream) nextID(prefix string) (string, int) {
	k := st.index
	st.index++
	return itemID(prefix, st.req.ResponseID, itoa(k)), k
}

// reasoning streams a piece of reasoning into the open reasoning item,
// opening one first (after closing a message the model wrote before it
// thought again). The item has its reasoning_text content part and, when
// the request asked for a summary, a summary part streamed alongside.
func (st *responseStream) reasoning(text string) {
	if text == "" {
		return
	}
	st.closeMessage("completed")
	if st.thinkID == "" {
		st.thinkID, st.thinkK = st.nextID("rs_")
		st.thought = st.thought[:0]
		opened := item{ID: st.thinkID, Type: "reasoning"}
		st.event("response.output_item.added", map[string]any{"output_index": st.thinkK, "item": opened.wire()})
		st.event("response.content_part.added", map[string]any{"item_id": st.thinkID, "output_index": st.thinkK, "content_index": 0,
			"part": contentPart{Type: "reasoning_text"}.wire()})
		if st.form.summary {
			st.event("response.reasoning_summary_part.added", map[string]any{"item_id": st.thinkID, "output_index": st.thinkK,
				"summary_index": 0, "part": contentPart{Type: "summary_text"}.wire()})
		}
	}
	st.thought = append(st.thought, text...)
	st.event("response.reasoning_text.delta", map[string]any{"item_id": st.thinkID, "output_index": st.thinkK, "content_index": 0, "delta": text})
	if st.form.summary {
		st.event("response.reasoning_summary_text.delta", map[string]any{"item_id": st.thinkID, "output_index": st.thinkK,
			"summary_index": 0, "delta": text})
	}
}

// closeReasoning finishes the open reasoning item, if any.
func (st *responseStream) closeReasoning() {
	if st.thinkID == "" {
		return
	}
	id, k, text := st.thinkID, st.thinkK, string(st.thought)
	st.event("response.reasoning_text.done", map[string]any{"item_id": id, "output_index": k, "content_index": 0, "text": text})
	st.event("response.content_part.done", map[string]any{"item_id": id, "output_index": k, "content_index": 0,
		"part": contentPart{Type: "reasoning_text", Text: text}.wire()})
	if st.form.summary {
		st.event("response.reasoning_summary_text.done", map[string]any{"item_id": id, "output_index": k, "summary_index": 0, "text": text})
		st.event("response.reasoning_summary_part.done", map[string]any{"item_id": id, "output_index": k, "summary_index": 0,
			"part": contentPart{Type: "summary_text", Text: text}.wire()})
	}
	st.event("response.output_item.done", map[string]any{"output_index": k, "item": reasoningItem(id, text, st.form).wire()})
	st.thinkID = ""
}

func (st *responseStream) delta(text string) {
	if text == "" {
		return
	}
	st.closeReasoning()
	if st.openID == "" {
		id, k := st.nextID("msg_")
		st.openID = id
		if st.text == nil {
			// One allocation for a typical answer instead of one per
			// doubling while it streams.
			st.text = make([]byte, 0, 1024)
		}
		st.text = st.text[:0]
		// The content list is there even empty: SDK stream accumulators
		// push parts into it.
		b := append(st.open("response.output_item.added"), `,"item":`...)
		b = appendMessageItem(b, id, "in_progress", nil)
		st.sw.end(append(appendOutputIndex(b, k), '}'))
		b = append(st.open("response.content_part.added"), `,"content_index":0,"item_id":`...)
		b = appendString(b, id)
		b = appendOutputIndex(b, k)
		b = append(b, `,"part":`...)
		st.sw.end(append(appendOutputText(b, ""), '}'))
	}
	st.text = append(st.text, text...)
	// The hot path: built by hand.
	b := append(st.sw.begin("response.output_text.delta"), `{"type":"response.output_text.delta","sequence_number":`...)
	b = appendInt(b, st.seq)
	st.seq++
	b = append(b, `,"item_id":`...)
	b = appendString(b, st.openID)
	b = append(b, `,"output_index":`...)
	b = appendInt(b, int64(st.index-1))
	b = append(b, `,"content_index":0,"delta":`...)
	b = appendString(b, text)
	st.sw.end(append(b, `,"logprobs":[]}`...))
}

// closeMessage finishes the open message item, if any, with status
// completed, or incomplete when the turn was cut short.
func (st *responseStream) closeMessage(status string) {
	if st.openID == "" {
		return
	}
	id, k, text := st.openID, st.index-1, string(st.text)
	// Fields in the order a map gave them before these were built by hand
	// (sorted keys): clients compare transcripts byte for byte.
	b := append(st.open("response.output_text.done"), `,"content_index":0,"item_id":`...)
	b = appendString(b, id)
	b = append(b, `,"logprobs":[]`...)
	b = appendOutputIndex(b, k)
	b = append(b, `,"text":`...)
	st.sw.end(append(appendString(b, text), '}'))
	b = append(st.open("response.content_part.done"), `,"content_index":0,"item_id":`...)
	b = appendString(b, id)
	b = appendOutputIndex(b, k)
	b = append(b, `,"part":`...)
	st.sw.end(append(appendOutputText(b, text), '}'))
	b = append(st.open("response.output_item.done"), `,"item":`...)
	b = appendMessageItem(b, id, status, &text)
	st.sw.end(append(appendOutputIndex(b, k), '}'))
	st.openID = ""
}

func (st *responseStream) call(c hermes.ToolCall) {
	id, k := st.nextID("fc_")
	added := callItem(id, "in_progress", hermes.ToolCall{ID: c.ID, Name: c.Name}, st.form)
	st.event("response.output_item.added", map[string]any{"output_index": k, "item": added.wire()})
	if c.Arguments != "" {
		st.event("response.function_call_arguments.delta", map[string]any{"item_id": id, "output_index": k, "delta": c.Arguments})
	}
	st.event("response.function_call_arguments.done", map[string]any{"item_id": id, "output_index": k, "name": c.Name, "arguments": c.Arguments})
	st.event("response.output_item.done", map[string]any{"output_index": k, "item": callItem(id, "completed", c, st.form).wire()})
}

// toolStarted opens the hosted item of an agent tool run: its arguments,
// then in_progress (mcp_call) or searching (web_search_call).
func (st *responseStream) toolStarted(c hermes.ToolCall) {
	id, k := st.nextID(agentItemPrefix(c))
	if st.running == nil {
		st.running = make(map[string]runningTool)
	}
	st.running[c.ID] = runningTool{id: id, k: k, call: c}
	it := agentItem(id, c, nil, st.form)
	ref := map[string]any{"item_id": id, "output_index": k}
	if it.Type == "web_search_call" {
		st.event("response.output_item.added", map[string]any{"output_index": k, "item": it.wire()})
		st.event("response.web_search_call.in_progress", ref)
		st.event("response.web_search_call.searching", ref)
		return
	}
	it.Arguments = ""
	st.event("response.output_item.added", map[string]any{"output_index": k, "item": it.wire()})
	if c.Arguments != "" {
		st.event("response.mcp_call_arguments.delta", map[string]any{"item_id": id, "output_index": k, "delta": c.Arguments})
	}
	st.event("response.mcp_call_arguments.done", map[string]any{"item_id": id, "output_index": k, "arguments": c.Arguments})
	st.event("response.mcp_call.in_progress", ref)
}

// toolFinished closes the hosted item of an agent tool run with its result.
func (st *responseStream) toolFinished(t *hermes.ToolEvent) {
	run, ok := st.running[t.CallID]
	if !ok {
		return
	}
	delete(st.running, t.CallID)
	result := hermes.Message{Role: hermes.RoleTool, ToolCallID: t.CallID, Content: t.Output}
	it := agentItem(run.id, run.call, &result, st.form)
	ref := map[string]any{"item_id": run.id, "output_index": run.k}
	switch {
	case it.Type == "web_search_call":
		st.event("response.web_search_call.completed", ref)
	case it.Status == "failed":
		st.event("response.mcp_call.failed", ref)
	default:
		st.event("response.mcp_call.completed", ref)
	}
	st.event("response.output_item.done", map[string]any{"output_index": run.k, "item": it.wire()})
}

func (st *responseStream) handle(ev hermes.Event) bool {
	if st.s.opts.HoldAnswer {
		// API_SERVER_STREAMING=false: a message's text goes out as one
		// delta when something else comes (a tool, the end).
		if ev.Kind == hermes.EventTextDelta {
			st.held = append(st.held, ev.Text...)
			return true
		}
		if len(st.held) > 0 && ev.Kind != hermes.EventReasoningDelta {
			st.delta(string(st.held))
			st.held = st.held[:0]
		}
	}
	switch ev.Kind {
	case hermes.EventTextDelta:
		st.delta(ev.Text)
	case hermes.EventReasoningDelta:
		st.reasoning(ev.Text)
	case hermes.EventToolStarted:
		st.closeReasoning()
		st.closeMessage("completed")
		c := hermes.ToolCall{ID: ev.Tool.CallID, Name: ev.Tool.Name, Arguments: ev.Tool.Arguments, Server: ev.Tool.Server, Tool: ev.Tool.Tool,
			ApprovalRequest: ev.Tool.ApprovalRequest}
		if st.form.agentFunctionCalls {
			st.call(c)
		} else {
			st.toolStarted(c)
		}
	case hermes.EventToolFinished:
		if !st.form.agentFunctionCalls {
			st.toolFinished(ev.Tool)
			break
		}
		id, k := st.nextID("fco_")
		it := callOutputItem(id, hermes.Message{Role: hermes.RoleTool, ToolCallID: ev.Tool.CallID, Content: ev.Tool.Output})
		st.event("response.output_item.added", map[string]any{"output_index": k, "item": it.wire()})
		st.event("response.output_item.done", map[string]any{"output_index": k, "item": it.wire()})
	case hermes.EventMCPList:
		id, k := st.nextID("mcpl_")
		opened := listItem(id, hermes.MCPList{Server: ev.List.Server})
		ref := map[string]any{"item_id": id, "output_index": k}
		st.event("response.output_item.added", map[string]any{"output_index": k, "item": opened.wire()})
		st.event("response.mcp_list_tools.in_progress", ref)
		st.event("response.mcp_list_tools.completed", ref)
		st.event("response.output_item.done", map[string]any{"output_index": k, "item": listItem(id, *ev.List).wire()})
	case hermes.EventCompaction:
		st.closeReasoning()
		st.closeMessage("completed")
		id, k := st.nextID("cmp_")
		it := compactionItem(id, *ev.Item)
		st.event("response.output_item.added", map[string]any{"output_index": k, "item": it.wire()})
		st.event("response.output_item.done", map[string]any{"output_index": k, "item": it.wire()})
	case hermes.EventDone:
		st.done(ev.Result)
		return false
	}
	return true
}

// done ends the stream: the open message item, calls handed back to the
// client, then exactly one terminal event — after an error event when the
// turn failed — and data: [DONE], as the Open Responses spec ends a stream.
func (st *responseStream) done(res *hermes.TurnResult) {
	rec := res.Record
	if rec == nil {
		// Nothing could be recorded (the history failed to load): the
		// stream still ends with a failed response.
		e := hermes.AsError(res.Err)
		rec = st.stub(hermes.StatusFailed)
		rec.Completed, rec.ErrCode, rec.ErrMessage = st.s.opts.Now(), e.Code, e.Message
	}
	msgStatus := "completed"
	if rec.Status != hermes.StatusCompleted {
		msgStatus = "incomplete"
	}
	st.closeReasoning()
	st.closeMessage(msgStatus)
	for _, c := range res.ClientToolCalls {
		st.call(c)
	}
	for _, c := range res.ApprovalRequests {
		id, k := st.nextID("mcpr_")
		it := approvalItem(id, c)
		st.event("response.output_item.added", map[string]any{"output_index": k, "item": it.wire()})
		st.event("response.output_item.done", map[string]any{"output_index": k, "item": it.wire()})
	}
	typ := "response.completed"
	switch rec.Status {
	case hermes.StatusFailed:
		typ = "response.failed"
		e := hermes.AsError(res.Err)
		if e == nil {
			e = &hermes.Error{Code: rec.ErrCode, Message: rec.ErrMessage}
		}
		_, errType := status(e.Code)
		st.event("error", map[string]any{"code": wireCode(e), "message": e.Message, "param": nullable(e.Param),
			"error": map[string]any{"type": errType, "code": wireCode(e), "message": e.Message, "param": nullable(e.Param)}})
	case hermes.StatusIncomplete, hermes.StatusCancelled:
		typ = "response.incomplete"
	}
	st.responseEvent(typ, rec)
	if st.sw.ws == nil {
		// A WebSocket message is an event; its stream has no end marker.
		st.sw.write([]byte("data: [DONE]\n\n"))
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// appendOutputIndex appends the output_index field.
func appendOutputIndex(b []byte, k int) []byte {
	return appendInt(append(b, `,"output_index":`...), int64(k))
}

// appendOutputText appends an output_text content part, as
// contentPart.wire encodes it.
func appendOutputText(b []byte, text string) []byte {
	b = append(b, `{"type":"output_text","text":`...)
	b = appendString(b, text)
	return append(b, `,"annotations":[],"logprobs":[]}`...)
}

// appendMessageItem appends an assistant message item as item.wire
// encodes it, its one output_text part holding *text; no part (an empty
// content list) when text is nil.
func appendMessageItem(b []byte, id, status string, text *string) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, id)
	b = append(b, `,"type":"message","status":`...)
	b = appendString(b, status)
	b = append(b, `,"role":"assistant","content":[`...)
	if text != nil {
		b = appendOutputText(b, *text)
	}
	return append(b, "]}"...)
}
