package httpfront

import (
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

func (s *Server) responseRoutes(r *router.Router) {
	r.POST("/v1/responses", s.idempotent("responses", s.createResponse))
	r.GET("/v1/responses", s.responsesSocket)
	r.GET("/v1/responses/{id}", s.getResponse)
	r.DELETE("/v1/responses/{id}", s.deleteResponse)
	r.GET("/v1/responses/{id}/input_items", s.inputItems)
	r.POST("/v1/responses/{id}/cancel", s.cancelResponse)
	r.POST("/v1/responses/input_tokens", s.inputTokens)
	r.POST("/v1/responses/compact", s.compact)
	s.conversationRoutes(r)
}

// compact answers POST /v1/responses/compact: the conversation the body
// would continue, compacted into a compaction item and the turns kept,
// as the Open Responses response.compaction object.
func (s *Server) compact(ctx *fasthttp.RequestCtx) {
	_, req, err := s.decodeResponses(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	msgs, usage, err := s.rt.Compact(ctx, req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	id := s.opts.NewID("cmp_")
	items, _ := inputItems(id, msgs, itemForm{agentFunctionCalls: s.opts.AgentToolItems == "function_call"})
	u := responseUsage{InputTokens: usage.PromptTokens, OutputTokens: usage.CompletionTokens, TotalTokens: usage.Total()}
	b, _ := json.Marshal(struct {
		ID        string        `json:"id"`
		Object    string        `json:"object"`
		Output    []any         `json:"output"`
		CreatedAt int64         `json:"created_at"`
		Usage     responseUsage `json:"usage"`
	}{id, "response.compaction", wireItems(items), s.opts.Now().Unix(), u})
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}

// inputTokens answers how many input tokens a would-be /v1/responses body
// holds (its history included), as estimated before a model call.
func (s *Server) inputTokens(ctx *fasthttp.RequestCtx) {
	_, req, err := s.decodeResponses(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	n, err := s.rt.InputTokens(ctx, req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	b := append([]byte(`{"object":"response.input_tokens","input_tokens":`), strconv.Itoa(n)...)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(append(b, '}'))
}

func (s *Server) createResponse(ctx *fasthttp.RequestCtx) {
	rr, req, err := s.decodeResponses(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	req.ResponseID = s.opts.NewID("resp_")
	ctx.Response.Header.Set(modelHeader, req.Model)
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
		ctx.Response.SetBodyRaw(s.renderResponse(res.Record))
		return
	}
	st := &responseStream{s: s, req: req, events: events, cancel: cancel, wire: &rr.wire}
	s.stream(ctx, req, events, cancel, func(first *hermes.Event) encoder {
		st.first = first
		return st
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
	ctx.Response.SetBodyRaw(s.renderResponse(queued))
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
	ctx.Response.SetBodyRaw(s.renderResponse(rec))
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
	}
	if r, err := s.rt.Response(rec.ID); err == nil {
		rec = r
	}
	switch rec.Status {
	case hermes.StatusCompleted, hermes.StatusFailed, hermes.StatusIncomplete:
		// Nothing was running it when the cancel came: it finished
		// (perhaps just now), or an earlier process left it. Answering
		// with the record would claim a cancel that changed nothing. A
		// repeated cancel of a cancelled response answers it again.
		writeError(ctx, &hermes.Error{Code: hermes.EConflict,
			Message: "Response '" + rec.ID + "' is " + string(rec.Status) + ", not running: only a queued or in-progress background response can be cancelled."})
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(s.renderResponse(rec))
}

func (s *Server) inputItems(ctx *fasthttp.RequestCtx) {
	rec, ok := s.storedResponse(ctx)
	if !ok {
		return
	}
	var w responseWire
	_ = json.Unmarshal(rec.Wire, &w)
	items, _ := inputItems(rec.ID, rec.Input, s.recordForm(&w))
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
		Data    []any   `json:"data"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
		HasMore bool    `json:"has_more"`
	}{Object: "list", Data: wireItems(items), HasMore: hasMore}
	if len(items) > 0 {
		list.FirstID, list.LastID = &items[0].ID, &items[len(items)-1].ID
	}
	return json.Marshal(list)
}
