package mockllm

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// start serves s on a loopback port and returns its base URL.
func start(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role      *string `json:"role"`
			Content   *string `json:"content"`
			ToolCalls []struct {
				Index    int     `json:"index"`
				ID       *string `json:"id"`
				Type     *string `json:"type"`
				Function struct {
					Name      *string `json:"name"`
					Arguments string  `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// streamResult is a parsed SSE answer and when its first content arrived.
type streamResult struct {
	chunks     []chunk
	raw        []string // data payloads as sent
	done       bool     // [DONE] seen last
	firstToken time.Duration
}

func postStream(t *testing.T, base, body string) streamResult {
	t.Helper()
	began := time.Now()
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var r streamResult
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line is not a data frame: %q", line)
		}
		if r.done {
			t.Fatalf("frame after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			r.done = true
			continue
		}
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("bad chunk %q: %v", data, err)
		}
		if r.firstToken == 0 && len(c.Choices) > 0 && (c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" || len(c.Choices[0].Delta.ToolCalls) > 0) {
			r.firstToken = time.Since(began)
		}
		r.chunks = append(r.chunks, c)
		r.raw = append(r.raw, data)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStreamIsOpenAISSE(t *testing.T) {
	base := start(t, New(Config{Tokens: 5}))
	r := postStream(t, base, `{"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	if !r.done {
		t.Fatal("no [DONE]")
	}
	// role chunk, 5 content chunks, finish chunk, usage chunk
	if len(r.chunks) != 8 {
		t.Fatalf("got %d chunks, want 8: %q", len(r.chunks), r.raw)
	}
	first := r.chunks[0].Choices[0].Delta
	if first.Role == nil || *first.Role != "assistant" || first.Content == nil || *first.Content != "" {
		t.Fatalf("first chunk %q is not the role chunk", r.raw[0])
	}
	var text strings.Builder
	for i, c := range r.chunks {
		if c.ID != r.chunks[0].ID || c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %d: id %q object %q", i, c.ID, c.Object)
		}
		if strings.Contains(r.raw[i], `"error"`) {
			t.Fatalf("chunk %d has an error key: %s", i, r.raw[i])
		}
		if i < 7 && (c.Usage != nil || !strings.Contains(r.raw[i], `"usage":null`)) {
			t.Fatalf("chunk %d should carry usage null: %s", i, r.raw[i])
		}
		if i >= 1 && i <= 5 {
			d := c.Choices[0].Delta
			if d.Content == nil || *d.Content == "" || c.Choices[0].FinishReason != nil {
				t.Fatalf("chunk %d is not a content delta: %s", i, r.raw[i])
			}
			text.WriteString(*d.Content)
		}
	}
	if got := strings.Fields(text.String()); len(got) != 5 {
		t.Fatalf("answer %q has %d words, want 5", text.String(), len(got))
	}
	fin := r.chunks[6].Choices[0]
	if fin.FinishReason == nil || *fin.FinishReason != "stop" || fin.Delta.Content != nil {
		t.Fatalf("finish chunk: %s", r.raw[6])
	}
	u := r.chunks[7]
	if len(u.Choices) != 0 || u.Usage == nil || u.Usage.CompletionTokens != 5 || u.Usage.TotalTokens != u.Usage.PromptTokens+5 {
		t.Fatalf("usage chunk: %s", r.raw[7])
	}
}

func TestStreamWithoutUsageOmitsIt(t *testing.T) {
	base := start(t, New(Config{Tokens: 2}))
	r := postStream(t, base, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if !r.done || len(r.chunks) != 4 {
		t.Fatalf("done=%v chunks=%q", r.done, r.raw)
	}
	for _, raw := range r.raw {
		if strings.Contains(raw, "usage") {
			t.Fatalf("usage not asked for but sent: %s", raw)
		}
	}
}

func TestScriptedToolCalls(t *testing.T) {
	base := start(t, New(Config{}))
	user := `{"role":"user","content":"go\n/tool terminal {\"command\": \"true\"}\n/repeat 2\n/tokens 3"}`
	toolMsgs := `,{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"terminal","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"ok"}`

	for iter := 0; iter < 2; iter++ {
		msgs := user + strings.Repeat(toolMsgs, iter)
		r := postStream(t, base, `{"model":"m","stream":true,"messages":[`+msgs+`]}`)
		if !r.done || len(r.chunks) != 4 {
			t.Fatalf("iteration %d: chunks %q", iter, r.raw)
		}
		call := r.chunks[1].Choices[0].Delta.ToolCalls
		if len(call) != 1 || call[0].ID == nil || *call[0].ID == "" || call[0].Type == nil || *call[0].Type != "function" ||
			call[0].Function.Name == nil || *call[0].Function.Name != "terminal" || call[0].Function.Arguments != "" {
			t.Fatalf("iteration %d: first tool delta %s", iter, r.raw[1])
		}
		args := r.chunks[2].Choices[0].Delta.ToolCalls
		if len(args) != 1 || args[0].ID != nil || args[0].Function.Name != nil || args[0].Function.Arguments != `{"command": "true"}` {
			t.Fatalf("iteration %d: arguments delta %s", iter, r.raw[2])
		}
		if f := r.chunks[3].Choices[0].FinishReason; f == nil || *f != "tool_calls" {
			t.Fatalf("iteration %d: finish %s", iter, r.raw[3])
		}
	}
	// After two tool results the script answers.
	r := postStream(t, base, `{"model":"m","stream":true,"messages":[`+user+strings.Repeat(toolMsgs, 2)+`]}`)
	if len(r.chunks) != 5 || r.chunks[1].Choices[0].Delta.Content == nil {
		t.Fatalf("answer after tools: %q", r.raw)
	}

	// Non-stream: the same script as a message with tool_calls.
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[`+user+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message struct {
				Content   *string `json:"content"`
				ToolCalls []struct {
					ID       string `json:"id"`
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	m := out.Choices[0]
	if m.FinishReason != "tool_calls" || m.Message.Content != nil || len(m.Message.ToolCalls) != 1 || m.Message.ToolCalls[0].Function.Name != "terminal" {
		t.Fatalf("non-stream tool call: %+v", out)
	}
}

func TestNonStreamCompletion(t *testing.T) {
	base := start(t, New(Config{Tokens: 4}))
	tests := []struct {
		name, body, finish string
		tokens             int
	}{
		{"default length", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "stop", 4},
		{"directive", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"/tokens 7"}]}]}`, "stop", 7},
		{"max_tokens cut", `{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`, "length", 2},
		{"max_completion_tokens cut", `{"model":"m","max_completion_tokens":3,"messages":[{"role":"user","content":"/tokens 9"}]}`, "length", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Object  string `json:"object"`
				Model   string `json:"model"`
				Choices []struct {
					Message struct {
						Role    string `json:"role"`
						Content string `json:"content"`
					} `json:"message"`
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				} `json:"usage"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			c := out.Choices[0]
			if out.Object != "chat.completion" || out.Model != "m" || c.Message.Role != "assistant" || c.FinishReason != tt.finish ||
				len(strings.Fields(c.Message.Content)) != tt.tokens || out.Usage.CompletionTokens != tt.tokens {
				t.Fatalf("got %+v", out)
			}
		})
	}
}

// TestTTFTHonoured asserts ordering, not wall-clock: the first token never
// comes before the configured wait, and a request without a wait started
// later still gets its first token first.
func TestTTFTHonoured(t *testing.T) {
	base := start(t, New(Config{Tokens: 2}))
	const wait = 150 * time.Millisecond
	slow := make(chan streamResult, 1)
	go func() {
		slow <- postStream(t, base, `{"model":"m","stream":true,"messages":[{"role":"user","content":"/sleep 150ms"}]}`)
	}()
	fast := postStream(t, base, `{"model":"m","stream":true,"messages":[{"role":"user","content":"now"}]}`)
	s := <-slow
	if s.firstToken < wait {
		t.Fatalf("first token after %v, before the %v TTFT", s.firstToken, wait)
	}
	if fast.firstToken >= s.firstToken {
		t.Fatalf("no-wait request's first token (%v) not before the waiting one's (%v)", fast.firstToken, s.firstToken)
	}
}

func TestModelsAndErrors(t *testing.T) {
	base := start(t, New(Config{Model: "bench-model"}))
	resp, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "bench-model" || list.Data[0].Object != "model" {
		t.Fatalf("models: %+v %v", list, err)
	}
	for _, tt := range []struct {
		body   string
		status int
	}{
		{`{`, 400},
		{`{"messages":[]}`, 400},
	} {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(b), `"error"`) {
			t.Fatalf("%s: status %d body %s", tt.body, resp.StatusCode, b)
		}
	}
}

func TestApplyDirectives(t *testing.T) {
	base := Script{Tokens: 16, ToolName: "terminal", ToolArgs: `{"command":"true"}`}
	tests := []struct {
		text string
		want Script
	}{
		{"plain text", base},
		{"/tokens 3\n/delay 5ms\n/sleep 1s", Script{Tokens: 3, TokenDelay: 5 * time.Millisecond, TTFT: time.Second, ToolName: "terminal", ToolArgs: `{"command":"true"}`}},
		{"/tool terminal {\"command\":\"ls\"}", Script{Tokens: 16, ToolName: "terminal", ToolArgs: `{"command":"ls"}`, ToolCalls: 1}},
		{"/tool read_file {\"path\": \"a b\"}\n/repeat 4", Script{Tokens: 16, ToolName: "read_file", ToolArgs: `{"path": "a b"}`, ToolCalls: 4}},
		{"/repeat 3", Script{Tokens: 16, ToolName: "terminal", ToolArgs: `{"command":"true"}`, ToolCalls: 3}},
		{"/tool todo", Script{Tokens: 16, ToolName: "todo", ToolArgs: "{}", ToolCalls: 1}},
		{"/tokens x\n/sleep soon\n/tool", base},
		// One directive a line, as the offline model reads them: a
		// directive inside a sentence is text.
		{"run /tokens 3 please", base},
	}
	for _, tt := range tests {
		if got := applyDirectives(base, tt.text); got != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.text, got, tt.want)
		}
	}
}

func benchHandler(b *testing.B, body string) {
	s := New(Config{Tokens: 16})
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/chat/completions")
		ctx.Request.SetBodyString(body)
		s.Handler(&ctx)
		if err := ctx.Response.BodyWriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandler measures the mock's own cost per call, without the
// network: the figure that shows it cannot be the bottleneck.
func BenchmarkHandler(b *testing.B) {
	b.Run("stream", func(b *testing.B) {
		benchHandler(b, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful agent."},{"role":"user","content":"hello\n/tokens 16"}]}`)
	})
	b.Run("nonstream", func(b *testing.B) {
		benchHandler(b, `{"model":"m","messages":[{"role":"system","content":"You are a helpful agent."},{"role":"user","content":"hello\n/tokens 16"}]}`)
	})
}

// BenchmarkLoopback measures a whole streamed call over loopback TCP with a
// fasthttp client, the way the load client drives it.
func BenchmarkLoopback(b *testing.B) {
	base := start(b, New(Config{Tokens: 16}))
	c := &fasthttp.Client{MaxConnsPerHost: 1024}
	body := []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI(base + "/v1/chat/completions")
			req.Header.SetMethod("POST")
			req.SetBody(body)
			if err := c.Do(req, resp); err != nil || !strings.HasSuffix(string(resp.Body()), "[DONE]\n\n") {
				b.Fatalf("err %v body %q", err, resp.Body())
			}
		}
	})
}

func TestCaptureOnce(t *testing.T) {
	base := start(t, New(Config{}))
	get := func() (int, string) {
		resp, err := http.Get(base + CapturePath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	chat := func(body string) {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	chat(`{"messages":[{"role":"user","content":"before arming"}]}`)
	if st, _ := get(); st != 404 {
		t.Fatalf("captured without being armed: %d", st)
	}
	resp, err := http.Post(base+CapturePath, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	first := `{"model":"m","messages":[{"role":"system","content":"long prompt"},{"role":"user","content":"first"}]}`
	chat(first)
	chat(`{"messages":[{"role":"user","content":"second"}]}`)
	if st, body := get(); st != 200 || body != first {
		t.Fatalf("captured %d %q, want the first call's body byte for byte", st, body)
	}
}

// TestThink: /think TEXT (or Config.Think) streams reasoning before the
// answer and before a tool call, in each form upstreams use, JSON-escaped,
// and counts it as reasoning tokens; a non-stream answer carries it too.
func TestThink(t *testing.T) {
	const thought = `I weigh "quotes" and \ back\slashes <b>`
	for _, form := range ThinkForms {
		base := start(t, New(Config{Tokens: 2, ReasoningForm: form}))
		body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi\n/think ` +
			strings.ReplaceAll(strings.ReplaceAll(thought, `\`, `\\`), `"`, `\"`) + `"}]}`
		r := postStream(t, base, body)
		var reasoning, content strings.Builder
		for _, raw := range r.raw {
			var c struct {
				Choices []struct {
					Delta map[string]any `json:"delta"`
				} `json:"choices"`
				Usage *struct {
					CompletionTokens int `json:"completion_tokens"`
					Details          struct {
						Reasoning int `json:"reasoning_tokens"`
					} `json:"completion_tokens_details"`
				} `json:"usage"`
			}
			if err := json.Unmarshal([]byte(raw), &c); err != nil {
				t.Fatal(err)
			}
			if c.Usage != nil && (c.Usage.Details.Reasoning != 7 || c.Usage.CompletionTokens != 9) {
				t.Errorf("%s: usage %s, want 7 reasoning tokens of 9", form, raw)
			}
			for _, ch := range c.Choices {
				if s, ok := ch.Delta[form].(string); ok && form != "think" {
					reasoning.WriteString(s)
				}
				if s, ok := ch.Delta["content"].(string); ok {
					content.WriteString(s)
				}
			}
		}
		want := "The quick "
		if form == "think" {
			want = "<think>" + thought + "</think>\n\nThe quick "
		} else if reasoning.String() != thought {
			t.Errorf("%s: reasoning %q, want %q", form, reasoning.String(), thought)
		}
		if content.String() != want {
			t.Errorf("%s: content %q, want %q", form, content.String(), want)
		}

		resp, err := http.Post(base+"/v1/chat/completions", "application/json",
			strings.NewReader(strings.Replace(body, `"stream":true`, `"stream":false`, 1)))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Choices []struct{ Message map[string]any } `json:"choices"`
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		msg := c.Choices[0].Message
		if form == "think" && msg["content"] != want || form != "think" && (msg[form] != thought || msg["content"] != want) {
			t.Errorf("%s: non-stream message %v", form, msg)
		}
	}

	// Before a tool call too, and from Config.Think without a directive.
	base := start(t, New(Config{Think: "Let me look.", ToolCalls: 1}))
	r := postStream(t, base, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if len(r.raw) < 3 || !strings.Contains(r.raw[1], `"reasoning_content":"Let `) || !strings.Contains(r.raw[len(r.raw)-2], `"tool_calls"`) {
		t.Errorf("reasoning before a tool call: %q", r.raw)
	}
}
