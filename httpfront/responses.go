package httpfront

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

func (s *Server) responseRoutes(r *router.Router) {
	r.POST("/v1/responses", s.idempotent("responses", s.createResponse))
	r.GET("/v1/responses/{id}", s.getResponse)
	r.DELETE("/v1/responses/{id}", s.deleteResponse)
	r.GET("/v1/responses/{id}/input_items", s.inputItems)
	r.POST("/v1/responses/{id}/cancel", s.cancelResponse)
	s.conversationRoutes(r)
}

type responsesRequest struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       *string           `json:"instructions"`
	PreviousResponseID string            `json:"previous_response_id"`
	Conversation       json.RawMessage   `json:"conversation"`
	Store              *bool             `json:"store"`
	Stream             bool              `json:"stream"`
	Tools              []wireTool        `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	Metadata           map[string]string `json:"metadata"`
	Background         bool              `json:"background"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
}

// responseWire is what a response object echoes of its request; kept in
// the record's Wire so GET renders the same object the stream ended with.
type responseWire struct {
	Instructions      *string           `json:"instructions,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	Tools             json.RawMessage   `json:"tools,omitempty"`
	ToolChoice        json.RawMessage   `json:"tool_choice,omitempty"`
	MaxOutputTokens   *int              `json:"max_output_tokens,omitempty"`
	ParallelToolCalls *bool             `json:"parallel_tool_calls,omitempty"`
	Temperature       *float64          `json:"temperature,omitempty"`
	TopP              *float64          `json:"top_p,omitempty"`
	Store             bool              `json:"store"`
	Background        bool              `json:"background,omitempty"`
}

// inputItem is one item of a Responses API input list.
type inputItem struct {
	Type      string      `json:"type"`
	ID        string      `json:"id"`
	Role      string      `json:"role"`
	Content   wireContent `json:"content"`
	CallID    string      `json:"call_id"`
	Name      string      `json:"name"`
	Arguments string      `json:"arguments"`
	Output    wireContent `json:"output"`
}

// decodeResponses turns a /v1/responses body into a turn request.
func (s *Server) decodeResponses(body []byte) (*responsesRequest, *hermes.TurnRequest, error) {
	var rr responsesRequest
	if err := decodeObject(body, &rr); err != nil {
		return nil, nil, err
	}
	req := &hermes.TurnRequest{Model: rr.Model, Previous: rr.PreviousResponseID, Store: true, Background: rr.Background}
	if req.Model == "" {
		req.Model = s.opts.ModelName
	}
	if rr.Store != nil {
		req.Store = *rr.Store
	}
	if rr.Background && !req.Store {
		return nil, nil, hermes.InvalidParam("background", "background responses must be stored (store: true)")
	}
	conv, err := conversationID(rr.Conversation)
	if err != nil {
		return nil, nil, err
	}
	if conv != "" && rr.PreviousResponseID != "" {
		return nil, nil, hermes.InvalidParam("conversation", "'conversation' and 'previous_response_id' cannot be used together")
	}
	req.Conversation = conv
	if err := checkID("previous_response_id", rr.PreviousResponseID); err != nil {
		return nil, nil, err
	}
	if err := checkID("conversation", conv); err != nil {
		return nil, nil, err
	}
	var system []string
	if rr.Instructions != nil && *rr.Instructions != "" {
		system = append(system, *rr.Instructions)
	}
	input, sys, err := s.decodeInput(rr.Input)
	if err != nil {
		return nil, nil, err
	}
	req.Input = input
	req.System = strings.Join(append(system, sys...), "\n\n")
	if len(req.Input) == 0 {
		return nil, nil, hermes.InvalidParam("input", "'input' must be a non-empty string or list of items")
	}
	if req.ClientTools, err = toolSpecs(rr.Tools); err != nil {
		return nil, nil, err
	}
	if req.ToolChoice, err = toolChoice(rr.ToolChoice); err != nil {
		return nil, nil, err
	}
	if rr.MaxOutputTokens != nil {
		if *rr.MaxOutputTokens < 1 {
			return nil, nil, hermes.InvalidParam("max_output_tokens", "max_output_tokens must be at least 1")
		}
		req.MaxTokens = *rr.MaxOutputTokens
	}
	w := responseWire{Instructions: rr.Instructions, Metadata: rr.Metadata, ToolChoice: rr.ToolChoice,
		MaxOutputTokens: rr.MaxOutputTokens, ParallelToolCalls: rr.ParallelToolCalls,
		Temperature: rr.Temperature, TopP: rr.TopP, Store: req.Store, Background: rr.Background}
	if len(req.ClientTools) > 0 {
		w.Tools = renderTools(req.ClientTools)
	}
	req.Wire, _ = json.Marshal(w)
	return &rr, req, nil
}

// functionTool is a function tool as a response object echoes it: the
// Responses API's flat shape, whichever shape the request used.
type functionTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description *string         `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      bool            `json:"strict"`
}

func renderTools(specs []hermes.ToolSpec) json.RawMessage {
	tools := make([]functionTool, len(specs))
	for i, sp := range specs {
		tools[i] = functionTool{Type: "function", Name: sp.Name, Parameters: json.RawMessage(sp.Parameters)}
		if sp.Description != "" {
			d := sp.Description
			tools[i].Description = &d
		}
		if len(tools[i].Parameters) == 0 {
			tools[i].Parameters = json.RawMessage(`null`)
		}
	}
	b, _ := json.Marshal(tools)
	return b
}

// checkID refuses ids no store key should hold: path characters, control
// bytes, absurd lengths.
func checkID(param, id string) error {
	if len(id) > 256 || strings.ContainsAny(id, "/\\\x00\r\n") {
		return hermes.InvalidParam(param, "'%s' is not a valid id", param)
	}
	return nil
}

// conversationID reads "name", {"id": "conv_…"} or null.
func conversationID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return name, nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.ID == "" {
		return "", hermes.InvalidParam("conversation", "'conversation' must be a name, a conv_ id or {\"id\": …}")
	}
	return obj.ID, nil
}

// decodeInput turns input (a string or a list of items) into messages, and
// returns system/developer messages separately to layer on the prompt.
func (s *Server) decodeInput(raw json.RawMessage) ([]hermes.Message, []string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil, nil
	}
	if raw[0] == '"' {
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, nil, hermes.InvalidParam("input", "'input' is not a valid string")
		}
		return []hermes.Message{{Role: hermes.RoleUser, Content: text}}, nil, nil
	}
	var items []inputItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, nil, hermes.InvalidParam("input", "'input' must be a string or a list of items: %s", cleanJSONError(err))
	}
	if len(items) > maxMessages {
		return nil, nil, hermes.InvalidParam("input", "'input' has %d items; at most %d are accepted", len(items), maxMessages)
	}
	var out []hermes.Message
	var system []string
	for i, it := range items {
		param := "input[" + itoa(i) + "]"
		switch it.Type {
		case "", "message":
			switch it.Role {
			case "system", "developer":
				system = append(system, it.Content.Text)
			case "user":
				out = append(out, hermes.Message{Role: hermes.RoleUser, Content: it.Content.Text, Parts: it.Content.Parts})
			case "assistant":
				out = append(out, hermes.Message{Role: hermes.RoleAssistant, Content: stripMarkers(it.Content.Text)})
			default:
				return nil, nil, hermes.InvalidParam(param+".role", "unknown role '%s'", it.Role)
			}
		case "function_call":
			if it.CallID == "" || it.Name == "" {
				return nil, nil, hermes.InvalidParam(param, "function_call items need call_id and name")
			}
			call := hermes.ToolCall{ID: it.CallID, Name: it.Name, Arguments: it.Arguments}
			if n := len(out); n > 0 && out[n-1].Role == hermes.RoleAssistant && out[n-1].Content == "" && len(out[n-1].ToolCalls) > 0 {
				out[n-1].ToolCalls = append(out[n-1].ToolCalls, call)
			} else {
				out = append(out, hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{call}})
			}
		case "function_call_output":
			if it.CallID == "" {
				return nil, nil, hermes.InvalidParam(param+".call_id", "function_call_output items need a call_id")
			}
			out = append(out, hermes.Message{Role: hermes.RoleTool, ToolCallID: it.CallID, Content: it.Output.Text})
		case "item_reference":
			m, err := s.resolveItem(it.ID)
			if err != nil {
				return nil, nil, hermes.InvalidParam(param+".id", "%s", err.Error())
			}
			out = append(out, m)
		default:
			return nil, nil, hermes.InvalidParam(param+".type", "unsupported input item type '%s'", it.Type)
		}
	}
	return out, system, nil
}

// resolveItem finds a stored item by id. Item ids name their response
// (msg_<r>_<k> belongs to resp_<r>), so this is one store read.
func (s *Server) resolveItem(id string) (hermes.Message, error) {
	respID, _, ok := splitItemID(id)
	if !ok {
		return hermes.Message{}, hermes.Errorf(hermes.ENotFound, "item '%s' not found", id)
	}
	rec, err := s.rt.Response(respID)
	if err != nil {
		return hermes.Message{}, hermes.Errorf(hermes.ENotFound, "item '%s' not found", id)
	}
	outItems, outMsgs := outputItems(rec.ID, rec.Output)
	inItems, inMsgs := inputItems(rec.ID, rec.Input)
	items, msgs := append(outItems, inItems...), append(outMsgs, inMsgs...)
	for k, it := range items {
		if it.ID == id {
			return msgs[k], nil
		}
	}
	return hermes.Message{}, hermes.Errorf(hermes.ENotFound, "item '%s' not found", id)
}

// splitItemID splits msg_<r>_<k> into resp_<r> and k.
func splitItemID(id string) (respID, k string, ok bool) {
	_, rest, ok := strings.Cut(id, "_")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", "", false
	}
	return "resp_" + rest[:i], rest[i+1:], true
}

func itemID(prefix, respID, k string) string {
	return prefix + strings.TrimPrefix(respID, "resp_") + "_" + k
}

func (s *Server) createResponse(ctx *fasthttp.RequestCtx) {
	rr, req, err := s.decodeResponses(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	req.ResponseID = s.opts.NewID("resp_")
	if rr.Background {
		s.startBackground(ctx, req)
		return
	}
	req.Progress = rr.Stream
	events, cancel, err := s.submit(req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if !rr.Stream {
		defer cancel()
		res := wait(events)
		if res.Err != nil && (res.Record == nil || res.Record.Status == hermes.StatusFailed) {
			writeError(ctx, res.Err)
			return
		}
		ctx.SetContentType("application/json")
		ctx.Response.SetBodyRaw(renderResponse(res.Record))
		return
	}
	st := &responseStream{s: s, req: req, events: events, cancel: cancel}
	s.stream(ctx, events, cancel, func(first *hermes.Event, sw *sseWriter) {
		st.first = first
		st.run(sw)
	})
}

// startBackground runs the turn detached and answers at once with the
// queued response; clients poll GET and may cancel.
func (s *Server) startBackground(ctx *fasthttp.RequestCtx, req *hermes.TurnRequest) {
	// The queued record names no conversation: storing it under one would
	// point the conversation at a response with no transcript yet, and the
	// turn would lose its history. The final record joins the conversation.
	queued := &hermes.StoredResponse{ID: req.ResponseID, Previous: req.Previous,
		Status: hermes.StatusQueued, Created: s.opts.Now(), Model: req.Model, Input: req.Input, Wire: req.Wire}
	req.Created = queued.Created
	if err := s.rt.Save(queued); err != nil {
		writeError(ctx, err)
		return
	}
	events, cancel, err := s.submit(req)
	if err != nil {
		_ = s.rt.DeleteResponse(queued.ID)
		writeError(ctx, err)
		return
	}
	go func() {
		defer cancel()
		wait(events)
	}()
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(renderResponse(queued))
}

func (s *Server) storedResponse(ctx *fasthttp.RequestCtx) (*hermes.StoredResponse, bool) {
	id, _ := ctx.UserValue("id").(string)
	rec, err := s.rt.Response(id)
	if err != nil {
		writeError(ctx, err)
		return nil, false
	}
	return rec, true
}

func (s *Server) getResponse(ctx *fasthttp.RequestCtx) {
	rec, ok := s.storedResponse(ctx)
	if !ok {
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(renderResponse(rec))
}

func (s *Server) deleteResponse(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	if err := s.rt.DeleteResponse(id); err != nil {
		writeError(ctx, err)
		return
	}
	b := append([]byte(`{"id":`), appendString(nil, id)...)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(append(b, `,"object":"response","deleted":true}`...))
}

func (s *Server) cancelResponse(ctx *fasthttp.RequestCtx) {
	rec, ok := s.storedResponse(ctx)
	if !ok {
		return
	}
	var w responseWire
	_ = json.Unmarshal(rec.Wire, &w)
	if !w.Background {
		writeError(ctx, hermes.InvalidParam("", "Only background responses can be cancelled."))
		return
	}
	if done, ok := s.rt.Cancel(rec.ID); ok {
		// Answer with the final state: the turn stores its cancelled
		// record before it lets go.
		t := time.NewTimer(10 * time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		if r, err := s.rt.Response(rec.ID); err == nil {
			rec = r
		}
	}
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(renderResponse(rec))
}

func (s *Server) inputItems(ctx *fasthttp.RequestCtx) {
	rec, ok := s.storedResponse(ctx)
	if !ok {
		return
	}
	items, _ := inputItems(rec.ID, rec.Input)
	writeList(ctx, items)
}

// writeList answers a paginated list per the request's limit/order/after
// query (order defaults to desc, as OpenAI's item lists do).
func writeList(ctx *fasthttp.RequestCtx, items []item) {
	args := ctx.QueryArgs()
	limit := 20
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 100 {
			writeError(ctx, hermes.InvalidParam("limit", "limit must be an integer from 1 to 100"))
			return
		}
		limit = n
	}
	order := string(args.Peek("order"))
	switch order {
	case "":
		order = "desc"
	case "asc", "desc":
	default:
		writeError(ctx, hermes.InvalidParam("order", "order must be asc or desc"))
		return
	}
	b, err := listBody(items, limit, order, string(args.Peek("after")))
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}

// listBody renders one page of items: ordered, after the item named by
// after (if any), at most limit long.
func listBody(items []item, limit int, order, after string) ([]byte, error) {
	if order == "desc" {
		rev := make([]item, len(items))
		for i, it := range items {
			rev[len(items)-1-i] = it
		}
		items = rev
	}
	if after != "" {
		found := false
		for i, it := range items {
			if it.ID == after {
				items, found = items[i+1:], true
				break
			}
		}
		if !found {
			return nil, hermes.InvalidParam("after", "no item with id '%s'", after)
		}
	}
	hasMore := len(items) > limit
	if hasMore {
		items = items[:limit]
	}
	list := struct {
		Object  string  `json:"object"`
		Data    []item  `json:"data"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
		HasMore bool    `json:"has_more"`
	}{Object: "list", Data: items, HasMore: hasMore}
	if list.Data == nil {
		list.Data = []item{}
	}
	if len(items) > 0 {
		list.FirstID, list.LastID = &items[0].ID, &items[len(items)-1].ID
	}
	return json.Marshal(list)
}
