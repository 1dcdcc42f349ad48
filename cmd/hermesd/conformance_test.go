package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// Conformance with the Open Responses specification (openresponses.org,
// public/openapi/openapi.json, version 2026-04-24): every response object
// and every streamed event hermesd sends is checked against the fields,
// types, enums and nullability the spec's schemas give. The checks are
// written here from the schema, not generated from it.
//
// The spec's item union has message, function_call, function_call_output,
// reasoning and compaction. hermesd's hosted-tool items (mcp_call,
// web_search_call) and their events are OpenAI's; they are checked against
// OpenAI's shapes, and every other item or event type fails the test.

// schemaErrors collects violations with their JSON path.
type schemaErrors []string

func (e *schemaErrors) add(path, format string, args ...any) {
	*e = append(*e, path+": "+fmt.Sprintf(format, args...))
}

type obj = map[string]any

// field returns m[key], recording a violation when a required key is absent.
func (e *schemaErrors) field(m obj, path, key string) (any, bool) {
	v, ok := m[key]
	if !ok {
		e.add(path, "required field %q is missing", key)
	}
	return v, ok
}

func (e *schemaErrors) str(m obj, path, key string, nullable bool, enum ...string) {
	v, ok := e.field(m, path, key)
	if !ok || (v == nil && nullable) {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		e.add(path+"."+key, "want string%s, got %s", orNull(nullable), jsonOf(v))
		return
	}
	if len(enum) > 0 && !slices.Contains(enum, s) {
		e.add(path+"."+key, "%q is not one of %v", s, enum)
	}
}

func (e *schemaErrors) integer(m obj, path, key string, nullable bool) {
	v, ok := e.field(m, path, key)
	if !ok || (v == nil && nullable) {
		return
	}
	if f, isNum := v.(float64); !isNum || f != math.Trunc(f) {
		e.add(path+"."+key, "want integer%s, got %s", orNull(nullable), jsonOf(v))
	}
}

func (e *schemaErrors) number(m obj, path, key string) {
	if v, ok := e.field(m, path, key); ok {
		if _, isNum := v.(float64); !isNum {
			e.add(path+"."+key, "want number, got %s", jsonOf(v))
		}
	}
}

func (e *schemaErrors) boolean(m obj, path, key string, nullable bool) {
	v, ok := e.field(m, path, key)
	if !ok || (v == nil && nullable) {
		return
	}
	if _, isBool := v.(bool); !isBool {
		e.add(path+"."+key, "want boolean%s, got %s", orNull(nullable), jsonOf(v))
	}
}

// object returns m[key] as an object; nil (and no violation) when it is a
// null the schema allows.
func (e *schemaErrors) object(m obj, path, key string, nullable bool) obj {
	v, ok := e.field(m, path, key)
	if !ok || (v == nil && nullable) {
		return nil
	}
	o, isObj := v.(obj)
	if !isObj {
		e.add(path+"."+key, "want object%s, got %s", orNull(nullable), jsonOf(v))
	}
	return o
}

func (e *schemaErrors) array(m obj, path, key string, required bool) []any {
	v, ok := m[key]
	if !ok {
		if required {
			e.add(path, "required field %q is missing", key)
		}
		return nil
	}
	a, isArr := v.([]any)
	if !isArr {
		e.add(path+"."+key, "want array, got %s", jsonOf(v))
	}
	return a
}

func orNull(nullable bool) string {
	if nullable {
		return " or null"
	}
	return ""
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		b = append(b[:80], "…"...)
	}
	return string(b)
}

// checkResponseResource checks the spec's ResponseResource.
func (e *schemaErrors) checkResponseResource(r obj, path string) {
	e.str(r, path, "id", false)
	e.str(r, path, "object", false, "response")
	e.integer(r, path, "created_at", false)
	e.integer(r, path, "completed_at", true)
	e.str(r, path, "status", false)
	if d := e.object(r, path, "incomplete_details", true); d != nil {
		e.str(d, path+".incomplete_details", "reason", false)
	}
	e.str(r, path, "model", false)
	e.str(r, path, "previous_response_id", true)
	e.str(r, path, "instructions", true)
	for i, it := range e.array(r, path, "output", true) {
		e.checkItem(it, fmt.Sprintf("%s.output[%d]", path, i))
	}
	if er := e.object(r, path, "error", true); er != nil {
		e.str(er, path+".error", "code", false)
		e.str(er, path+".error", "message", false)
	}
	for i, tv := range e.array(r, path, "tools", true) {
		t, _ := tv.(obj)
		p := fmt.Sprintf("%s.tools[%d]", path, i)
		if t == nil {
			e.add(p, "want object")
			continue
		}
		if t["type"] != "function" {
			continue // hosted tool types are OpenAI's, echoed as sent
		}
		e.str(t, p, "name", false)
		e.str(t, p, "description", true)
		e.object(t, p, "parameters", true)
		e.boolean(t, p, "strict", true)
	}
	e.checkToolChoice(r, path)
	e.str(r, path, "truncation", false, "auto", "disabled")
	e.boolean(r, path, "parallel_tool_calls", false)
	if text := e.object(r, path, "text", false); text != nil {
		if f := e.object(text, path+".text", "format", false); f != nil {
			e.str(f, path+".text.format", "type", false, "text", "json_object", "json_schema")
		}
	}
	for _, k := range []string{"top_p", "presence_penalty", "frequency_penalty", "temperature"} {
		e.number(r, path, k)
	}
	e.integer(r, path, "top_logprobs", false)
	if rs := e.object(r, path, "reasoning", true); rs != nil {
		e.str(rs, path+".reasoning", "effort", true, "none", "minimal", "low", "medium", "high", "xhigh")
		e.str(rs, path+".reasoning", "summary", true, "concise", "detailed", "auto")
	}
	if u := e.object(r, path, "usage", true); u != nil {
		p := path + ".usage"
		for _, k := range []string{"input_tokens", "output_tokens", "total_tokens"} {
			e.integer(u, p, k, false)
		}
		if d := e.object(u, p, "input_tokens_details", false); d != nil {
			e.integer(d, p+".input_tokens_details", "cached_tokens", false)
		}
		if d := e.object(u, p, "output_tokens_details", false); d != nil {
			e.integer(d, p+".output_tokens_details", "reasoning_tokens", false)
		}
	}
	e.integer(r, path, "max_output_tokens", true)
	e.integer(r, path, "max_tool_calls", true)
	e.boolean(r, path, "store", false)
	e.boolean(r, path, "background", false)
	e.str(r, path, "service_tier", false)
	e.field(r, path, "metadata")
	e.str(r, path, "safety_identifier", true)
	e.str(r, path, "prompt_cache_key", true)
}

func (e *schemaErrors) checkToolChoice(r obj, path string) {
	v, ok := e.field(r, path, "tool_choice")
	if !ok {
		return
	}
	switch tc := v.(type) {
	case string:
		if !slices.Contains([]string{"none", "auto", "required"}, tc) {
			e.add(path+".tool_choice", "%q is not none, auto or required", tc)
		}
	case obj:
		switch tc["type"] {
		case "function":
		case "allowed_tools":
			e.array(tc, path+".tool_choice", "tools", true)
			e.str(tc, path+".tool_choice", "mode", false, "none", "auto", "required")
		default:
			e.add(path+".tool_choice", "type %v is not function or allowed_tools", tc["type"])
		}
	default:
		e.add(path+".tool_choice", "want string or object, got %s", jsonOf(v))
	}
}

var itemStatus = []string{"in_progress", "completed", "incomplete"}

// checkItem checks one ItemField (or one of OpenAI's hosted-tool items).
func (e *schemaErrors) checkItem(v any, path string) {
	it, ok := v.(obj)
	if !ok {
		e.add(path, "item is not an object: %s", jsonOf(v))
		return
	}
	e.str(it, path, "id", false)
	switch it["type"] {
	case "message":
		e.str(it, path, "status", false, itemStatus...)
		e.str(it, path, "role", false, "user", "assistant", "system", "developer")
		for i, p := range e.array(it, path, "content", true) {
			e.checkPart(p, fmt.Sprintf("%s.content[%d]", path, i))
		}
	case "function_call":
		e.str(it, path, "call_id", false)
		e.str(it, path, "name", false)
		e.str(it, path, "arguments", false)
		e.str(it, path, "status", false, itemStatus...)
	case "function_call_output":
		e.str(it, path, "call_id", false)
		if out, ok := e.field(it, path, "output"); ok {
			if _, isStr := out.(string); !isStr {
				e.array(it, path, "output", true)
			}
		}
		e.str(it, path, "status", false, itemStatus...)
	case "reasoning":
		for i, p := range e.array(it, path, "summary", true) {
			e.checkPart(p, fmt.Sprintf("%s.summary[%d]", path, i))
		}
		if _, ok := it["content"]; ok {
			for i, p := range e.array(it, path, "content", true) {
				e.checkPart(p, fmt.Sprintf("%s.content[%d]", path, i))
			}
		}
		if _, ok := it["encrypted_content"]; ok {
			e.str(it, path, "encrypted_content", true)
		}
	case "compaction":
		e.str(it, path, "encrypted_content", false)
	case "mcp_call": // OpenAI's McpToolCall
		e.str(it, path, "server_label", false)
		e.str(it, path, "name", false)
		e.str(it, path, "arguments", false)
		e.str(it, path, "output", true)
		e.str(it, path, "error", true)
		e.str(it, path, "status", false, "in_progress", "completed", "incomplete", "calling", "failed")
	case "web_search_call": // OpenAI's ResponseFunctionWebSearch
		e.str(it, path, "status", false, "in_progress", "searching", "completed", "failed")
		if a := e.object(it, path, "action", false); a != nil {
			e.str(a, path+".action", "type", false, "search")
			e.str(a, path+".action", "query", false)
			for i, sv := range e.array(a, path+".action", "sources", false) {
				s, _ := sv.(obj)
				p := fmt.Sprintf("%s.action.sources[%d]", path, i)
				if s == nil {
					e.add(p, "want object")
					continue
				}
				e.str(s, p, "type", false, "url")
				e.str(s, p, "url", false)
			}
		}
	default:
		e.add(path+".type", "item type %v is in neither the Open Responses schema nor OpenAI's hosted items", it["type"])
	}
}

func (e *schemaErrors) checkPart(v any, path string) {
	p, ok := v.(obj)
	if !ok {
		e.add(path, "content part is not an object")
		return
	}
	switch p["type"] {
	case "input_text", "text", "summary_text", "reasoning_text":
		e.str(p, path, "text", false)
	case "output_text":
		e.str(p, path, "text", false)
		e.array(p, path, "annotations", true)
		e.array(p, path, "logprobs", false)
	case "refusal":
		e.str(p, path, "refusal", false)
	case "input_image":
		e.str(p, path, "image_url", true)
		e.str(p, path, "detail", false, "low", "high", "auto")
	case "input_file":
	default:
		e.add(path+".type", "unknown content part type %v", p["type"])
	}
}

// ref checks the item_id/output_index pair events name an item by.
func (e *schemaErrors) ref(m obj, path string) {
	e.str(m, path, "item_id", false)
	e.integer(m, path, "output_index", false)
}

// checkEvent checks one streamed event against its schema.
func (e *schemaErrors) checkEvent(ev obj, path string) {
	e.str(ev, path, "type", false)
	e.integer(ev, path, "sequence_number", false)
	switch typ, _ := ev["type"].(string); typ {
	case "response.created", "response.queued", "response.in_progress",
		"response.completed", "response.failed", "response.incomplete":
		if r := e.object(ev, path, "response", false); r != nil {
			e.checkResponseResource(r, path+".response")
		}
	case "response.output_item.added", "response.output_item.done":
		e.integer(ev, path, "output_index", false)
		if it, ok := e.field(ev, path, "item"); ok && it != nil {
			e.checkItem(it, path+".item")
		}
	case "response.content_part.added", "response.content_part.done":
		e.ref(ev, path)
		e.integer(ev, path, "content_index", false)
		if p, ok := e.field(ev, path, "part"); ok {
			e.checkPart(p, path+".part")
		}
	case "response.output_text.delta":
		e.ref(ev, path)
		e.integer(ev, path, "content_index", false)
		e.str(ev, path, "delta", false)
		e.array(ev, path, "logprobs", false)
	case "response.output_text.done":
		e.ref(ev, path)
		e.integer(ev, path, "content_index", false)
		e.str(ev, path, "text", false)
		e.array(ev, path, "logprobs", false)
	case "response.reasoning_text.delta":
		e.ref(ev, path)
		e.integer(ev, path, "content_index", false)
		e.str(ev, path, "delta", false)
	case "response.reasoning_text.done":
		e.ref(ev, path)
		e.integer(ev, path, "content_index", false)
		e.str(ev, path, "text", false)
	case "response.reasoning_summary_part.added", "response.reasoning_summary_part.done":
		e.ref(ev, path)
		e.integer(ev, path, "summary_index", false)
		if p, ok := e.field(ev, path, "part"); ok {
			e.checkPart(p, path+".part")
		}
	case "response.reasoning_summary_text.delta":
		e.ref(ev, path)
		e.integer(ev, path, "summary_index", false)
		e.str(ev, path, "delta", false)
	case "response.reasoning_summary_text.done":
		e.ref(ev, path)
		e.integer(ev, path, "summary_index", false)
		e.str(ev, path, "text", false)
	case "response.function_call_arguments.delta", "response.mcp_call_arguments.delta":
		e.ref(ev, path)
		e.str(ev, path, "delta", false)
	case "response.function_call_arguments.done", "response.mcp_call_arguments.done":
		e.ref(ev, path)
		e.str(ev, path, "arguments", false)
	case "response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed",
		"response.web_search_call.in_progress", "response.web_search_call.searching", "response.web_search_call.completed":
		e.ref(ev, path)
	case "error":
		if er := e.object(ev, path, "error", false); er != nil {
			p := path + ".error"
			e.str(er, p, "type", false)
			e.str(er, p, "code", true)
			e.str(er, p, "message", false)
			e.str(er, p, "param", true)
		}
	default:
		e.add(path+".type", "event type %q is in neither the Open Responses schema nor OpenAI's hosted-tool events", typ)
	}
}

// conformStream streams body and checks every event, the sequence, the
// item ids deltas name, one terminal event and the closing [DONE]; it
// returns the terminal event's response.
func conformStream(t *testing.T, h *hermesd, body string) obj {
	t.Helper()
	evs, done := rawResponseStream(t, h, body)
	var e schemaErrors
	if !done {
		e.add("stream", "does not end with data: [DONE]")
	}
	items := map[float64]string{} // output_index → item id
	var final obj
	terminals := 0
	for i, raw := range evs {
		var ev obj
		if err := json.Unmarshal([]byte(raw.Data), &ev); err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("event[%d] %s", i, raw.Type)
		e.checkEvent(ev, path)
		if raw.Seq != i {
			e.add(path, "sequence_number %d, want %d", raw.Seq, i)
		}
		idx, _ := ev["output_index"].(float64)
		if raw.Type == "response.output_item.added" {
			it, _ := ev["item"].(obj)
			id, _ := it["id"].(string)
			items[idx] = id
		}
		if id, ok := ev["item_id"].(string); ok && items[idx] != id {
			e.add(path, "item_id %q, but output_index %v is item %q", id, idx, items[idx])
		}
		switch raw.Type {
		case "response.completed", "response.failed", "response.incomplete":
			terminals++
			final, _ = ev["response"].(obj)
			if i != len(evs)-1 {
				e.add(path, "terminal event is not the last")
			}
		}
	}
	if terminals != 1 {
		e.add("stream", "%d terminal events, want 1", terminals)
	}
	if len(e) > 0 {
		t.Fatalf("%s\n%s", body, strings.Join(e, "\n"))
	}
	return final
}

// conformObject posts a non-stream body (or GETs a stored one) and checks
// the response object.
func conformObject(t *testing.T, h *hermesd, method, path, body string) obj {
	t.Helper()
	resp, got := h.do(t, method, path, body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, got)
	}
	var r obj
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatal(err)
	}
	var e schemaErrors
	e.checkResponseResource(r, "response")
	if len(e) > 0 {
		t.Fatalf("%s\n%s", body, strings.Join(e, "\n"))
	}
	return r
}

func outputTypes(r obj) string {
	var types []string
	for _, it := range r["output"].([]any) {
		types = append(types, it.(obj)["type"].(string))
	}
	return strings.Join(types, ",")
}

func TestOpenResponsesConformance(t *testing.T) {
	// A SearXNG stand-in, so web_search runs over loopback.
	searx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"results":[{"title":"Go","url":"https://go.dev/","content":"The Go language"}]}`))
	}))
	defer searx.Close()
	h := startHermes(t, map[string]string{"HERMES_WEB_BACKEND": "searxng", "SEARXNG_URL": searx.URL})

	weather := `"tools":[{"type":"function","name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}]`
	image := "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
	cases := []struct {
		name, body, want string // want: the output item types
		status           string
	}{
		{"text", `{"model":"hermes-agent","input":"hello"}`, "message", "completed"},
		{"system message", `{"model":"hermes-agent","input":[{"role":"system","content":"be brief"},{"role":"user","content":"/echo-system"}]}`, "message", "completed"},
		{"client function tool", `{"model":"hermes-agent",` + weather + `,"input":"/tool get_weather {\"city\":\"Paris\"}"}`, "function_call", "completed"},
		{"input_image", `{"model":"hermes-agent","input":[{"role":"user","content":[{"type":"input_text","text":"what is this"},{"type":"input_image","image_url":"` + image + `"}]}]}`, "message", "completed"},
		{"multi-turn with an assistant message", `{"model":"hermes-agent","input":[{"role":"user","content":"hi"},{"type":"message","role":"assistant","id":"msg_1","content":[{"type":"output_text","text":"hello"}]},{"role":"user","content":"/echo-history"}]}`, "message", "completed"},
		{"agent tool run", `{"model":"hermes-agent","input":"/tool terminal {\"command\":\"echo hi\"}"}`, "mcp_call,message", "completed"},
		{"failed agent tool", `{"model":"hermes-agent","input":"/tool read_file {\"path\":\"no/such/file\"}"}`, "mcp_call,message", "completed"},
		{"web search with sources", `{"model":"hermes-agent","include":["web_search_call.action.sources"],"input":"/tool web_search {\"query\":\"golang\"}"}`, "web_search_call,message", "completed"},
		{"reasoning", `{"model":"hermes-agent","input":"/think pondering\nhi"}`, "reasoning,message", "completed"},
		{"reasoning with summary and encrypted content", `{"model":"hermes-agent","reasoning":{"effort":"high","summary":"auto"},` +
			`"include":["reasoning.encrypted_content"],"input":"/think pondering\nhi"}`, "reasoning,message", "completed"},
		{"reasoning before agent tool runs", `{"model":"hermes-agent","reasoning":{"summary":"detailed"},"input":"/think which tool\n/tool terminal {\"command\":\"echo hi\"}"}`,
			"reasoning,mcp_call,reasoning,message", "completed"},
		{"reasoning before a client call", `{"model":"hermes-agent",` + weather + `,"input":"/think need weather\n/tool get_weather {\"city\":\"Paris\"}"}`,
			"reasoning,function_call", "completed"},
		{"max_output_tokens cut-off", `{"model":"hermes-agent","max_output_tokens":16,"input":"/tokens 40"}`, "message", "incomplete"},
		{"every echoed field", `{"model":"hermes-agent","input":"hi","reasoning":{"effort":"low"},"max_tool_calls":3,"temperature":0.5,"top_p":0.9,` +
			`"presence_penalty":0.1,"frequency_penalty":0.2,"top_logprobs":2,"safety_identifier":"u1","prompt_cache_key":"k1","truncation":"auto",` +
			`"tool_choice":"none","instructions":"be brief","metadata":{"a":"b"}}`, "message", "completed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := conformObject(t, h, "POST", "/v1/responses", tc.body)
			if got := outputTypes(r); got != tc.want || r["status"] != tc.status {
				t.Fatalf("output %s status %v, want %s %s", got, r["status"], tc.want, tc.status)
			}
			conformObject(t, h, "GET", "/v1/responses/"+r["id"].(string), "")
			final := conformStream(t, h, strings.Replace(tc.body, "{", `{"stream":true,`, 1))
			if got := outputTypes(final); got != tc.want || final["status"] != tc.status {
				t.Fatalf("streamed output %s status %v, want %s %s", got, final["status"], tc.want, tc.status)
			}
		})
	}

	t.Run("web search sources", func(t *testing.T) {
		r := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","include":["web_search_call.action.sources"],"input":"/tool web_search {\"query\":\"golang\"}"}`)
		action := r["output"].([]any)[0].(obj)["action"].(obj)
		if action["query"] != "golang" || jsonOf(action["sources"]) != `[{"type":"url","url":"https://go.dev/"}]` {
			t.Fatalf("action %s", jsonOf(action))
		}
		r = conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":"/tool web_search {\"query\":\"golang\"}"}`)
		if _, ok := r["output"].([]any)[0].(obj)["action"].(obj)["sources"]; ok {
			t.Fatal("sources without include")
		}
	})

	t.Run("failed agent tool item", func(t *testing.T) {
		r := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":"/tool read_file {\"path\":\"no/such/file\"}"}`)
		call := r["output"].([]any)[0].(obj)
		if call["status"] != "failed" || call["output"] != nil || call["error"] == nil {
			t.Fatalf("failed mcp_call: %s", jsonOf(call))
		}
	})

	t.Run("failure mid-stream", func(t *testing.T) {
		final := conformStream(t, h, `{"model":"m","stream":true,"input":"/fail-after 2 upstream fell over"}`)
		if final["status"] != "failed" || final["error"].(obj)["message"] != "upstream fell over" {
			t.Fatalf("final %s", jsonOf(final))
		}
		conformObject(t, h, "GET", "/v1/responses/"+final["id"].(string), "")
	})

	t.Run("input_items", func(t *testing.T) {
		r := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"see"},{"type":"input_image","image_url":"`+image+`"}]},`+
			`{"type":"mcp_call","id":"mcp_a_1","server_label":"hermes","name":"terminal","arguments":"{}","output":"ok"},{"role":"user","content":"next"}]}`)
		resp, body := h.do(t, "GET", "/v1/responses/"+r["id"].(string)+"/input_items?order=asc", "")
		var list struct{ Data []any }
		if err := json.Unmarshal([]byte(body), &list); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var e schemaErrors
		for i, it := range list.Data {
			e.checkItem(it, fmt.Sprintf("data[%d]", i))
		}
		if len(e) > 0 || len(list.Data) != 3 || list.Data[1].(obj)["type"] != "mcp_call" {
			t.Fatalf("%s\n%s", body, strings.Join(e, "\n"))
		}
	})
}

// The checks catch what they should: a response object missing a
// required field, a wrong type, a bad enum, an unknown item type.
func TestOpenResponsesChecksFail(t *testing.T) {
	good := `{"id":"resp_1","object":"response","created_at":1,"completed_at":null,"status":"completed","incomplete_details":null,
		"model":"m","previous_response_id":null,"instructions":null,"output":[],"error":null,"tools":[],"tool_choice":"auto",
		"truncation":"disabled","parallel_tool_calls":true,"text":{"format":{"type":"text"}},"top_p":1,"presence_penalty":0,
		"frequency_penalty":0,"top_logprobs":0,"temperature":1,"reasoning":null,"usage":null,"max_output_tokens":null,
		"max_tool_calls":null,"store":true,"background":false,"service_tier":"default","metadata":{},"safety_identifier":null,"prompt_cache_key":null}`
	check := func(doc string) schemaErrors {
		var r obj
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatal(err)
		}
		var e schemaErrors
		e.checkResponseResource(r, "response")
		return e
	}
	if e := check(good); len(e) > 0 {
		t.Fatalf("a conforming object fails: %v", e)
	}
	for _, bad := range []struct{ from, to string }{
		{`"presence_penalty":0,`, ``},
		{`"reasoning":null`, `"reasoning":{"effort":"high"}`},
		{`"max_tool_calls":null`, `"max_tool_calls":"3"`},
		{`"truncation":"disabled"`, `"truncation":"off"`},
		{`"output":[]`, `"output":[{"id":"x","type":"function_call_result"}]`},
		{`"output":[]`, `"output":[{"id":"x","type":"message","status":"done","role":"assistant","content":[]}]`},
		{`"created_at":1`, `"created_at":1.5`},
	} {
		if e := check(strings.Replace(good, bad.from, bad.to, 1)); len(e) == 0 {
			t.Errorf("%q → %q passed the checks", bad.from, bad.to)
		}
	}
}
