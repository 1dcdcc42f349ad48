package httpfront

import (
	"bufio"
	"context"
	"strings"
	"time"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Tools               []wireTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
}

type chatMessage struct {
	Role       string      `json:"role"`
	Content    wireContent `json:"content"`
	Name       string      `json:"name"`
	ToolCallID string      `json:"tool_call_id"`
	ToolCalls  []struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

// maxMessages bounds one request's history: more than this is a client bug
// or an attack, and every message costs memory in each model call.
const maxMessages = 10000

// decodeChat turns a chat completions body into a turn request.
func (s *Server) decodeChat(body []byte) (*chatRequest, *hermes.TurnRequest, error) {
	var cr chatRequest
	if err := decodeObject(body, &cr); err != nil {
		return nil, nil, err
	}
	if len(cr.Messages) == 0 {
		return nil, nil, hermes.InvalidParam("messages", "'messages' must be a non-empty array")
	}
	if len(cr.Messages) > maxMessages {
		return nil, nil, hermes.InvalidParam("messages", "'messages' has %d entries; at most %d are accepted", len(cr.Messages), maxMessages)
	}
	req := &hermes.TurnRequest{Model: cr.Model}
	var system []string
	for i, m := range cr.Messages {
		switch m.Role {
		case "system", "developer":
			if t := m.Content.Text; t != "" {
				system = append(system, t)
			}
		case "user":
			req.Input = append(req.Input, hermes.Message{Role: hermes.RoleUser, Content: m.Content.Text, Parts: m.Content.Parts})
		case "assistant":
			msg := hermes.Message{Role: hermes.RoleAssistant, Content: stripMarkers(m.Content.Text)}
			for _, tc := range m.ToolCalls {
				msg.ToolCalls = append(msg.ToolCalls, hermes.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
			}
			req.Input = append(req.Input, msg)
		case "tool", "function":
			if m.ToolCallID == "" && m.Role == "tool" {
				return nil, nil, hermes.InvalidParam("messages["+itoa(i)+"].tool_call_id", "tool messages need a tool_call_id")
			}
			req.Input = append(req.Input, hermes.Message{Role: hermes.RoleTool, ToolCallID: m.ToolCallID, Name: m.Name, Content: m.Content.Text})
		case "":
			return nil, nil, hermes.InvalidParam("messages["+itoa(i)+"].role", "every message needs a role")
		default:
			return nil, nil, hermes.InvalidParam("messages["+itoa(i)+"].role", "unknown role '%s'", m.Role)
		}
	}
	req.System = strings.Join(system, "\n\n")
	if len(req.Input) == 0 {
		// A lone system message (LibreChat's title request): answer it as
		// the user's request.
		req.Input = []hermes.Message{{Role: hermes.RoleUser, Content: req.System}}
		req.System = ""
	}
	if last := req.Input[len(req.Input)-1].Role; last != hermes.RoleUser && last != hermes.RoleTool {
		return nil, nil, hermes.InvalidParam("messages", "the last message must be from the user (or a tool result)")
	}
	tools, err := toolSpecs(cr.Tools)
	if err != nil {
		return nil, nil, err
	}
	req.ClientTools = tools
	if req.ToolChoice, err = toolChoice(cr.ToolChoice); err != nil {
		return nil, nil, err
	}
	switch {
	case cr.MaxCompletionTokens != nil:
		req.MaxTokens = *cr.MaxCompletionTokens
	case cr.MaxTokens != nil:
		req.MaxTokens = *cr.MaxTokens
	}
	if req.MaxTokens < 0 {
		return nil, nil, hermes.InvalidParam("max_tokens", "max_tokens must be positive")
	}
	return &cr, req, nil
}

func itoa(i int) string { return string(appendInt(nil, int64(i))) }

// progressMode is the request's tool progress mode: the X-Hermes-Progress
// header, else the server default.
func (s *Server) progressMode(ctx *fasthttp.RequestCtx) string {
	switch h := string(ctx.Request.Header.Peek("X-Hermes-Progress")); h {
	case "inline", "events", "off":
		return h
	}
	return s.opts.ToolProgress
}

// turnChannelSize bounds the events a turn may run ahead of its client
// before the turn waits: enough to absorb bursts, small enough that a slow
// reader costs little memory.
const turnChannelSize = 16

// submit starts a turn whose events the returned channel carries; cancel
// ends the turn and must be called.
func (s *Server) submit(req *hermes.TurnRequest) (<-chan hermes.Event, context.CancelFunc, error) {
	// Only a stream can notice its client leaving (a write fails), so only
	// a stream's turn needs a context to cancel; the others skip the cost.
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if req.Progress {
		ctx, cancel = context.WithCancel(ctx)
	}
	size := 1 // only the final event
	if req.Progress {
		size = turnChannelSize
	}
	events := make(chan hermes.Event, size)
	req.Ctx, req.Events = ctx, events
	if req.Created.IsZero() {
		req.Created = s.opts.Now()
	}
	if err := s.rt.Submit(req); err != nil {
		cancel()
		return nil, nil, err
	}
	return events, cancel, nil
}

// wait drains events until the turn is done.
func wait(events <-chan hermes.Event) *hermes.TurnResult {
	for ev := range events {
		if ev.Kind == hermes.EventDone {
			return ev.Result
		}
	}
	return nil
}

func (s *Server) chatCompletions(ctx *fasthttp.RequestCtx) {
	cr, req, err := s.decodeChat(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	req.ResponseID = s.opts.NewID("chatcmpl-")
	if req.Model == "" {
		req.Model = s.opts.ModelName
	}
	req.Progress = cr.Stream
	events, cancel, err := s.submit(req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if !cr.Stream {
		defer cancel()
		res := wait(events)
		if res.Err != nil {
			writeError(ctx, res.Err)
			return
		}
		ctx.SetContentType("application/json")
		ctx.Response.SetBodyRaw(s.appendCompletion(make([]byte, 0, 512+len(res.Text)), req, res))
		return
	}
	st := &chatStream{
		s: s, req: req, events: events, cancel: cancel,
		mode:         s.progressMode(ctx),
		includeUsage: cr.StreamOptions != nil && cr.StreamOptions.IncludeUsage,
	}
	s.stream(ctx, events, cancel, func(first *hermes.Event, w *bufio.Writer) {
		st.first = first
		st.run(ctx, w)
	})
}

// stream answers a streaming request. It holds the headers until the turn's
// first event, so a turn that fails before producing anything (upstream
// down, rate limited) still gets a real status code and a JSON error;
// otherwise the response becomes an SSE stream that run writes.
func (s *Server) stream(ctx *fasthttp.RequestCtx, events <-chan hermes.Event, cancel context.CancelFunc, run func(first *hermes.Event, w *bufio.Writer)) {
	first, failed := s.firstEvent(events)
	if failed {
		cancel()
		writeError(ctx, first.Result.Err)
		return
	}
	startSSE(ctx)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { run(first, w) })
}

// firstEventWait is how long a stream holds its headers for the turn's
// first event: long enough for an upstream that refuses at once (down,
// rate limited) to get a real status, short enough that a slow model does
// not leave the client without headers.
const firstEventWait = 2 * time.Second

// firstEvent waits up to firstEventWait for the turn's first event; failed
// is true when the turn ended in an error before producing anything.
func (s *Server) firstEvent(events <-chan hermes.Event) (first *hermes.Event, failed bool) {
	t := time.NewTimer(firstEventWait)
	defer t.Stop()
	select {
	case ev := <-events:
		return &ev, ev.Kind == hermes.EventDone && ev.Result.Err != nil && ev.Result.Text == ""
	case <-t.C:
		return nil, false
	}
}

func startSSE(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	h := &ctx.Response.Header
	h.SetContentType("text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

func (s *Server) appendCompletion(b []byte, req *hermes.TurnRequest, res *hermes.TurnResult) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, req.ResponseID)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = appendInt(b, req.Created.Unix())
	b = append(b, `,"model":`...)
	b = appendString(b, req.Model)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if res.Text == "" && len(res.ClientToolCalls) > 0 {
		b = append(b, "null"...)
	} else {
		b = appendString(b, res.Text)
	}
	if len(res.ClientToolCalls) > 0 {
		b = append(b, `,"tool_calls":[`...)
		for i, c := range res.ClientToolCalls {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendString(b, c.ID)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendString(b, c.Name)
			b = append(b, `,"arguments":`...)
			b = appendString(b, c.Arguments)
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	}
	b = append(b, `},"logprobs":null,"finish_reason":`...)
	b = appendString(b, string(finishReason(res)))
	b = append(b, `}],"usage":`...)
	b = appendChatUsage(b, res.Usage)
	return append(b, '}')
}

func finishReason(res *hermes.TurnResult) hermes.FinishReason {
	if len(res.ClientToolCalls) > 0 {
		return hermes.FinishToolCalls
	}
	if res.Finish == "" {
		return hermes.FinishStop
	}
	return res.Finish
}

func appendChatUsage(b []byte, u hermes.Usage) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = appendInt(b, int64(u.PromptTokens))
	b = append(b, `,"completion_tokens":`...)
	b = appendInt(b, int64(u.CompletionTokens))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(u.Total()))
	b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
	b = appendInt(b, int64(u.CachedTokens))
	b = append(b, `},"completion_tokens_details":{"reasoning_tokens":`...)
	b = appendInt(b, int64(u.ReasoningTokens))
	return append(b, "}}"...)
}
