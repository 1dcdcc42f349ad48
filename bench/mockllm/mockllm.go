package mockllm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Config holds the defaults every call answers with unless its last user
// message carries directives.
type Config struct {
	// Model is the id /v1/models advertises; requests' own model is echoed.
	Model string
	// TTFT is the wait before the first chunk (or the whole non-stream answer).
	TTFT time.Duration
	// TokenDelay is the wait between content tokens.
	TokenDelay time.Duration
	// Tokens is the answer length; 0 means DefaultTokens.
	Tokens int
	// ToolName and ToolArgs are the tool asked for while ToolCalls
	// iterations remain; ToolName defaults to "terminal".
	ToolName  string
	ToolArgs  string
	ToolCalls int
	// Think, when set, is reasoning streamed before every answer and
	// tool call, in ReasoningForm (one of ThinkForms; "" is
	// reasoning_content). A request's "/think TEXT" sets it for one call.
	Think         string
	ReasoningForm string
}

// DefaultTokens is the answer length when neither Config nor the request
// says otherwise.
const DefaultTokens = 16

// Server answers OpenAI chat requests from a script. It is safe for
// concurrent use.
type Server struct {
	base    Script
	model   string
	created int64
	ids     atomic.Uint64
	calls   atomic.Uint64
	// armed makes the next chat call's body the captured one: the exact
	// upstream request hermesd sends, which hermes-bench's direct-agent
	// phase replays. Armed once, so the hot path pays one atomic load.
	armed    atomic.Bool
	captured atomic.Pointer[[]byte]
}

// CapturePath arms a capture (POST) and returns the captured chat request
// body (GET; 404 until one arrived).
const CapturePath = "/bench/capture"

// New returns a server answering with cfg's defaults.
func New(cfg Config) *Server {
	s := Script{
		TTFT:       cfg.TTFT,
		TokenDelay: cfg.TokenDelay,
		Tokens:     cfg.Tokens,
		ToolName:   cfg.ToolName,
		ToolArgs:   cfg.ToolArgs,
		ToolCalls:  cfg.ToolCalls,
		Think:      cfg.Think,
		ThinkForm:  cfg.ReasoningForm,
	}
	if s.Tokens <= 0 {
		s.Tokens = DefaultTokens
	}
	if s.ToolName == "" {
		s.ToolName = "terminal"
	}
	if s.ToolArgs == "" {
		s.ToolArgs = `{"command":"true"}`
	}
	model := cfg.Model
	if model == "" {
		model = "mock-model"
	}
	return &Server{base: s, model: model, created: time.Now().Unix()}
}

// Calls returns how many chat completions the server has answered.
func (s *Server) Calls() uint64 { return s.calls.Load() }

// Serve serves on ln until it is closed. The limits are raised far above
// fasthttp's defaults because a 10,000-connection scenario must never be
// refused by the mock.
func (s *Server) Serve(ln net.Listener) error {
	srv := &fasthttp.Server{
		Handler:                       s.Handler,
		Name:                          "mockllm",
		Concurrency:                   1 << 20,
		ReadBufferSize:                16 << 10,
		MaxRequestBodySize:            64 << 20,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		DisableHeaderNamesNormalizing: true,
		CloseOnShutdown:               true,
	}
	return srv.Serve(ln)
}

// Handler routes a request.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/v1/chat/completions", "/chat/completions":
		if !ctx.IsPost() {
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
			return
		}
		s.chat(ctx)
	case "/v1/models", "/models":
		ctx.SetContentType("application/json")
		b := append([]byte(`{"object":"list","data":[{"id":`), quote(s.model)...)
		b = append(b, `,"object":"model","created":`...)
		b = strconv.AppendInt(b, s.created, 10)
		b = append(b, `,"owned_by":"mockllm"}]}`...)
		ctx.SetBody(b)
	case CapturePath:
		if ctx.IsPost() {
			s.captured.Store(nil)
			s.armed.Store(true)
			return
		}
		b := s.captured.Load()
		if b == nil {
			writeError(ctx, fasthttp.StatusNotFound, "nothing captured")
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(*b)
	case "/health", "/v1/health":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
	default:
		writeError(ctx, fasthttp.StatusNotFound, "unknown path "+string(path))
	}
}

func writeError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b := append([]byte(`{"error":{"message":`), quote(msg)...)
	b = append(b, `,"type":"invalid_request_error","param":null,"code":null}}`...)
	ctx.SetBody(b)
}

// call is one chat completion being answered.
type call struct {
	id           []byte // JSON-quoted "chatcmpl-mock-N"
	model        []byte // JSON-quoted model
	created      int64
	script       Script
	maxTokens    int
	toolIter     int // tool results already in the transcript
	promptTokens int
	includeUsage bool
	think        [][]byte // the reasoning's pieces, JSON-escaped; nil without
}

func (s *Server) chat(ctx *fasthttp.RequestCtx) {
	var req chatRequest
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if len(req.Messages) == 0 {
		writeError(ctx, fasthttp.StatusBadRequest, "messages must not be empty")
		return
	}
	s.calls.Add(1)
	if s.armed.Load() && s.armed.CompareAndSwap(true, false) {
		b := append([]byte(nil), ctx.PostBody()...)
		s.captured.Store(&b)
	}
	text, iter := lastUser(req.Messages)
	c := &call{
		id:           strconv.AppendUint([]byte(`"chatcmpl-mock-`), s.ids.Add(1), 10),
		model:        quote(req.Model),
		created:      time.Now().Unix(),
		script:       applyDirectives(s.base, text),
		maxTokens:    req.MaxCompletionTokens,
		toolIter:     iter,
		promptTokens: promptTokens(req.Messages),
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	}
	c.id = append(c.id, '"')
	c.think = thinkPieces(c.script.Think)
	if c.maxTokens == 0 {
		c.maxTokens = req.MaxTokens
	}
	if req.Stream {
		ctx.SetContentType("text/event-stream")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		if c.script.TokenDelay > 0 && !c.toolTurn() {
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				if c.script.TTFT > 0 {
					time.Sleep(c.script.TTFT)
				}
				c.stream(func(b []byte) bool {
					if _, err := w.Write(b); err != nil {
						return false
					}
					return w.Flush() == nil
				})
			})
			return
		}
		// Nothing to wait for between chunks: the whole stream goes out
		// in one write, which spares fasthttp's stream-writer goroutine
		// and pipe and keeps the mock far cheaper than the server it
		// feeds.
		if c.script.TTFT > 0 {
			time.Sleep(c.script.TTFT)
		}
		body := make([]byte, 0, 256*(c.script.Tokens+4))
		c.stream(func(b []byte) bool {
			body = append(body, b...)
			return true
		})
		ctx.SetBody(body)
		return
	}
	c.sleepAnswer()
	ctx.SetContentType("application/json")
	ctx.SetBody(c.appendCompletion(make([]byte, 0, 512)))
}

// toolTurn reports whether this call asks for a tool instead of answering.
func (c *call) toolTurn() bool { return c.toolIter < c.script.ToolCalls }

// answerTokens returns how many tokens to produce and the finish reason.
func (c *call) answerTokens() (int, string) {
	n := c.script.Tokens
	if c.maxTokens > 0 && n > c.maxTokens {
		return c.maxTokens, "length"
	}
	return n, "stop"
}

// sleepAnswer waits as long as streaming the answer would take.
func (c *call) sleepAnswer() {
	d := c.script.TTFT
	if n, _ := c.answerTokens(); n > 1 && !c.toolTurn() {
		d += time.Duration(n-1) * c.script.TokenDelay
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// stream produces the SSE answer, handing flush each piece that must go
// out before a wait; it stops early when flush fails because the client went
// away. The caller has already waited TTFT.
func (c *call) stream(flush func([]byte) bool) {
	buf := make([]byte, 0, 512)
	buf = c.appendChunkHead(buf)
	buf = append(buf, `{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`...)
	buf = c.appendChunkTail(buf)
	finish := "tool_calls"
	completion := 1
	// pace sends what is buffered and waits the token delay before the
	// i-th streamed token (reasoning or answer) but the first; false means
	// the client went away.
	pace := func(i int) bool {
		if i == 0 || c.script.TokenDelay <= 0 {
			return true
		}
		if !flush(buf) {
			return false
		}
		buf = buf[:0]
		time.Sleep(c.script.TokenDelay)
		return true
	}
	for i, piece := range c.think {
		if !pace(i) {
			return
		}
		buf = c.appendChunkHead(buf)
		buf = append(buf, `{"index":0,"delta":{`...)
		switch c.script.ThinkForm {
		case "think":
			buf = append(buf, `"content":"`...)
			if i == 0 {
				buf = append(buf, "<think>"...)
			}
		case "reasoning":
			buf = append(buf, `"reasoning":"`...)
		default:
			buf = append(buf, `"reasoning_content":"`...)
		}
		buf = append(buf, piece...)
		if c.script.ThinkForm == "think" && i == len(c.think)-1 {
			buf = append(buf, `</think>\n\n`...)
		}
		buf = append(buf, `"},"finish_reason":null}]`...)
		buf = c.appendChunkTail(buf)
	}
	if c.toolTurn() {
		buf = c.appendChunkHead(buf)
		buf = append(buf, `{"index":0,"delta":{"tool_calls":[{"index":0,"id":`...)
		buf = c.appendCallID(buf)
		buf = append(buf, `,"type":"function","function":{"name":`...)
		buf = append(buf, quote(c.script.ToolName)...)
		buf = append(buf, `,"arguments":""}}]},"finish_reason":null}]`...)
		buf = c.appendChunkTail(buf)
		buf = c.appendChunkHead(buf)
		buf = append(buf, `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`...)
		buf = append(buf, quote(c.script.ToolArgs)...)
		buf = append(buf, `}}]},"finish_reason":null}]`...)
		buf = c.appendChunkTail(buf)
		if !flush(buf) {
			return
		}
		buf = buf[:0]
	} else {
		var n int
		n, finish = c.answerTokens()
		completion = n
		for i := 0; i < n; i++ {
			if !pace(i) {
				return
			}
			buf = c.appendChunkHead(buf)
			buf = append(buf, `{"index":0,"delta":{"content":"`...)
			buf = append(buf, words[i%len(words)]...)
			buf = append(buf, `"},"finish_reason":null}]`...)
			buf = c.appendChunkTail(buf)
			if i == 0 {
				// The first token goes out at once: it is what a
				// client times.
				if !flush(buf) {
					return
				}
				buf = buf[:0]
			}
		}
	}
	buf = c.appendChunkHead(buf)
	buf = append(buf, `{"index":0,"delta":{},"finish_reason":"`...)
	buf = append(buf, finish...)
	buf = append(buf, `"}]`...)
	buf = c.appendChunkTail(buf)
	if c.includeUsage {
		buf = c.appendChunkHead(buf)
		buf = append(buf, ']')
		buf = append(buf, `,"usage":`...)
		buf = c.appendUsage(buf, completion)
		buf = append(buf, "}\n\n"...)
	}
	buf = append(buf, "data: [DONE]\n\n"...)
	flush(buf)
}

// words are the answer's tokens; plain ASCII so they need no escaping.
var words = []string{"The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog. "}

func (c *call) appendChunkHead(b []byte) []byte {
	b = append(b, `data: {"id":`...)
	b = append(b, c.id...)
	b = append(b, `,"object":"chat.completion.chunk","created":`...)
	b = strconv.AppendInt(b, c.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, c.model...)
	return append(b, `,"choices":[`...)
}

func (c *call) appendChunkTail(b []byte) []byte {
	if c.includeUsage {
		b = append(b, `,"usage":null`...)
	}
	return append(b, "}\n\n"...)
}

func (c *call) appendCallID(b []byte) []byte {
	b = append(b, `"call_mock_`...)
	b = append(b, c.id[len(`"chatcmpl-mock-`):len(c.id)-1]...)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(c.toolIter), 10)
	return append(b, '"')
}

func (c *call) appendUsage(b []byte, completion int) []byte {
	completion += len(c.think) // reasoning tokens are completion tokens
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(c.promptTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(c.promptTokens+completion), 10)
	if len(c.think) > 0 {
		b = append(b, `,"completion_tokens_details":{"reasoning_tokens":`...)
		b = strconv.AppendInt(b, int64(len(c.think)), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// thinkPieces cuts reasoning into its streamed pieces, a word each, JSON-
// escaped for the inside of a string; the reasoning is model text and may
// hold anything.
func thinkPieces(text string) [][]byte {
	if text == "" {
		return nil
	}
	var out [][]byte
	for _, w := range strings.SplitAfter(text, " ") {
		if w != "" {
			q := quote(w)
			out = append(out, q[1:len(q)-1])
		}
	}
	return out
}

func (c *call) appendCompletion(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = append(b, c.id...)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, c.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, c.model...)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant",`...)
	completion := 1
	think := bytes.Join(c.think, nil)
	switch {
	case think == nil:
	case c.script.ThinkForm == "reasoning":
		b = append(append(append(b, `"reasoning":"`...), think...), `",`...)
	case c.script.ThinkForm != "think":
		b = append(append(append(b, `"reasoning_content":"`...), think...), `",`...)
	}
	finish := "tool_calls"
	if c.toolTurn() {
		if think != nil && c.script.ThinkForm == "think" {
			b = append(append(append(b, `"content":"<think>`...), think...), `</think>",`...)
		} else {
			b = append(b, `"content":null,`...)
		}
		b = append(b, `"tool_calls":[{"id":`...)
		b = c.appendCallID(b)
		b = append(b, `,"type":"function","function":{"name":`...)
		b = append(b, quote(c.script.ToolName)...)
		b = append(b, `,"arguments":`...)
		b = append(b, quote(c.script.ToolArgs)...)
		b = append(b, `}}]}`...)
	} else {
		completion, finish = c.answerTokens()
		b = append(b, `"content":"`...)
		if think != nil && c.script.ThinkForm == "think" {
			b = append(append(append(b, "<think>"...), think...), `</think>\n\n`...)
		}
		for i := 0; i < completion; i++ {
			b = append(b, words[i%len(words)]...)
		}
		b = append(b, `"}`...)
	}
	b = append(b, `,"finish_reason":"`...)
	b = append(b, finish...)
	b = append(b, `"}],"usage":`...)
	b = c.appendUsage(b, completion)
	return append(b, '}')
}

// quote returns s as a JSON string. encoding/json is fine here: it runs a
// few times per call on short strings.
func quote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
