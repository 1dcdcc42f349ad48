package httpfront

import (
	"strings"

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
	// ReasoningEffort is chat's form of Responses' reasoning.effort (Open
	// WebUI and LibreChat send it when the user sets one).
	ReasoningEffort *string `json:"reasoning_effort"`
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
	if s.opts.ChatOverflow == "error" {
		req.Truncation = "disabled"
	}
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
	if err := s.checkImages(req.Input, "messages"); err != nil {
		return nil, nil, err
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
	if e := cr.ReasoningEffort; e != nil {
		if !reasoningEfforts[*e] {
			return nil, nil, hermes.InvalidParam("reasoning_effort", "reasoning_effort must be one of none, minimal, low, medium, high, xhigh")
		}
		req.ReasoningEffort = *e
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

func (s *Server) chatCompletions(ctx *fasthttp.RequestCtx) {
	cr, req, err := s.decodeChat(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	req.ResponseID = s.opts.NewID("chatcmpl-")
	if req.Model, err = s.resolveModel(req.Model); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set(modelHeader, req.Model)
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
		if res.Model != "" { // a fallback answered
			req.Model = res.Model
			ctx.Response.Header.Set(modelHeader, req.Model)
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
	s.stream(ctx, req, events, cancel, func(first *hermes.Event) encoder {
		st.first = first
		return st
	})
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
	if res.Reasoning != "" {
		b = append(b, `,"reasoning_content":`...)
		b = appendString(b, res.Reasoning)
	}
	if len(res.ClientToolCalls) > 0 {
		b = append(b, `,"tool_calls":[`...)
		for i, c := range res.ClientToolCalls {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendToolCall(b, -1, c, wholeCall)
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

// callPart is how much of a tool call one encoding carries. A message
// carries the whole call; a stream sends each call as OpenAI does, in two
// deltas: one naming it (arguments ""), then one with its arguments only.
type callPart int

const (
	wholeCall callPart = iota
	callHead
	callArguments
)

// appendToolCall appends c as an element of a chat tool_calls array, the
// one encoder of the shape for messages and stream deltas alike. A delta's
// element carries its index in the turn's calls; a message's (index < 0)
// does not.
func appendToolCall(b []byte, index int, c hermes.ToolCall, part callPart) []byte {
	b = append(b, '{')
	if index >= 0 {
		b = append(b, `"index":`...)
		b = appendInt(b, int64(index))
		b = append(b, ',')
	}
	if part == callArguments {
		b = append(b, `"function":{"arguments":`...)
	} else {
		b = append(b, `"id":`...)
		b = appendString(b, c.ID)
		b = append(b, `,"type":"function","function":{"name":`...)
		b = appendString(b, c.Name)
		b = append(b, `,"arguments":`...)
	}
	if part == callHead {
		b = append(b, `""`...)
	} else {
		b = appendString(b, c.Arguments)
	}
	return append(b, "}}"...)
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
