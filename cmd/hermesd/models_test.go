package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// startWithConfig starts hermesd whose $HERMES_HOME/config.yaml is yaml
// (with {{NAME}} replaced by urls[NAME]), plus env.
func startWithConfig(t *testing.T, yaml string, urls map[string]string, env map[string]string) *hermesd {
	t.Helper()
	for k, v := range urls {
		yaml = strings.ReplaceAll(yaml, "{{"+k+"}}", v)
	}
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"HERMES_HOME": home}
	for k, v := range env {
		vars[k] = v
	}
	return startHermes(t, vars)
}

// chat sends a non-streaming chat completion naming model; it returns the
// status, the X-Hermes-Model header and the decoded body.
func chat(t *testing.T, h *hermesd, model, text string) (int, string, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "messages": []any{map[string]any{"role": "user", "content": text}}})
	resp, out := h.do(t, "POST", "/v1/chat/completions", string(body))
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("body %q: %v", out, err)
	}
	return resp.StatusCode, resp.Header.Get("X-Hermes-Model"), v
}

func answerOf(v map[string]any) string {
	choices, _ := v["choices"].([]any)
	if len(choices) == 0 {
		return ""
	}
	msg, _ := choices[0].(map[string]any)["message"].(map[string]any)
	s, _ := msg["content"].(string)
	return s
}

// refusedURL is a loopback address nothing listens on.
func refusedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/v1"
}

const modelsYAML = `
default_model: fast
models:
  - id: fast
    base_url: {{A}}
    api_key: key-a-123456
    model: upstream-fast
    context_window: 32000
    fallbacks: [backup]
  - id: smart
    base_url: {{B}}
    api_key: key-b-123456
    model: upstream-smart
    reasoning: true
    vision: true
    tools: false
  - id: backup
    base_url: {{C}}
    model: upstream-backup
`

// TestModelsRouting: a request's model picks its upstream (its key and
// its upstream id); an unknown or empty one goes to default_model; the
// answer's model field and X-Hermes-Model name the model; a model without
// tools is called without them; GET /v1/models lists every model.
func TestModelsRouting(t *testing.T) {
	mk := func(name string) *hermestest.Upstream {
		return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "from " + name} })
	}
	a, b, c := mk("a"), mk("b"), mk("c")
	h := startWithConfig(t, modelsYAML, map[string]string{"A": a.URL + "/v1", "B": b.URL + "/v1", "C": c.URL + "/v1"}, nil)

	for _, tc := range []struct{ ask, model, answer string }{
		{"smart", "smart", "from b"},
		{"fast", "fast", "from a"},
		{"gpt-4o-mini", "fast", "from a"}, // unknown: the default
		{"", "fast", "from a"},
		{"backup", "backup", "from c"},
	} {
		code, hdr, v := chat(t, h, tc.ask, "hi")
		if code != 200 || hdr != tc.model || v["model"] != tc.model || answerOf(v) != tc.answer {
			t.Fatalf("model %q: status %d header %q model %v answer %q; want %s, %q", tc.ask, code, hdr, v["model"], answerOf(v), tc.model, tc.answer)
		}
	}
	bc := b.Calls()
	if len(bc) != 1 || bc[0].Model != "upstream-smart" || bc[0].Auth != "Bearer key-b-123456" || len(bc[0].Tools) != 0 {
		t.Fatalf("smart's upstream got %+v", bc)
	}
	ac := a.Calls()
	if len(ac) != 3 || ac[0].Model != "upstream-fast" || ac[0].Auth != "Bearer key-a-123456" || len(ac[0].Tools) == 0 {
		t.Fatalf("fast's upstream got %d calls, first %+v", len(ac), ac[0])
	}

	// Responses route the same way.
	resp, out := h.do(t, "POST", "/v1/responses", `{"model":"smart","input":"hi"}`)
	var r map[string]any
	json.Unmarshal([]byte(out), &r)
	if resp.StatusCode != 200 || resp.Header.Get("X-Hermes-Model") != "smart" || r["model"] != "smart" || !strings.Contains(out, "from b") {
		t.Fatalf("responses: %d %q %s", resp.StatusCode, resp.Header.Get("X-Hermes-Model"), out)
	}

	resp, out = h.do(t, "GET", "/v1/models", "")
	var list struct {
		Data []struct {
			ID            string `json:"id"`
			OwnedBy       string `json:"owned_by"`
			ContextWindow int    `json:"context_window"`
			Capabilities  struct {
				Vision, Reasoning, Tools bool
			} `json:"capabilities"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || resp.StatusCode != 200 || len(list.Data) != 3 {
		t.Fatalf("/v1/models: %d %s", resp.StatusCode, out)
	}
	if d := list.Data[0]; d.ID != "fast" || d.OwnedBy != "hermes" || d.ContextWindow != 32000 || !d.Capabilities.Tools {
		t.Fatalf("fast listed as %+v", d)
	}
	if d := list.Data[1]; d.ID != "smart" || !d.Capabilities.Vision || !d.Capabilities.Reasoning || d.Capabilities.Tools || d.ContextWindow <= 0 {
		t.Fatalf("smart listed as %+v", d)
	}
	resp, out = h.do(t, "GET", "/v1/models/backup", "")
	if resp.StatusCode != 200 || !strings.Contains(out, `"id":"backup"`) {
		t.Fatalf("/v1/models/backup: %d %s", resp.StatusCode, out)
	}
	resp, out = h.do(t, "GET", "/v1/models/nope", "")
	if resp.StatusCode != 404 || !strings.Contains(out, `"code":"model_not_found"`) {
		t.Fatalf("/v1/models/nope: %d %s", resp.StatusCode, out)
	}
}

// TestUnknownModelError: with API_SERVER_UNKNOWN_MODEL=error an unknown
// model is 404 model_not_found, on both APIs, and reaches no upstream; an
// empty one still goes to the default.
func TestUnknownModelError(t *testing.T) {
	a := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	h := startWithConfig(t, modelsYAML, map[string]string{"A": a.URL + "/v1", "B": a.URL + "/v1", "C": a.URL + "/v1"},
		map[string]string{"API_SERVER_UNKNOWN_MODEL": "error"})
	code, _, v := chat(t, h, "gpt-4o-mini", "hi")
	e, _ := v["error"].(map[string]any)
	if code != 404 || e["code"] != "model_not_found" || e["param"] != "model" || !strings.Contains(fmt.Sprint(e["message"]), "gpt-4o-mini") {
		t.Fatalf("chat: %d %v", code, v)
	}
	resp, out := h.do(t, "POST", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi"}`)
	if resp.StatusCode != 404 || !strings.Contains(out, `"code":"model_not_found"`) {
		t.Fatalf("responses: %d %s", resp.StatusCode, out)
	}
	if n := len(a.Calls()); n != 0 {
		t.Fatalf("the upstream was called %d times", n)
	}
	if code, hdr, _ := chat(t, h, "", "hi"); code != 200 || hdr != "fast" {
		t.Fatalf("empty model: %d %q", code, hdr)
	}
}

// TestModelFallback: a model whose upstream answers 500, 429 or refuses
// the connection falls back to its fallbacks, in order, once each; the
// answer names the model that answered; the fallback is logged and
// counted; a 400 does not fall back.
func TestModelFallback(t *testing.T) {
	status := func(code int) *hermestest.Upstream {
		return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Status: code} })
	}
	good := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "from good"} })
	s500, s429, s400 := status(500), status(429), status(400)
	yaml := `
models:
  - id: primary
    base_url: {{DOWN}}
    fallbacks: [five, rate, good]
  - id: five
    base_url: {{S500}}
  - id: rate
    base_url: {{S429}}
  - id: good
    base_url: {{GOOD}}
  - id: bad-request
    base_url: {{S400}}
    fallbacks: [good]
  - id: all-down
    base_url: {{S500}}
    fallbacks: [rate]
`
	h := startWithConfig(t, yaml, map[string]string{"DOWN": refusedURL(t), "S500": s500.URL + "/v1", "S429": s429.URL + "/v1",
		"GOOD": good.URL + "/v1", "S400": s400.URL + "/v1"}, nil)
	code, hdr, v := chat(t, h, "primary", "hi")
	if code != 200 || hdr != "good" || v["model"] != "good" || answerOf(v) != "from good" {
		t.Fatalf("primary: %d %q %v", code, hdr, v)
	}
	if len(s500.Calls()) != 1 || len(s429.Calls()) != 1 || len(good.Calls()) != 1 {
		t.Fatalf("calls: 500=%d 429=%d good=%d; want one each", len(s500.Calls()), len(s429.Calls()), len(good.Calls()))
	}
	// The streaming answer comes from the fallback too, and names it.
	body := `{"model":"primary","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	resp, out := h.do(t, "POST", "/v1/chat/completions", body)
	if got := streamModel(t, h, "primary"); got != "from good" || resp.Header.Get("X-Hermes-Model") != "good" ||
		!strings.Contains(out, `"model":"good"`) || strings.Contains(out, `"model":"primary"`) {
		t.Fatalf("stream: %q, header %q\n%s", got, resp.Header.Get("X-Hermes-Model"), out)
	}
	// A Responses answer, and its stored record, name the fallback too.
	resp, out = h.do(t, "POST", "/v1/responses", `{"model":"primary","input":"hi"}`)
	var rv struct{ ID, Model string }
	json.Unmarshal([]byte(out), &rv)
	if resp.StatusCode != 200 || rv.Model != "good" {
		t.Fatalf("responses: %d %s", resp.StatusCode, out)
	}
	if _, out = h.do(t, "GET", "/v1/responses/"+rv.ID, ""); !strings.Contains(out, `"model":"good"`) {
		t.Fatalf("stored response: %s", out)
	}
	// A refused request is not retried elsewhere.
	code, _, v = chat(t, h, "bad-request", "hi")
	if code == 200 || len(good.Calls()) != 4 {
		t.Fatalf("bad-request: %d %v, good called %d times", code, v, len(good.Calls()))
	}
	// When every fallback fails, the last failure is the answer.
	code, _, v = chat(t, h, "all-down", "hi")
	if code != 429 {
		t.Fatalf("all-down: %d %v", code, v)
	}
	_, metrics := h.do(t, "GET", "/metrics", "")
	for _, want := range []string{
		`hermes_model_fallbacks_total{fallback="five",model="primary"} 4`,
		`hermes_model_fallbacks_total{fallback="rate",model="five"} 4`,
		`hermes_model_fallbacks_total{fallback="good",model="rate"} 4`,
		`hermes_model_fallbacks_total{fallback="rate",model="all-down"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// streamModel streams a chat completion naming model and returns its text.
func streamModel(t *testing.T, h *hermesd, model string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "stream": true, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	resp, out := h.do(t, "POST", "/v1/chat/completions", string(body))
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d %s", resp.StatusCode, out)
	}
	var text strings.Builder
	for _, line := range strings.Split(out, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		json.Unmarshal([]byte(data), &c)
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	return text.String()
}

// TestStreamingOff: with API_SERVER_STREAMING=false a streaming request
// still gets SSE, but the answer arrives as one content chunk at the end,
// while tool progress stays live (before it); Responses send one text
// delta per message.
func TestStreamingOff(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if n%2 == 0 {
			return hermestest.Reply{Text: "looking ", ToolCalls: [][2]string{{"todo", `{"todos":[]}`}}}
		}
		return hermestest.Reply{Text: "the answer is forty two"}
	})
	env := up.Env()
	env["API_SERVER_STREAMING"] = "false"
	h := startHermes(t, env)
	resp, out := h.do(t, "POST", "/v1/chat/completions",
		`{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "X-Hermes-Progress", "events")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	var contents []string
	progress, firstContent := -1, -1
	for i, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "event: hermes.tool.progress") && progress < 0 {
			progress = i
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || !strings.Contains(data, `"content":"`) || strings.Contains(data, `"content":""`) {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		json.Unmarshal([]byte(data), &c)
		if len(c.Choices) > 0 {
			if firstContent < 0 {
				firstContent = i
			}
			contents = append(contents, c.Choices[0].Delta.Content)
		}
	}
	if len(contents) != 1 || contents[0] != "looking the answer is forty two" {
		t.Fatalf("content chunks %q, want the whole answer in one\n%s", contents, out)
	}
	if progress < 0 || progress > firstContent || !strings.HasSuffix(strings.TrimSpace(out), "data: [DONE]") {
		t.Fatalf("tool progress at line %d, content at %d\n%s", progress, firstContent, out)
	}

	resp, out = h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","stream":true,"input":"hi"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	var deltas []string
	for _, line := range strings.Split(out, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || !strings.Contains(data, `"type":"response.output_text.delta"`) {
			continue
		}
		var d struct{ Delta string }
		json.Unmarshal([]byte(data), &d)
		deltas = append(deltas, d.Delta)
	}
	if len(deltas) != 2 || deltas[0] != "looking " || deltas[1] != "the answer is forty two" {
		t.Fatalf("responses deltas %q, want one per message\n%s", deltas, out)
	}
}

// TestPerModelContextWindow: each model's context_window from config.yaml
// is what GET /v1/models shows and what its turns compact against: the
// same input over the small model's window is 400 context_length_exceeded
// with truncation "disabled" (its upstream never called) and compacted to
// fit without it, while the large model takes it whole.
func TestPerModelContextWindow(t *testing.T) {
	reply := func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Text: "SUMMARY or answer"}
	}
	small, big := hermestest.NewUpstream(t, reply), hermestest.NewUpstream(t, reply)
	h := startWithConfig(t, `
default_model: big
models:
  - id: small
    base_url: {{S}}
    context_window: 6000
    tools: false
  - id: big
    base_url: {{B}}
    context_window: 200000
    tools: false
`, map[string]string{"S": small.URL + "/v1", "B": big.URL + "/v1"}, nil)

	resp, out := h.do(t, "GET", "/v1/models", "")
	for _, want := range []string{`"id":"small"`, `"context_window":6000`, `"id":"big"`, `"context_window":200000`} {
		if resp.StatusCode != 200 || !strings.Contains(out, want) {
			t.Fatalf("/v1/models lacks %s: %d %s", want, resp.StatusCode, out)
		}
	}

	// ~12k tokens: 30 exchanges of ~1.6 KB.
	var items []string
	for i := range 30 {
		items = append(items, fmt.Sprintf(`{"role":"user","content":"question %d %s"}`, i, strings.Repeat("lorem ipsum ", 70)),
			fmt.Sprintf(`{"role":"assistant","content":"answer %d %s"}`, i, strings.Repeat("dolor sit amet ", 55)))
	}
	input := "[" + strings.Join(items, ",") + `,{"role":"user","content":"and now?"}]`
	ask := func(model, truncation string) (int, string) {
		resp, out := h.do(t, "POST", "/v1/responses", fmt.Sprintf(`{"model":%q,"store":false%s,"input":%s}`, model, truncation, input))
		return resp.StatusCode, out
	}

	code, out := ask("small", `,"truncation":"disabled"`)
	if code != 400 || !strings.Contains(out, "context_length_exceeded") || !strings.Contains(out, "window of 6000") {
		t.Fatalf("small, truncation disabled: %d %.300s", code, out)
	}
	if n := len(small.Calls()); n != 0 {
		t.Fatalf("small's upstream was called %d times for a prompt over its window", n)
	}
	code, out = ask("big", `,"truncation":"disabled"`)
	if code != 200 || !strings.Contains(out, `"status":"completed"`) {
		t.Fatalf("big, truncation disabled: %d %.300s", code, out)
	}
	if c := big.Calls(); len(c) != 1 || len(c[0].Messages) < 61 {
		t.Fatalf("big's upstream: %d calls, want one with the whole input", len(c))
	}

	code, out = ask("small", "")
	if code != 200 || !strings.Contains(out, `"type":"compaction"`) {
		t.Fatalf("small, truncation unset: %d %.300s", code, out)
	}
	for i, c := range small.Calls() {
		chars := 0
		for _, m := range c.Messages {
			chars += len(m.Content)
		}
		if chars/4 > 6000 {
			t.Errorf("small's call %d carried ~%d tokens: past its 6,000-token window", i, chars/4)
		}
	}
}
