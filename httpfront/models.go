package httpfront

import (
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// modelHeader names, on every turn's answer, the model that answered.
const modelHeader = "X-Hermes-Model"

// Model is one model GET /v1/models lists.
type Model struct {
	ID            string
	ContextWindow int // tokens
	Vision        bool
	Reasoning     bool
	Tools         bool
}

// Models is the set of models clients may name.
type Models interface {
	// List returns them in configuration order.
	List() []Model
	// Resolve returns the id a request naming model runs on: model, the
	// default for "" and unknown names, or an error (model_not_found)
	// when unknown names are refused.
	Resolve(model string) (string, error)
}

// resolveModel is the model a request naming model runs on.
func (s *Server) resolveModel(model string) (string, error) {
	if s.opts.Models == nil {
		if model == "" {
			return s.opts.ModelName, nil
		}
		return model, nil // one model: every name is it, echoed as hermes-agent does
	}
	return s.opts.Models.Resolve(model)
}

func (s *Server) modelList() []Model {
	if s.opts.Models == nil {
		return []Model{{ID: s.opts.ModelName, Tools: true}}
	}
	return s.opts.Models.List()
}

func (s *Server) appendModel(b []byte, m Model) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, m.ID)
	b = append(b, `,"object":"model","created":`...)
	b = appendInt(b, s.created)
	b = append(b, `,"owned_by":"hermes"`...)
	if m.ContextWindow > 0 {
		b = append(b, `,"context_window":`...)
		b = appendInt(b, int64(m.ContextWindow))
	}
	b = append(b, `,"capabilities":{"vision":`...)
	b = appendBool(b, m.Vision)
	b = append(b, `,"reasoning":`...)
	b = appendBool(b, m.Reasoning)
	b = append(b, `,"tools":`...)
	b = appendBool(b, m.Tools)
	return append(b, "}}"...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

func (s *Server) models(ctx *fasthttp.RequestCtx) {
	b := append([]byte(nil), `{"object":"list","data":[`...)
	for i, m := range s.modelList() {
		if i > 0 {
			b = append(b, ',')
		}
		b = s.appendModel(b, m)
	}
	b = append(b, "]}"...)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}

func (s *Server) model(ctx *fasthttp.RequestCtx) {
	id, _ := ctx.UserValue("id").(string)
	for _, m := range s.modelList() {
		if m.ID == id {
			ctx.SetContentType("application/json")
			ctx.Response.SetBodyRaw(s.appendModel(nil, m))
			return
		}
	}
	writeError(ctx, &hermes.Error{Code: hermes.EModelNotFound, Param: "model", Message: "The model '" + id + "' does not exist"})
}
