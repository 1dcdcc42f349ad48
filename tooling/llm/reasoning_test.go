package llm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// Chunks in the shapes each server family streams reasoning in (fields,
// nulls and extras as they send them).
func deepSeekChunk(reasoning, content string) string {
	rc, c := "null", "null"
	if reasoning != "" {
		rc = jsonString(reasoning)
	}
	if content != "" {
		c = jsonString(content)
	}
	return `{"id":"d1","object":"chat.completion.chunk","created":1,"model":"deepseek-reasoner","system_fingerprint":"fp_1",` +
		`"choices":[{"index":0,"delta":{"content":` + c + `,"reasoning_content":` + rc + `},"logprobs":null,"finish_reason":null}]}`
}

func openRouterChunk(reasoning, content string) string {
	details := "[]"
	if reasoning != "" {
		details = `[{"type":"reasoning.text","text":` + jsonString(reasoning) + `,"format":"unknown","index":0}]`
	}
	return `{"id":"gen-1","provider":"DeepInfra","model":"deepseek/deepseek-r1","object":"chat.completion.chunk","created":1,` +
		`"choices":[{"index":0,"delta":{"role":"assistant","content":` + jsonString(content) + `,"reasoning":` + jsonOrNull(reasoning) +
		`,"reasoning_details":` + details + `},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}`
}

func ollamaChunk(reasoning, content string) string {
	return `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"qwen3:0.6b","system_fingerprint":"fp_ollama",` +
		`"choices":[{"index":0,"delta":{"role":"assistant","content":` + jsonString(content) + `,"reasoning":` + jsonString(reasoning) + `},"finish_reason":null}]}`
}

// vLLM between 0.9 and 0.11 sends the reasoning twice, under both names.
func vllmChunk(reasoning, content string) string {
	d := map[string]any{}
	if reasoning != "" {
		d["reasoning_content"], d["reasoning"] = reasoning, reasoning
	}
	if content != "" {
		d["content"] = content
	}
	b, _ := json.Marshal(map[string]any{"id": "chatcmpl-v", "object": "chat.completion.chunk", "model": "Qwen/Qwen3-8B",
		"choices": []any{map[string]any{"index": 0, "delta": d, "logprobs": nil, "finish_reason": nil}}})
	return string(b)
}

func llamaCppChunk(reasoning, content string) string {
	d := map[string]any{}
	if reasoning != "" {
		d["reasoning_content"] = reasoning
	}
	if content != "" {
		d["content"] = content
	}
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"finish_reason": nil, "index": 0, "delta": d}},
		"created": 1, "id": "chatcmpl-l", "model": "gpt-oss-20b", "system_fingerprint": "b6000", "object": "chat.completion.chunk"})
	return string(b)
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func jsonOrNull(s string) string {
	if s == "" {
		return "null"
	}
	return jsonString(s)
}

const reasoningUsage = `{"id":"u","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,` +
	`"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":21}}}`

// streamed runs one call against a fake upstream sending payloads and
// returns the response and the deltas in arrival order, tagged r: or t:.
func streamed(t *testing.T, h http.HandlerFunc, mod func(*UpstreamOptions)) (Response, []string) {
	t.Helper()
	f := newFake(t, h)
	var order []string
	req := userRequest("hi")
	req.OnReasoning = func(s string) { order = append(order, "r:"+s) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := f.upstream(mod).Stream(ctx, req, func(s string) { order = append(order, "t:"+s) })
	if err != nil {
		t.Fatal(err)
	}
	return r, order
}

func TestUpstreamReasoningDialects(t *testing.T) {
	thinkChunks := []string{"<", "think", ">\nThe user", " greets. ", "Answer</", "think", ">\n\n", "Hello", " there"}
	var raw []string
	for _, c := range thinkChunks {
		raw = append(raw, textChunk(c))
	}
	tests := []struct {
		name     string
		payloads []string
		// wantReasoning is the whole reasoning; wantText the answer.
		wantReasoning, wantText string
	}{
		{"deepseek reasoning_content", []string{deepSeekChunk("", ""), deepSeekChunk("The user", ""), deepSeekChunk(" greets.", ""),
			deepSeekChunk("", "Hello"), deepSeekChunk("", " there")}, "The user greets.", "Hello there"},
		{"openrouter reasoning", []string{openRouterChunk("The user", ""), openRouterChunk(" greets.", ""), openRouterChunk("", "Hello there")},
			"The user greets.", "Hello there"},
		{"ollama reasoning", []string{ollamaChunk("The user", ""), ollamaChunk(" greets.", ""), ollamaChunk("", "Hello"), ollamaChunk("", " there")},
			"The user greets.", "Hello there"},
		{"vllm both fields, once", []string{vllmChunk("The user", ""), vllmChunk(" greets.", ""), vllmChunk("", "Hello there")},
			"The user greets.", "Hello there"},
		{"llama.cpp reasoning_content", []string{llamaCppChunk("The user", ""), llamaCppChunk(" greets.", ""), llamaCppChunk("", "Hello there")},
			"The user greets.", "Hello there"},
		{"<think> split mid-tag", raw, "\nThe user greets. Answer", "Hello there"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payloads := append(append([]string{}, tt.payloads...), finishChunk("stop"), reasoningUsage, "[DONE]")
			r, order := streamed(t, sse(payloads...), nil)
			if r.Reasoning != tt.wantReasoning || r.Text != tt.wantText {
				t.Errorf("reasoning %q text %q, want %q %q", r.Reasoning, r.Text, tt.wantReasoning, tt.wantText)
			}
			if r.Usage.ReasoningTokens != 21 || r.Usage.CompletionTokens != 30 || r.Usage.CachedTokens != 4 {
				t.Errorf("usage %+v, want 21 reasoning tokens of 30", r.Usage)
			}
			// Every reasoning delta comes before the first answer delta, and
			// the deltas add up to the response.
			var rs, ts strings.Builder
			sawText := false
			for _, o := range order {
				kind, s, _ := strings.Cut(o, ":")
				if kind == "t" {
					sawText = true
					ts.WriteString(s)
				} else {
					if sawText {
						t.Errorf("reasoning after the answer started: %q", order)
					}
					rs.WriteString(s)
				}
			}
			if rs.String() != r.Reasoning || ts.String() != r.Text {
				t.Errorf("deltas %q do not add up to the response", order)
			}
		})
	}
}

func TestUpstreamReasoningThenToolCalls(t *testing.T) {
	// Hermes 4 on a server without a reasoning parser: it thinks in
	// <think>, then calls a tool.
	r, _ := streamed(t, sse(
		textChunk("<think>I need the"), textChunk(" weather.</think>"), textChunk("\n"),
		`{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]}}]}`,
		finishChunk("tool_calls"), "[DONE]"), nil)
	if r.Reasoning != "I need the weather." || r.Text != "" || r.Finish != hermes.FinishToolCalls ||
		len(r.ToolCalls) != 1 || r.ToolCalls[0].Arguments != `{"city":"Paris"}` {
		t.Errorf("got %+v", r)
	}
	// DeepSeek's form: reasoning_content, then the call.
	r, _ = streamed(t, sse(deepSeekChunk("Weather needed.", ""),
		`{"choices":[{"delta":{"content":null,"reasoning_content":null,"tool_calls":[{"index":0,"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}}]}`,
		finishChunk("tool_calls"), "[DONE]"), nil)
	if r.Reasoning != "Weather needed." || r.Text != "" || len(r.ToolCalls) != 1 {
		t.Errorf("got %+v", r)
	}
}

func TestUpstreamReasoningNonStream(t *testing.T) {
	for _, tt := range []struct{ name, body, reasoning, text string }{
		{"reasoning_content", `{"choices":[{"message":{"role":"assistant","content":"Hi","reasoning_content":"Greeting."},"finish_reason":"stop"}],` +
			`"usage":{"prompt_tokens":1,"completion_tokens":5,"completion_tokens_details":{"reasoning_tokens":3}}}`, "Greeting.", "Hi"},
		{"reasoning", `{"choices":[{"message":{"role":"assistant","content":"Hi","reasoning":"Greeting."},"finish_reason":"stop"}]}`, "Greeting.", "Hi"},
		{"<think> in content", `{"choices":[{"message":{"role":"assistant","content":"<think>\nGreeting.\n</think>\n\nHi"},"finish_reason":"stop"}]}`, "\nGreeting.\n", "Hi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, order := streamed(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tt.body))
			}, nil)
			if r.Reasoning != tt.reasoning || r.Text != tt.text {
				t.Errorf("reasoning %q text %q, want %q %q", r.Reasoning, r.Text, tt.reasoning, tt.text)
			}
			if strings.Join(order, "|") != "r:"+tt.reasoning+"|t:"+tt.text {
				t.Errorf("deltas %q", order)
			}
		})
	}
}

// TestThinkSplitterEveryCut feeds the same content cut at every pair of
// positions: the tags come out whole whichever chunks they straddle.
func TestThinkSplitterEveryCut(t *testing.T) {
	for _, tt := range []struct{ content, text, reasoning string }{
		{"<think>abc</think>\n\nanswer", "answer", "abc"},
		{"  \n<think>a<b</thi</think>x", "x", "a<b</thi"},
		// Hostile and odd forms.
		{"<think>never closed", "", "never closed"},                                              // unterminated: reasoning to the end
		{"answer </think> tail", "answer </think> tail", ""},                                     // a close without an open is text
		{"Use <think> tags like <think>x</think>", "Use <think> tags like <think>x</think>", ""}, // not at the start
		{"<thin", "<thin", ""},                            // a partial tag at the end is text
		{"<think></think>", "", ""},                       // empty reasoning, no answer
		{"<think>x</think>", "", "x"},                     // reasoning only
		{"<thinking>x", "<thinking>x", ""},                // another word
		{"<think>a</think>b</think>c", "b</think>c", "a"}, // a second close is text
	} {
		for i := 0; i <= len(tt.content); i++ {
			for j := i; j <= len(tt.content); j++ {
				var s thinkSplitter
				var text, reasoning strings.Builder
				for _, piece := range []string{tt.content[:i], tt.content[i:j], tt.content[j:]} {
					a, b := s.feed(piece)
					text.WriteString(a)
					reasoning.WriteString(b)
				}
				a, b := s.flush()
				text.WriteString(a)
				reasoning.WriteString(b)
				if text.String() != tt.text || reasoning.String() != tt.reasoning {
					t.Fatalf("%q cut at %d,%d: text %q reasoning %q, want %q %q", tt.content, i, j, text.String(), reasoning.String(), tt.text, tt.reasoning)
				}
			}
		}
	}
}

// TestThinkSplitterHugeReasoning checks that 16 MiB of reasoning in small
// chunks is passed through as it comes (nothing accumulates in the
// splitter) and in linear time.
func TestThinkSplitterHugeReasoning(t *testing.T) {
	var s thinkSplitter
	if a, b := s.feed("<think>"); a != "" || b != "" {
		t.Fatalf("%q %q", a, b)
	}
	piece := strings.Repeat("thinking hard <", 70) // ends in a possible tag start
	total := 0
	start := time.Now()
	for total < 16<<20 {
		_, b := s.feed(piece)
		total += len(piece)
		if len(s.held) > len(thinkClose) {
			t.Fatalf("splitter holds %d bytes", len(s.held))
		}
		_ = b
	}
	a, b := s.feed("</think>done")
	if a != "done" || b != "<" {
		t.Fatalf("end: text %q reasoning %q", a, b)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("16 MiB of reasoning took %v", d)
	}
}

func TestUpstreamSendsReasoningOnlyWhenConfigured(t *testing.T) {
	msgs := []hermes.Message{
		{Role: hermes.RoleUser, Content: "hi"},
		{Role: hermes.RoleAssistant, Content: "hello", Reasoning: "A greeting."},
		{Role: hermes.RoleUser, Content: "again"},
	}
	for _, send := range []bool{false, true} {
		f := newFake(t, sse(textChunk("ok"), finishChunk("stop"), "[DONE]"))
		u := f.upstream(func(o *UpstreamOptions) { o.SendReasoning = send })
		if _, err := u.Stream(context.Background(), Request{Messages: msgs}, nil); err != nil {
			t.Fatal(err)
		}
		rec := <-f.reqs
		var body struct {
			Messages []map[string]json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(rec.body, &body); err != nil {
			t.Fatal(err)
		}
		got, ok := body.Messages[1]["reasoning_content"]
		if send != ok || (send && string(got) != `"A greeting."`) {
			t.Errorf("SendReasoning %v: assistant message sent as %s", send, rec.body)
		}
		if _, ok := body.Messages[0]["reasoning_content"]; ok {
			t.Errorf("a user message carried reasoning_content: %s", rec.body)
		}
	}
}

func TestUpstreamImages(t *testing.T) {
	msgs := []hermes.Message{{Role: hermes.RoleUser, Content: "what is this", Parts: []hermes.Part{
		{Type: "text", Text: "what is this"}, {Type: "image_url", ImageURL: "data:image/png;base64,AAAA", Detail: "high"}}}}
	f := newFake(t, sse(textChunk("a cat"), finishChunk("stop"), "[DONE]"))
	if _, err := f.upstream(nil).Stream(context.Background(), Request{Messages: msgs}, nil); err != nil {
		t.Fatal(err)
	}
	rec := <-f.reqs
	if !strings.Contains(string(rec.body), `{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"high"}}`) {
		t.Errorf("image part not forwarded: %s", rec.body)
	}

	// vision: false refuses before anything is sent.
	f = newFake(t, sse(textChunk("never"), finishChunk("stop"), "[DONE]"))
	_, err := f.upstream(func(o *UpstreamOptions) { o.NoVision = true }).Stream(context.Background(), Request{Messages: msgs}, nil)
	if e := hermes.AsError(err); e == nil || e.Code != hermes.EModelNotVision || !strings.Contains(e.Message, "'test-model'") {
		t.Errorf("NoVision: %v", err)
	}
	select {
	case r := <-f.reqs:
		t.Errorf("the upstream was called: %s", r.body)
	default:
	}
	// Without images a NoVision model answers.
	if _, err := f.upstream(func(o *UpstreamOptions) { o.NoVision = true }).Stream(context.Background(), userRequest("hi"), nil); err != nil {
		t.Errorf("text to a NoVision model: %v", err)
	}

	// An unmarked model's server refusing the image: the client's 400 with
	// the server's message; the same refusal without images stays a 502.
	refuse := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":{"message":"image input is not supported by this model"}}`))
	}
	f = newFake(t, refuse)
	_, err = f.upstream(nil).Stream(context.Background(), Request{Messages: msgs}, nil)
	if e := hermes.AsError(err); e == nil || e.Code != hermes.EInvalid || !strings.Contains(e.Message, "image input is not supported by this model") {
		t.Errorf("refused image: %v", err)
	}
	_, err = f.upstream(nil).Stream(context.Background(), userRequest("hi"), nil)
	if code(err) != hermes.EUpstream {
		t.Errorf("refused text: %v", err)
	}
}

// TestUpstreamFetchImages: with FetchImage (fetch_images: true) http(s)
// image URLs go upstream as data URLs, fetched once; a URL that is not an
// image, or cannot be fetched, is the client's 400 and nothing is sent.
func TestUpstreamFetchImages(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n0000")
	var fetched []string
	fetch := func(ctx context.Context, url string, limit int64) ([]byte, string, error) {
		fetched = append(fetched, url)
		switch {
		case strings.HasSuffix(url, "/cat.png"):
			return png, "image/png", nil
		case strings.HasSuffix(url, "/page.html"):
			return []byte("<html>hi</html>"), "text/html; charset=utf-8", nil
		case strings.HasSuffix(url, "/lies.png"):
			return []byte("<html>hi</html>"), "image/png", nil // a page claiming to be an image
		}
		return nil, "", errors.New("fetching private addresses is not allowed")
	}
	req := func(url string) Request {
		return Request{Messages: []hermes.Message{{Role: hermes.RoleUser, Content: "see", Parts: []hermes.Part{
			{Type: "text", Text: "see"}, {Type: "image_url", ImageURL: url, Detail: "low"}}}}}
	}
	f := newFake(t, sse(textChunk("a cat"), finishChunk("stop"), "[DONE]"))
	u := f.upstream(func(o *UpstreamOptions) { o.FetchImage = fetch })
	r := req("https://example.com/cat.png")
	for range 2 {
		if _, err := u.Stream(context.Background(), r, nil); err != nil {
			t.Fatal(err)
		}
		rec := <-f.reqs
		want := `{"url":"data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `","detail":"low"}`
		if !strings.Contains(string(rec.body), want) {
			t.Errorf("upstream got %s", rec.body)
		}
	}
	if len(fetched) != 1 || r.Messages[0].Parts[1].ImageURL != "https://example.com/cat.png" {
		t.Errorf("fetched %v; the transcript's part became %q", fetched, r.Messages[0].Parts[1].ImageURL)
	}
	for _, url := range []string{"https://example.com/page.html", "https://example.com/lies.png", "http://10.0.0.1/x.png"} {
		_, err := u.Stream(context.Background(), req(url), nil)
		if e := hermes.AsError(err); e == nil || e.Code != hermes.EInvalid || !strings.Contains(e.Message, url) {
			t.Errorf("%s: %v", url, err)
		}
	}
	select {
	case rec := <-f.reqs:
		t.Errorf("a refused image reached the upstream: %s", rec.body)
	default:
	}
}
