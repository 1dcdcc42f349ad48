package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

func TestChatNonStreamOffline(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	got, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")},
	})
	if err != nil {
		t.Fatal(err)
	}
	// An unknown model name is answered by the default model, which the
	// answer names.
	if !strings.HasPrefix(got.ID, "chatcmpl-") || got.Object != "chat.completion" || got.Model != "hermes-agent" {
		t.Fatalf("envelope: id=%q object=%q model=%q", got.ID, got.Object, got.Model)
	}
	msg := got.Choices[0].Message
	if !strings.Contains(msg.Content, "hello there") || got.Choices[0].FinishReason != "stop" {
		t.Fatalf("answer %q finish %q", msg.Content, got.Choices[0].FinishReason)
	}
	if got.Usage.CompletionTokens == 0 || got.Usage.TotalTokens != got.Usage.PromptTokens+got.Usage.CompletionTokens {
		t.Fatalf("usage %+v", got.Usage)
	}
}

func TestChatStreamUsageMatchesNonStream(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	params := openai.ChatCompletionNewParams{
		Model:    "hermes-agent",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("/tokens 12")},
	}
	whole, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	ids := map[string]bool{}
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		ids[ch.ID] = true
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("chunk ids %v, want one", ids)
	}
	// role chunk + 12 tokens + finish + usage
	if chunks != 15 {
		t.Fatalf("%d chunks, want 15 (token by token)", chunks)
	}
	if acc.Choices[0].Message.Content != whole.Choices[0].Message.Content {
		t.Fatalf("stream text %q != non-stream %q", acc.Choices[0].Message.Content, whole.Choices[0].Message.Content)
	}
	if acc.Usage.CompletionTokens != 12 || acc.Usage.PromptTokens != whole.Usage.PromptTokens || acc.Usage.TotalTokens != whole.Usage.TotalTokens {
		t.Fatalf("stream usage %+v, non-stream %+v", acc.Usage, whole.Usage)
	}
}

func weatherTool() openai.ChatCompletionToolUnionParam {
	return openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})
}

func TestChatClientToolRoundTrip(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if role, text := call.Last(); role == "tool" {
			return hermestest.Reply{Text: "It is " + text + " in Paris."}
		}
		return hermestest.Reply{ToolCalls: [][2]string{{"get_weather", `{"city":"Paris"}`}}}
	})
	h := startHermes(t, up.Env())
	c := h.client()
	params := openai.ChatCompletionNewParams{
		Model:    "hermes-agent",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris?")},
		Tools:    []openai.ChatCompletionToolUnionParam{weatherTool()},
	}
	// Streamed: the call arrives as tool_calls deltas.
	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	var finished []string
	for stream.Next() {
		acc.AddChunk(stream.Current())
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc.Name+tc.Arguments)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].FinishReason != "tool_calls" || len(finished) != 1 || finished[0] != `get_weather{"city":"Paris"}` {
		t.Fatalf("finish %q calls %q", acc.Choices[0].FinishReason, finished)
	}
	// Non-stream, then answer the call.
	first, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	calls := first.Choices[0].Message.ToolCalls
	if first.Choices[0].FinishReason != "tool_calls" || len(calls) != 1 || calls[0].Function.Name != "get_weather" {
		t.Fatalf("first answer %+v", first.Choices[0])
	}
	params.Messages = append(params.Messages, first.Choices[0].Message.ToParam(), openai.ToolMessage("sunny", calls[0].ID))
	second, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := second.Choices[0].Message.Content; got != "It is sunny in Paris." {
		t.Fatalf("second answer %q", got)
	}
	last := up.Calls()[len(up.Calls())-1]
	if role, _ := last.Last(); role != "tool" || last.Messages[len(last.Messages)-2].ToolCalls[0].ID != calls[0].ID {
		t.Fatalf("upstream did not see the tool result answering the call")
	}
	var names []string
	for _, tl := range last.Tools {
		names = append(names, tl.Function.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "get_weather") || !strings.Contains(strings.Join(names, ","), "terminal") {
		t.Fatalf("model saw tools %v, want the client's beside the agent's", names)
	}
}

func TestChatTerminalToolLoop(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if role, text := call.Last(); role == "tool" {
			var res struct {
				Output string `json:"output"`
			}
			_ = json.Unmarshal([]byte(text), &res)
			return hermestest.Reply{Text: "You are in " + strings.TrimSpace(res.Output)}
		}
		return hermestest.Reply{ToolCalls: [][2]string{{"terminal", `{"command":"pwd"}`}}}
	})
	h := startHermes(t, up.Env())
	text := streamText(t, h, "where am I?")
	if !strings.Contains(text, "\n`💻 pwd`\n") {
		t.Fatalf("no inline marker in %q", text)
	}
	if !strings.Contains(text, "You are in "+h.Workspace) {
		t.Fatalf("answer %q lacks the workspace %s", text, h.Workspace)
	}
	// The marker the client stored in its history is stripped before the
	// model sees it again.
	_, err := h.client().Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "hermes-agent",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("where am I?"),
			openai.AssistantMessage(text), openai.UserMessage("thanks")},
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := up.Calls()
	last := calls[len(calls)-1]
	for i, m := range last.Messages {
		if m.Role == "assistant" && strings.Contains(last.Text(i), "💻") {
			t.Fatalf("marker reached the model: %q", last.Text(i))
		}
	}
}

func TestChatProgressEventsMode(t *testing.T) {
	h := startHermes(t, nil)
	resp, body := h.do(t, "POST", "/v1/chat/completions",
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"/tool terminal {\"command\":\"echo hi\"}"}]}`,
		"X-Hermes-Progress", "events")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "event: hermes.tool.progress\ndata: {\"tool\":\"terminal\",\"emoji\":\"💻\",\"label\":\"echo hi\"") ||
		!strings.Contains(body, `"status":"completed"`) || strings.Contains(body, "`💻") {
		t.Fatalf("body:\n%s", body)
	}
	if !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream does not end with [DONE]:\n%s", body)
	}
}

func TestHTTPErrorsAndHeaders(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_KEY": "secret-key-123", "API_SERVER_CORS_ORIGINS": "http://ok.example", "API_SERVER_MAX_BODY_BYTES": "4096"})
	auth := []string{"Authorization", "Bearer secret-key-123"}
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		param                    string
	}{
		{"missing key", "POST", "/v1/chat/completions", chat, nil, 401, ""},
		{"wrong key", "POST", "/v1/chat/completions", chat, []string{"Authorization", "Bearer nope"}, 401, ""},
		{"malformed json", "POST", "/v1/chat/completions", `{"model":`, auth, 400, ""},
		{"not an object", "POST", "/v1/chat/completions", `[1,2]`, auth, 400, ""},
		{"wrong type", "POST", "/v1/chat/completions", `{"messages":"hi"}`, auth, 400, "messages"},
		{"no messages", "POST", "/v1/chat/completions", `{"messages":[]}`, auth, 400, "messages"},
		{"too large", "POST", "/v1/chat/completions", `{"x":"` + strings.Repeat("a", 5000) + `"}`, auth, 413, ""},
		{"unknown route", "GET", "/v1/nope", "", auth, 404, ""},
		{"wrong method", "GET", "/v1/chat/completions", "", auth, 405, ""},
		{"unknown model", "GET", "/v1/models/gpt-5", "", auth, 404, "model"},
		{"bad origin", "POST", "/v1/chat/completions", chat, append([]string{"Origin", "http://evil.example"}, auth...), 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(t, tc.method, tc.path, tc.body, tc.headers...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			checkSecurityHeaders(t, resp)
			var env struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error == nil {
				t.Fatalf("not an error envelope: %s", body)
			}
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := env.Error[k]; !ok {
					t.Fatalf("envelope lacks %q: %s", k, body)
				}
			}
			if tc.param != "" && env.Error["param"] != tc.param {
				t.Fatalf("param %v, want %q", env.Error["param"], tc.param)
			}
		})
	}

	resp, body := h.do(t, "GET", "/health", "")
	if resp.StatusCode != 200 || body != `{"status":"ok","platform":"hermes-agent"}` {
		t.Fatalf("health without key: %d %s", resp.StatusCode, body)
	}
	resp, _ = h.do(t, "OPTIONS", "/v1/chat/completions", "", "Origin", "http://ok.example", "Access-Control-Request-Method", "POST")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://ok.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Idempotency-Key") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Stainless-Retry-Count") ||
		resp.Header.Get("Access-Control-Max-Age") != "600" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	checkSecurityHeaders(t, resp)
	resp, _ = h.do(t, "OPTIONS", "/v1/chat/completions", "", "Origin", "http://evil.example")
	if resp.StatusCode != 403 {
		t.Fatalf("disallowed preflight: %d", resp.StatusCode)
	}
	resp, body = h.do(t, "POST", "/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		append([]string{"Origin", "http://ok.example"}, auth...)...)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://ok.example" || resp.Header.Get("Vary") != "Origin" {
		t.Fatalf("SSE CORS: %d %v", resp.StatusCode, resp.Header)
	}
	checkSecurityHeaders(t, resp)
	if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("X-Accel-Buffering") != "no" || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("SSE headers: %v", resp.Header)
	}
	if !strings.HasPrefix(body, `data: {"id":"chatcmpl-`) || strings.Contains(body, "\nevent:") {
		t.Fatalf("SSE body: %s", body)
	}
	resp, _ = h.do(t, "GET", "/v1/models", "")
	if resp.StatusCode != 401 {
		t.Fatalf("models without key: %d", resp.StatusCode)
	}
	resp, body = h.do(t, "GET", "/v1/models", "", auth...)
	if resp.StatusCode != 200 || !strings.Contains(body, `"id":"hermes-agent","object":"model"`) {
		t.Fatalf("models: %d %s", resp.StatusCode, body)
	}
}

func checkSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("security headers missing: %v", resp.Header)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("no X-Request-Id")
	}
}

func TestDisconnectCancelsUpstream(t *testing.T) {
	up := hermestest.NewUpstream(t, func(int, *hermestest.Call) hermestest.Reply { return hermestest.Reply{Block: true} })
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"API_SERVER_SSE_KEEPALIVE": "50ms"}))
	conn, err := net.Dial("tcp", h.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	_, _ = conn.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body))
	// The fake sends its role chunk, so hermesd starts the stream.
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("status line %q %v", line, err)
	}
	conn.Close()
	select {
	case <-up.Cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("upstream request was not cancelled after the client left")
	}
	hermestest.Eventually(t, "the turn slot freed", func() bool { return h.runtime.Stats().Admitted == 0 })
}

func TestTurnCapAnswers429(t *testing.T) {
	up := hermestest.NewUpstream(t, func(int, *hermestest.Call) hermestest.Reply { return hermestest.Reply{Block: true} })
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"API_SERVER_MAX_CONCURRENT_TURNS": "1"}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = h.client().Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("block")}})
	}()
	hermestest.Eventually(t, "the first model call", func() bool { return len(up.Calls()) == 1 })
	resp, body := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "rate_limit_exceeded") {
		t.Fatalf("want 429 with Retry-After, got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, _ = h.do(t, "GET", "/health", "")
	if resp.StatusCode != 200 {
		t.Fatalf("health under load: %d", resp.StatusCode)
	}
}

func TestGracefulDrainFinishesStreams(t *testing.T) {
	h := startHermes(t, nil)
	stream := h.client().Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("/tokens 20\n/delay 20ms")}})
	if !stream.Next() {
		t.Fatal(stream.Err())
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closed <- h.Close(ctx)
	}()
	var acc openai.ChatCompletionAccumulator
	acc.AddChunk(stream.Current())
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Usage.CompletionTokens != 0 && acc.Choices[0].FinishReason != "stop" {
		t.Fatalf("finish %q", acc.Choices[0].FinishReason)
	}
	if n := len(strings.Fields(acc.Choices[0].Message.Content)); n != 20 {
		t.Fatalf("stream cut during drain: %d tokens", n)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", h.Listener.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestRefusesPublicBindWithoutKey(t *testing.T) {
	m := NewMain()
	if err := m.ParseFlags([]string{"--host", "0.0.0.0", "--port", "18643", "--home", t.TempDir()}, lookupIn(nil)); err != nil {
		t.Fatal(err)
	}
	err := m.Config.Validate()
	if err == nil || !strings.Contains(err.Error(), "API_SERVER_KEY") {
		t.Fatalf("Validate = %v", err)
	}
}

func mergeEnv(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func itoa(n int) string { return jsonInt(n) }

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

var _ = option.WithHeader

func TestMetricsNeedKeyAndReport(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_KEY": "metrics-key-1"})
	auth := []string{"Authorization", "Bearer metrics-key-1"}
	if resp, _ := h.do(t, "GET", "/metrics", ""); resp.StatusCode != 401 {
		t.Fatalf("metrics without key: %d", resp.StatusCode)
	}
	resp, _ := h.do(t, "POST", "/v1/responses", `{"input":"/tool terminal {\"command\":\"true\"}"}`, auth...)
	if resp.StatusCode != 200 {
		t.Fatalf("response: %d", resp.StatusCode)
	}
	resp, body := h.do(t, "GET", "/metrics", "", auth...)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`hermes_http_requests_total{route="POST /v1/responses",status="200"} 1`,
		"hermes_turns_running 0", "hermes_conversation_actors", "hermes_stored_responses 1",
		`hermes_tool_run_duration_seconds_count{outcome="ok",tool="terminal"} 1`,
		`hermes_model_call_duration_seconds_count{outcome="ok"} 2`,
		`hermes_store_commit_duration_seconds_count{outcome="ok"}`, "go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
