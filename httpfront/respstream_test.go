package httpfront

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
)

// genericEvent is how every Responses event was encoded before a text
// response's events were appended by hand: type and sequence_number, then
// the fields as a map (keys sorted) through the JSON encoder.
func genericEvent(t *testing.T, typ string, seq int, fields map[string]any) string {
	t.Helper()
	body, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := json.Marshal(typ)
	return "event: " + typ + "\ndata: {\"type\":" + string(head) + `,"sequence_number":` + itoa(seq) + "," + string(body[1:len(body)-1]) + "}\n\n"
}

// TestResponseStreamHandEncodedEvents streams text that needs every kind
// of JSON escaping (quotes, controls, HTML characters, U+2028, invalid
// UTF-8, non-ASCII) and checks that the hand-built frames of the message
// item and the response objects are byte for byte what the generic
// encoder makes of the same values, for a completed and a cut-short
// response and for a record whose codec fields differ from the request's.
func TestResponseStreamHandEncodedEvents(t *testing.T) {
	pieces := []string{"a\"b\\c\n\t\r", "<script>&amp;", "\u2028\u2029 é中\U0001F600", "bad\xff\xfeutf8", "\x00\x1f end"}
	created := time.Unix(1700000000, 0)
	reqWire := []byte(`{"store":true,"metadata":{"k":"v\u003c"},"instructions":"be \"brief\"","temperature":0.25}`)
	everyField := []byte(`{"store":true,"background":true,"instructions":"","max_output_tokens":77,"max_tool_calls":3,` +
		`"parallel_tool_calls":false,"temperature":1e-7,"top_p":0.9,"presence_penalty":-0.5,"frequency_penalty":2,"top_logprobs":4,` +
		`"reasoning":{"effort":"high","summary":"auto"},"safety_identifier":"u<1>","prompt_cache_key":"k","truncation":"auto",` +
		`"tool_choice":{"type":"function","name":"f"},"tools":[{"type":"function","name":"f","parameters":{"properties":{"usage":{"type":"string","description":"<&>"}}}}],` +
		`"metadata":{"z":"1","a":"\u2028","usage":"x"}}`)
	for _, tc := range []struct {
		name   string
		status hermes.Status
		// reqWire is the request's codec fields, wire the record's.
		reqWire, wire []byte
		prev, conv    string
		finish        hermes.FinishReason
		errCode       string
		call          bool
	}{
		{name: "completed", status: hermes.StatusCompleted, reqWire: reqWire, wire: reqWire},
		{name: "incomplete", status: hermes.StatusIncomplete, reqWire: reqWire, wire: reqWire},
		{name: "other-wire", status: hermes.StatusCompleted, reqWire: reqWire, wire: []byte(`{"store":false,"top_p":0.5}`)},
		{name: "length", status: hermes.StatusIncomplete, reqWire: everyField, wire: everyField, prev: "resp_prev", conv: "conv_\"1", finish: hermes.FinishLength},
		{name: "failed", status: hermes.StatusFailed, reqWire: everyField, wire: everyField, conv: "conv_1", errCode: "server_error"},
		{name: "with-call", status: hermes.StatusCompleted, reqWire: everyField, wire: everyField, prev: "resp_p", call: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &hermes.TurnRequest{ResponseID: "resp_x\"y", Model: "m<1>", Created: created, Wire: tc.reqWire, Previous: tc.prev, Conversation: tc.conv}
			var out bytes.Buffer
			sw := newSSEWriter(nil, &out, time.Minute, func() {})
			s := &Server{}
			st := &responseStream{s: s, req: req}
			st.begin(sw)
			for _, p := range pieces {
				st.handle(hermes.Event{Kind: hermes.EventTextDelta, Text: p})
			}
			text := strings.Join(pieces, "")
			rec := &hermes.StoredResponse{ID: req.ResponseID, Status: tc.status, Created: created, Completed: created.Add(time.Second),
				Model: req.Model, Output: []hermes.Message{{Role: hermes.RoleAssistant, Content: text}}, Wire: tc.wire,
				Usage:    hermes.Usage{PromptTokens: 9, CachedTokens: 2, CompletionTokens: 5, ReasoningTokens: 1},
				Previous: tc.prev, Conversation: tc.conv, Finish: tc.finish, ErrCode: tc.errCode, ErrMessage: "bad <thing>"}
			if tc.call {
				// Calls already streamed: the final object lists them after
				// the message, encoded generically.
				rec.Output[0].ToolCalls = []hermes.ToolCall{{ID: "call_1", Name: "f", Arguments: `{"a":"<b>"}`}}
			}
			st.handle(hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Record: rec}})
			sw.flush()

			stub := &hermes.StoredResponse{ID: req.ResponseID, Status: hermes.StatusInProgress, Created: created, Model: req.Model, Wire: tc.reqWire,
				Previous: tc.prev, Conversation: tc.conv}
			msgStatus, end := "completed", "response.completed"
			switch tc.status {
			case hermes.StatusIncomplete:
				msgStatus, end = "incomplete", "response.incomplete"
			case hermes.StatusFailed:
				msgStatus, end = "incomplete", "response.failed"
			}
			id := itemID("msg_", req.ResponseID, "0")
			want := genericEvent(t, "response.created", 0, map[string]any{"response": s.responseObj(stub)}) +
				genericEvent(t, "response.in_progress", 1, map[string]any{"response": s.responseObj(stub)}) +
				genericEvent(t, "response.output_item.added", 2, map[string]any{"output_index": 0,
					"item": item{ID: id, Type: "message", Status: "in_progress", Role: "assistant"}.wire()}) +
				genericEvent(t, "response.content_part.added", 3, map[string]any{"item_id": id, "output_index": 0, "content_index": 0,
					"part": outputText("").wire()})
			seq := 4
			for _, p := range pieces {
				want += genericEvent(t, "response.output_text.delta", seq, map[string]any{"item_id": id, "output_index": 0, "content_index": 0,
					"delta": p, "logprobs": emptyList})
				seq++
			}
			want += genericEvent(t, "response.output_text.done", seq, map[string]any{"item_id": id, "output_index": 0, "content_index": 0,
				"text": text, "logprobs": emptyList}) +
				genericEvent(t, "response.content_part.done", seq+1, map[string]any{"item_id": id, "output_index": 0, "content_index": 0,
					"part": outputText(text).wire()}) +
				genericEvent(t, "response.output_item.done", seq+2, map[string]any{"output_index": 0, "item": messageItem(id, msgStatus, text).wire()})
			seq += 3
			if tc.status == hermes.StatusFailed {
				e := &hermes.Error{Code: rec.ErrCode, Message: rec.ErrMessage}
				_, errType := status(e.Code)
				want += genericEvent(t, "error", seq, map[string]any{"code": wireCode(e), "message": e.Message, "param": nil,
					"error": map[string]any{"type": errType, "code": wireCode(e), "message": e.Message, "param": nil}})
				seq++
			}
			want += genericEvent(t, end, seq, map[string]any{"response": s.responseObj(rec)}) + "data: [DONE]\n\n"
			got := out.String()
			// Deltas were hand-built before this change, with their fields
			// in their own order: compare them as JSON, the rest as bytes.
			gotFrames, wantFrames := strings.Split(got, "\n\n"), strings.Split(want, "\n\n")
			if len(gotFrames) != len(wantFrames) {
				t.Fatalf("%d frames, want %d:\n%s", len(gotFrames), len(wantFrames), got)
			}
			for i := range gotFrames {
				g, w := gotFrames[i], wantFrames[i]
				if strings.HasPrefix(w, "event: response.output_text.delta\n") {
					g, w = canonical(t, g), canonical(t, w)
				}
				if g != w {
					t.Errorf("frame %d:\n got %s\nwant %s", i, g, w)
				}
			}
			if bytes.Equal(tc.reqWire, reqWire) && !strings.Contains(got, `"temperature":0.25`) || (tc.name == "other-wire") != strings.Contains(got, `"top_p":0.5`) {
				t.Errorf("response objects do not carry their record's codec fields:\n%s", got)
			}
		})
	}
}

// canonical re-encodes an SSE frame's JSON with sorted keys.
func canonical(t *testing.T, frame string) string {
	t.Helper()
	head, data, ok := strings.Cut(frame, "data: ")
	if !ok {
		t.Fatalf("no data in %q", frame)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	b, _ := json.Marshal(v)
	return head + string(b)
}

// hostileEchoes are request bodies whose echoed fields need every kind of
// care: metadata keys and values that escape or sort oddly, instructions
// with control characters, invalid UTF-8 and U+2028, tools and
// tool_choice sent with spaces, escapes, HTML characters and odd numbers,
// every reasoning form, truncation and the float and pointer parameters.
var hostileEchoes = []string{
	`{"input":"x","stream":true,"store":false}`,
	`{"input":"x","metadata":{"z":"1","a":"\u2028","":"empty","<k>":"v&","é":"\ud800","k\u0000":"ctl","\u00ff":"x","Z":"upper","usage":"x"}}`,
	"{\"input\":\"x\",\"instructions\":\"ctl \\u0000\\u001f\\n\\t \\udc00\\ud800 lone \u2028\u2029 <b>&amp; \\\"q\\\" \\\\ \"}",
	`{"input":"x","instructions":""}`,
	"{\"input\":\"x\",\"tools\" : [ {\"type\" : \"function\", \"name\":\"f\", \"description\":\"<&> \\u0041\\/ \u2028 \\udfff\", \"parameters\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\",\"minimum\":1.50e+3,\"maximum\":-0.0}}}} ]\n,\"tool_choice\" : { \"type\" : \"function\" , \"name\" : \"f\" } }",
	`{"input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":"none"}`,
	`{"input":"x","tool_choice":null,"tools":null}`,
	`{"input":"x","reasoning":{"effort":"high","summary":"auto"}}`,
	`{"input":"x","reasoning":{}}`,
	`{"input":"x","reasoning":{"summary":"detailed"}}`,
	`{"input":"x","truncation":"auto","parallel_tool_calls":false,"top_logprobs":20,"max_output_tokens":77,"max_tool_calls":3}`,
	`{"input":"x","temperature":1e-7,"top_p":0.999999999999,"presence_penalty":-0.0,"frequency_penalty":2}`,
	`{"input":"x","temperature":0,"top_p":1.0,"presence_penalty":1e20,"frequency_penalty":-1.5e-9}`,
	`{"input":"x","safety_identifier":"u<1>\u2028","prompt_cache_key":"k&\"","include":["reasoning.encrypted_content"]}`,
	`{"input":"x","previous_response_id":"resp_prev","store":false}`,
	`{"input":"x","conversation":"named \"one\""}`,
}

// streamObjects runs the opening and closing events of a text response
// to req and returns the response objects' frames: response.created,
// response.in_progress and the terminal event. wire is the decoder's
// echo, or nil to decode it from req.Wire.
func streamObjects(s *Server, req *hermes.TurnRequest, wire *responseWire) []string {
	var out bytes.Buffer
	sw := newSSEWriter(nil, &out, time.Minute, func() {})
	st := &responseStream{s: s, req: req, wire: wire}
	st.begin(sw)
	st.handle(hermes.Event{Kind: hermes.EventTextDelta, Text: "hi"})
	rec := &hermes.StoredResponse{ID: req.ResponseID, Previous: req.Previous, Conversation: req.Conversation, Status: hermes.StatusCompleted,
		Created: req.Created, Completed: req.Created.Add(time.Second), Model: req.Model, Wire: req.Wire,
		Output: []hermes.Message{{Role: hermes.RoleAssistant, Content: "hi"}}, Usage: hermes.Usage{PromptTokens: 3, CompletionTokens: 1}}
	st.handle(hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Record: rec}})
	sw.flush()
	frames := strings.Split(out.String(), "\n\n")
	return []string{frames[0], frames[1], frames[len(frames)-3]}
}

// wantObjects is what streamObjects must give: the response objects as
// the generic encoder writes them from the record's Wire (what GET gives).
func wantObjects(t *testing.T, s *Server, req *hermes.TurnRequest, seq int) []string {
	t.Helper()
	stub := &hermes.StoredResponse{ID: req.ResponseID, Previous: req.Previous, Conversation: req.Conversation, Status: hermes.StatusInProgress,
		Created: req.Created, Model: req.Model, Wire: req.Wire}
	rec := *stub
	rec.Status, rec.Completed = hermes.StatusCompleted, req.Created.Add(time.Second)
	rec.Output = []hermes.Message{{Role: hermes.RoleAssistant, Content: "hi"}}
	rec.Usage = hermes.Usage{PromptTokens: 3, CompletionTokens: 1}
	frame := func(typ string, seq int, r *hermes.StoredResponse) string {
		return strings.TrimSuffix(genericEvent(t, typ, seq, map[string]any{"response": s.responseObj(r)}), "\n\n")
	}
	return []string{frame("response.created", 0, stub), frame("response.in_progress", 1, stub), frame("response.completed", seq, &rec)}
}

// TestResponseStreamEchoesDecodedRequest: a stream echoes its request
// from the decoder's own values (no decoding of the Wire it just encoded)
// with params and metadata appended by hand, and its response objects are
// byte for byte what the generic encoder writes from the stored Wire, for
// every hostile echo; a stream that decodes Wire itself (a WebSocket's)
// writes the same.
func TestResponseStreamEchoesDecodedRequest(t *testing.T) {
	s := New(Options{})
	for i, body := range hostileEchoes {
		rr, req, err := s.decodeResponses([]byte(body))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		req.ResponseID, req.Created = "resp_e"+itoa(i), time.Unix(1700000000, 0)
		got := streamObjects(s, req, &rr.wire)
		want := wantObjects(t, s, req, 8)
		fromWire := streamObjects(s, req, nil)
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%d: %s frame %d:\n got %s\nwant %s", i, body, k, got[k], want[k])
			}
			if fromWire[k] != want[k] {
				t.Errorf("%d: %s frame %d decoded from Wire:\n got %s\nwant %s", i, body, k, fromWire[k], want[k])
			}
		}
	}
}

// TestWireAsEncoded: the Wire a request stores, appended by hand with
// its raw fields copied, is byte for byte what json.Marshal writes of the
// same values, for every hostile echo and with every field set.
func TestWireAsEncoded(t *testing.T) {
	s := New(Options{})
	bodies := append([]string{`{"input":"x","background":true,"store":true,"include":["a","b\u2028"],"instructions":"i","metadata":{"k":"v"},` +
		`"tools":[{"type":"function","name":"f"}],"tool_choice":"auto","max_output_tokens":5,"max_tool_calls":2,"parallel_tool_calls":true,` +
		`"temperature":0.5,"top_p":0.1,"presence_penalty":0.2,"frequency_penalty":0.3,"top_logprobs":1,"reasoning":{"effort":"low"},` +
		`"safety_identifier":"s","prompt_cache_key":"p","truncation":"disabled"}`}, hostileEchoes...)
	for _, body := range bodies {
		rr, req, err := s.decodeResponses([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		want, err := json.Marshal(&rr.wire)
		if err != nil {
			t.Fatal(err)
		}
		if string(req.Wire) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", body, req.Wire, want)
		}
	}
}

// TestCanonicalRaw: a raw value is echoed as the encoder writes a
// json.RawMessage.
func TestCanonicalRaw(t *testing.T) {
	for _, raw := range []string{`[]`, `"auto"`, `null`, `{"a":[1,2.50,-0.0,1E5,1e400]}`, `{ "a" : 1 }`, "[\n1,\t2\r]", `["<"]`, `[">"]`, `["&"]`,
		`["\u003c\u2028\/\u0041"]`, "[\"\u2028\"]", "[\"\u2029\"]", "[\"\xff\"]", "[\"\xe2\x80\"]", `["é中😀"]`, `["a\"<"]`, `["\\"," "]`, `"\\\""`} {
		want, err := json.Marshal(json.RawMessage(raw))
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got := appendRaw(nil, json.RawMessage(raw), false); string(got) != string(want) {
			t.Errorf("appendRaw(%q) = %q, want %q", raw, got, want)
		}
		if got := appendRaw(nil, want, true); string(got) != string(want) {
			t.Errorf("appendRaw(%q, canonical) = %q", want, got)
		}
	}
}
