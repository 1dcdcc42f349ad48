package llm

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	json "github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
)

// DefaultContextWindow is the context window assumed when neither the
// configuration nor the upstream says (128k tokens, what most current
// models take).
const DefaultContextWindow = 128_000

// Window is a model's context window in tokens. It starts from the
// configuration or the default and may be set once discovery answers, while
// turns read it.
type Window struct{ n atomic.Int64 }

// NewWindow returns a window of n tokens (DefaultContextWindow when n ≤ 0).
func NewWindow(n int) *Window {
	w := &Window{}
	w.Set(n)
	return w
}

// Tokens returns the window.
func (w *Window) Tokens() int { return int(w.n.Load()) }

// Set changes the window; n ≤ 0 sets the default.
func (w *Window) Set(n int) {
	if n <= 0 {
		n = DefaultContextWindow
	}
	w.n.Store(int64(n))
}

// maxDiscoveryBody bounds a discovery answer: OpenRouter's model list is a
// few megabytes.
const maxDiscoveryBody = 16 << 20

// DiscoverContextWindow asks an OpenAI-compatible upstream at baseURL (its
// /v1 root) how many tokens model takes, the ways the common servers say
// it: vLLM and OpenRouter list it under GET /models (max_model_len,
// context_length), llama.cpp under GET /props (n_ctx), Ollama under POST
// /api/show (model_info.<arch>.context_length). It returns the window and
// where it was found, or 0 when no probe answered; ctx bounds all of it.
func DiscoverContextWindow(ctx context.Context, client *http.Client, baseURL, apiKey, model string) (int, string) {
	base := strings.TrimRight(baseURL, "/")
	root := strings.TrimSuffix(base, "/v1")
	probes := []struct {
		what, method, url string
		body              []byte
		parse             func([]byte, string) int
	}{
		{"GET " + base + "/models", http.MethodGet, base + "/models", nil, fromModelList},
		{"GET " + root + "/props", http.MethodGet, root + "/props", nil, fromProps},
		{"POST " + root + "/api/show", http.MethodPost, root + "/api/show", mustJSON(map[string]string{"model": model}), fromShow},
	}
	for _, p := range probes {
		if ctx.Err() != nil {
			return 0, ""
		}
		req, err := http.NewRequestWithContext(ctx, p.method, p.url, bytes.NewReader(p.body))
		if err != nil {
			continue
		}
		if apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
		if p.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBody))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			continue
		}
		if n := p.parse(b, model); n > 0 {
			return n, p.what
		}
	}
	return 0, ""
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// fromModelList reads vLLM's max_model_len or OpenRouter's context_length
// (or its top provider's) for model in a /models list; with no model named,
// a list of one model answers for it.
func fromModelList(b []byte, model string) int {
	var list struct {
		Data []struct {
			ID            string `json:"id"`
			MaxModelLen   int    `json:"max_model_len"`
			ContextLength int    `json:"context_length"`
			TopProvider   struct {
				ContextLength int `json:"context_length"`
			} `json:"top_provider"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &list) != nil {
		return 0
	}
	for _, m := range list.Data {
		if m.ID != model && (model != "" || len(list.Data) != 1) {
			continue
		}
		for _, n := range []int{m.MaxModelLen, m.ContextLength, m.TopProvider.ContextLength} {
			if n > 0 {
				return n
			}
		}
	}
	return 0
}

// fromProps reads llama.cpp's n_ctx, top-level or under
// default_generation_settings as newer servers put it.
func fromProps(b []byte, _ string) int {
	var p struct {
		NCtx     int `json:"n_ctx"`
		Settings struct {
			NCtx int `json:"n_ctx"`
		} `json:"default_generation_settings"`
	}
	if json.Unmarshal(b, &p) != nil {
		return 0
	}
	return max(p.NCtx, p.Settings.NCtx)
}

// fromShow reads Ollama's model_info.<architecture>.context_length.
func fromShow(b []byte, _ string) int {
	var s struct {
		ModelInfo map[string]json.RawMessage `json:"model_info"`
	}
	if json.Unmarshal(b, &s) != nil {
		return 0
	}
	for k, v := range s.ModelInfo {
		if strings.HasSuffix(k, ".context_length") {
			var n int
			if json.Unmarshal(v, &n) == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// Estimator estimates the prompt tokens of a request before it is sent: a
// quarter of its characters, scaled per model by what the upstream reported
// as prompt_tokens for earlier requests (a tokenizer's ratio differs by
// model and by language). It is safe for concurrent use.
type Estimator struct {
	mu    sync.Mutex
	ratio map[string]float64 // model → reported / raw estimate
}

// rawTokens is a quarter of the characters a request sends (system
// prompt, messages, tool calls and tool schemas) plus what its images cost.
func rawTokens(req Request) float64 {
	n, images := len(req.System), 0
	for _, m := range req.Messages {
		n += messageChars(m)
		for _, p := range m.Parts {
			if p.Type == "image_url" {
				images += imageTokens(p)
			}
		}
	}
	for _, t := range req.Tools {
		n += len(t.Name) + len(t.Description) + len(t.Parameters)
	}
	return float64(n)/4 + float64(images) + float64(4*len(req.Messages)) // a few tokens of framing per message
}

// messageChars counts the characters one message sends as text (its
// images are counted apart, by imageTokens).
func messageChars(m hermes.Message) int {
	n := len(m.Content) + len(m.Name) + len(m.ToolCallID)
	for _, p := range m.Parts {
		n += len(p.Text)
	}
	for _, c := range m.ToolCalls {
		n += len(c.Name) + len(c.Arguments) + len(c.ID)
	}
	return n
}

// Estimate returns the estimated prompt tokens of req for model.
func (e *Estimator) Estimate(model string, req Request) int {
	raw := rawTokens(req)
	e.mu.Lock()
	r, ok := e.ratio[model]
	e.mu.Unlock()
	if !ok {
		r = 1
	}
	return int(raw*r) + 1
}

// Observe calibrates model's ratio from a request and the prompt_tokens the
// upstream reported for it. Reports far off the estimate (a cached prompt
// counted as zero, a broken server) are clamped so one cannot wreck it.
func (e *Estimator) Observe(model string, req Request, promptTokens int) {
	raw := rawTokens(req)
	if promptTokens <= 0 || raw < 16 {
		return
	}
	r := min(max(float64(promptTokens)/raw, 0.25), 4)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ratio == nil {
		e.ratio = make(map[string]float64)
	}
	if old, ok := e.ratio[model]; ok {
		r = 0.7*old + 0.3*r
	}
	e.ratio[model] = r
}
