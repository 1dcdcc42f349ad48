package httpfront

import (
	"github.com/fasthttp/router"
	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

func (s *Server) conversationRoutes(r *router.Router) {
	r.POST("/v1/conversations", s.idempotent("conversations", s.createConversation))
	r.GET("/v1/conversations/{id}", s.getConversation)
	r.POST("/v1/conversations/{id}", s.updateConversation)
	r.DELETE("/v1/conversations/{id}", s.deleteConversation)
	r.GET("/v1/conversations/{id}/items", s.conversationItems)
	r.POST("/v1/conversations/{id}/items", s.addConversationItems)
}

type conversationBody struct {
	Items    json.RawMessage   `json:"items"`
	Metadata map[string]string `json:"metadata"`
}

type conversationObject struct {
	ID        string            `json:"id"`
	Object    string            `json:"object"`
	CreatedAt int64             `json:"created_at"`
	Metadata  map[string]string `json:"metadata"`
}

func writeConversation(ctx *fasthttp.RequestCtx, c *hermes.Conversation) {
	md := c.Metadata
	if md == nil {
		md = map[string]string{}
	}
	b, _ := json.Marshal(conversationObject{ID: c.ID, Object: "conversation", CreatedAt: c.Created.Unix(), Metadata: md})
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}

func (s *Server) createConversation(ctx *fasthttp.RequestCtx) {
	var body conversationBody
	if len(ctx.PostBody()) > 0 {
		if err := decodeObject(ctx.PostBody(), &body); err != nil {
			writeError(ctx, err)
			return
		}
	}
	if err := checkMetadata(body.Metadata); err != nil {
		writeError(ctx, err)
		return
	}
	items, _, err := s.decodeInput(body.Items, inputScope{param: "items", whole: true})
	// Files in the items are read into text now: a conversation keeps
	// their text, never their bytes.
	if err == nil {
		err = s.rt.ReadFiles(ctx, items)
	}
	if err != nil {
		writeError(ctx, err)
		return
	}
	c := &hermes.Conversation{ID: s.opts.NewID("conv_"), Created: s.opts.Now(), Metadata: body.Metadata, Pending: items}
	if err := s.rt.CreateConversation(c); err != nil {
		writeError(ctx, err)
		return
	}
	writeConversation(ctx, c)
}

func (s *Server) conversation(ctx *fasthttp.RequestCtx) (*hermes.Conversation, bool) {
	id, _ := ctx.UserValue("id").(string)
	c, err := s.rt.Conversation(id)
	if err != nil {
		writeError(ctx, err)
		return nil, false
	}
	return c, true
}

func (s *Server) getConversation(ctx *fasthttp.RequestCtx) {
	if c, ok := s.conversation(ctx); ok {
		writeConversation(ctx, c)
	}
}

// conversationAndBody loads the conversation the path names and decodes
// the request body; it answers the error itself when either fails.
func (s *Server) conversationAndBody(ctx *fasthttp.RequestCtx) (*hermes.Conversation, *conversationBody, bool) {
	c, ok := s.conversation(ctx)
	if !ok {
		return nil, nil, false
	}
	var body conversationBody
	if err := decodeObject(ctx.PostBody(), &body); err != nil {
		writeError(ctx, err)
		return nil, nil, false
	}
	return c, &body, true
}

func (s *Server) updateConversation(ctx *fasthttp.RequestCtx) {
	c, body, ok := s.conversationAndBody(ctx)
	if !ok {
		return
	}
	if err := checkMetadata(body.Metadata); err != nil {
		writeError(ctx, err)
		return
	}
	c, err := s.rt.UpdateConversation(c.ID, func(c *hermes.Conversation) { c.Metadata = body.Metadata })
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeConversation(ctx, c)
}

func (s *Server) deleteConversation(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	if err := s.rt.DeleteConversation(id); err != nil {
		writeError(ctx, err)
		return
	}
	b := append([]byte(`{"id":`), appendString(nil, id)...)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(append(b, `,"object":"conversation.deleted","deleted":true}`...))
}

// conversationMessages is everything the conversation holds: the latest
// response's transcript and the items added since.
func (s *Server) conversationMessages(c *hermes.Conversation) []hermes.Message {
	var msgs []hermes.Message
	if c.Latest != "" {
		if tr, err := s.rt.Transcript(c.Latest); err == nil {
			msgs = append(msgs, tr...)
		}
	}
	return append(msgs, c.Pending...)
}

func (s *Server) conversationItems(ctx *fasthttp.RequestCtx) {
	c, ok := s.conversation(ctx)
	if !ok {
		return
	}
	items, _ := inputItems("resp_"+c.ID, s.conversationMessages(c), s.recordForm(&responseWire{}))
	writeList(ctx, items)
}

func (s *Server) addConversationItems(ctx *fasthttp.RequestCtx) {
	c, body, ok := s.conversationAndBody(ctx)
	if !ok {
		return
	}
	// Items join what the conversation holds: a tool output must answer
	// a call there or among them, once.
	held := s.conversationMessages(c)
	items, _, err := s.decodeInput(body.Items, inputScope{param: "items", whole: true, history: held})
	// Files in the items are read into text now: a conversation keeps
	// their text, never their bytes.
	if err == nil {
		err = s.rt.ReadFiles(ctx, items)
	}
	if err != nil {
		writeError(ctx, err)
		return
	}
	if len(items) == 0 {
		writeError(ctx, hermes.InvalidParam("items", "'items' must be a non-empty list"))
		return
	}
	// Count items, not messages: one assistant message may stand for
	// several items (its text and each tool call), or for none.
	prior, _ := inputItems("resp_"+c.ID, held, s.recordForm(&responseWire{}))
	c, err = s.rt.UpdateConversation(c.ID, func(c *hermes.Conversation) { c.Pending = append(c.Pending, items...) })
	if err != nil {
		writeError(ctx, err)
		return
	}
	all, _ := inputItems("resp_"+c.ID, s.conversationMessages(c), s.recordForm(&responseWire{}))
	added := all[min(len(prior), len(all)):]
	b, _ := listBody(added, len(added)+1, "asc", "")
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}
