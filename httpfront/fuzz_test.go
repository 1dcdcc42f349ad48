package httpfront

import (
	"context"
	stdjson "encoding/json"
	"strings"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/actors"
	"github.com/hermesd/hermesd/tooling/llm"
)

// fuzzServer is a front end over a runtime with no store, so decoding an
// item_reference reaches the runtime and gets "not found" rather than a
// nil dereference.
func fuzzServer(f *testing.F) *Server {
	rt := actors.New(actors.Options{Agent: &actors.Agent{Model: llm.NewOffline()}})
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Shutdown(ctx)
	})
	return New(Options{Runtime: rt})
}

// checkDecodeError: every decode failure is a client error (400 with the
// envelope), never a 5xx or an untyped error.
func checkDecodeError(t *testing.T, body []byte, err error) {
	var e *hermes.Error
	if !asHermes(err, &e) {
		t.Fatalf("decode(%q): untyped error %T %v", body, err, err)
	}
	if st, _ := status(e.Code); st < 400 || st >= 500 {
		t.Fatalf("decode(%q): error %q maps to status %d, want a 4xx", body, e.Code, st)
	}
	env := appendErrorObject(nil, e)
	if !stdjson.Valid(env) {
		t.Fatalf("decode(%q): error envelope is not JSON: %s", body, env)
	}
}

func asHermes(err error, out **hermes.Error) bool {
	e, ok := err.(*hermes.Error)
	*out = e
	return ok
}

var chatSeeds = []string{
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	`{"messages":[{"role":"system","content":"be brief"}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:x"}}]}],"stream":true,"stream_options":{"include_usage":true}}`,
	`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"\n` + "`💻 ls`" + `\nok","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"}]}`,
	`{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
	`{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}`,
	`{"messages":[{"role":"bogus","content":"x"}]}`,
	`{"messages":[{"role":"user","content":7}]}`,
	`{"messages":"nope"}`,
	`[1,2]`,
	`{"messages":[{"role":"user","content":"\ud800"}]}`,
	"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}",
	`{`,
	``,
}

// FuzzDecodeChat: any body decodes to a usable turn request or a 4xx
// error; never a panic.
func FuzzDecodeChat(f *testing.F) {
	for _, s := range chatSeeds {
		f.Add([]byte(s))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		cr, req, err := s.decodeChat(body)
		if err != nil {
			checkDecodeError(t, body, err)
			return
		}
		if cr == nil || req == nil || len(req.Input) == 0 {
			t.Fatalf("decodeChat(%q): success without input", body)
		}
		if last := req.Input[len(req.Input)-1].Role; last != hermes.RoleUser && last != hermes.RoleTool {
			t.Fatalf("decodeChat(%q): last message role %q", body, last)
		}
		if len(req.Input) > maxMessages {
			t.Fatalf("decodeChat(%q): %d messages accepted", body, len(req.Input))
		}
		if req.MaxTokens < 0 {
			t.Fatalf("decodeChat(%q): negative max tokens", body)
		}
	})
}

var responsesSeeds = append([]string{
	`{"model":"m","input":"hi"}`,
	`{"input":"hi","previous_response_id":"resp_abc","store":false}`,
	`{"input":"hi","conversation":"named","instructions":"be brief","metadata":{"k":"v"}}`,
	`{"input":"hi","conversation":{"id":"conv_1"},"previous_response_id":"resp_x"}`,
	`{"input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}]}`,
	`{"input":[{"type":"item_reference","id":"msg_abc_0"},{"role":"user","content":"x"}]}`,
	`{"input":[{"type":"item_reference","id":"nounderscore"}]}`,
	`{"input":"x","tools":[{"type":"function","name":"f"},{"type":"web_search_preview"}],"tool_choice":"required","max_output_tokens":0}`,
	`{"input":"x","background":true,"store":false}`,
	`{"input":"x","previous_response_id":"../../etc"}`,
	`{"input":[{"type":"weird"}]}`,
	`{"input":[{"role":"developer","content":"sys"}]}`,
	`{"input":5}`,
	`{"input":"x","temperature":"hot"}`,
	`{"input":[{"role":"user","content":"x"},{"type":"function_call_output","call_id":"nowhere","output":"r"}]}`,
	`{"input":[{"type":"mcp_call","id":"mcp_a_1","server_label":"hermes","name":"terminal","arguments":"{}","output":"ok"},{"type":"function_call_output","call_id":"mcp_a_1","output":"again"}]}`,
	`{"input":[{"type":"mcp_call","id":"mcp_a_1","name":"t","error":{"code":1}},{"type":"web_search_call","id":"ws_1","action":{"type":"search","query":"q","sources":[{"type":"url","url":"u"}]}},{"type":"reasoning","id":"rs_1","summary":[]},{"role":"user","content":"y"}]}`,
	`{"input":"x","tools":[{"type":"namespace","name":"ns","tools":[{"type":"function","name":"g"},{"type":"function","name":"g"}]}]}`,
	`{"input":"x","tools":[{"type":"file_search"}],"max_tool_calls":0,"reasoning":{"effort":"max"}}`,
	`{"input":"x","tools":[{"type":"mcp","server_label":"hermes"},{"type":"web_search","external_web_access":false}],"include":["web_search_call.action.sources"],"truncation":"auto"}`,
	`null`,
}, hostileEchoes...)

// FuzzDecodeResponses: any /v1/responses body decodes to a turn request
// with input, or a 4xx error; never a panic; ids never carry path bytes.
func FuzzDecodeResponses(f *testing.F) {
	for _, s := range responsesSeeds {
		f.Add([]byte(s))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rr, req, err := s.decodeResponses(body)
		if err != nil {
			checkDecodeError(t, body, err)
			return
		}
		if rr == nil || req == nil || len(req.Input) == 0 {
			t.Fatalf("decodeResponses(%q): success without input", body)
		}
		if req.Conversation != "" && req.Previous != "" {
			t.Fatalf("decodeResponses(%q): both conversation and previous_response_id", body)
		}
		for _, id := range []string{req.Previous, req.Conversation} {
			if strings.ContainsAny(id, "/\\\x00\r\n") || len(id) > 256 {
				t.Fatalf("decodeResponses(%q): id %q accepted", body, id)
			}
		}
		if !stdjson.Valid(req.Wire) {
			t.Fatalf("decodeResponses(%q): stored wire echo is not JSON: %s", body, req.Wire)
		}
		if want, _ := gojson.Marshal(&rr.wire); string(req.Wire) != string(want) {
			t.Fatalf("decodeResponses(%q): Wire %s, the encoder writes %s", body, req.Wire, want)
		}
		// A stream echoes the request from the decoder's values, by
		// hand: what the generic encoder writes from the stored Wire.
		req.ResponseID, req.Created = "resp_fuzz", time.Unix(1700000000, 0)
		got, want := streamObjects(s, req, &rr.wire), wantObjects(t, s, req, 8)
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("decodeResponses(%q): response object frame %d:\n got %s\nwant %s", body, k, got[k], want[k])
			}
		}
		// Every tool output answers one call, once; with nothing to
		// continue, a call in the input.
		called, answered := map[string]bool{}, map[string]bool{}
		for _, m := range req.Input {
			for _, c := range m.ToolCalls {
				called[c.ID] = true
			}
			if m.Role != hermes.RoleTool {
				continue
			}
			if answered[m.ToolCallID] || (req.Previous == "" && req.Conversation == "" && !called[m.ToolCallID]) {
				t.Fatalf("decodeResponses(%q): output for %q accepted (answered %v, called %v)", body, m.ToolCallID, answered[m.ToolCallID], called[m.ToolCallID])
			}
			answered[m.ToolCallID] = true
		}
	})
}
