package llm

import (
	"context"
	"errors"
	"net"
	"strconv"

	hermes "github.com/hermesd/hermesd"
)

// Route is one model clients can name: the upstream behind it, its context
// window, its capabilities, and the routes it falls back to.
type Route struct {
	ID       string // what clients send and see
	Model    Model  // the upstream (or the offline model)
	Upstream string // the model id sent upstream
	Window   *Window
	// Vision, Reasoning and Tools are the capabilities config.yaml gives;
	// a route without Tools is called without the agent's tools.
	Vision, Reasoning, Tools bool
	// Fallbacks are tried in order, once each, when this route fails
	// before its first token (Router.Model).
	Fallbacks []*Route
}

// Router is a set of routes, immutable once built: a reload builds another.
type Router struct {
	routes []*Route
	byID   map[string]*Route
	def    *Route
	strict bool
	// onFallback observes each fallback (log, metric).
	onFallback func(from, to string, err error)
}

// RouterOptions builds a Router.
type RouterOptions struct {
	Routes []*Route
	// Default answers requests naming no model, and unknown ones unless
	// Strict; it must be one of Routes' ids.
	Default string
	// Strict refuses unknown model names (404 model_not_found) rather
	// than answering them with Default.
	Strict     bool
	OnFallback func(from, to string, err error)
}

// NewRouter returns a router over opts.Routes.
func NewRouter(opts RouterOptions) *Router {
	r := &Router{routes: opts.Routes, byID: map[string]*Route{}, strict: opts.Strict, onFallback: opts.OnFallback}
	for _, rt := range opts.Routes {
		r.byID[rt.ID] = rt
	}
	r.def = r.byID[opts.Default]
	if r.def == nil && len(opts.Routes) > 0 {
		r.def = opts.Routes[0]
	}
	return r
}

// Routes returns every route in configuration order.
func (r *Router) Routes() []*Route { return r.routes }

// Resolve returns the route a request naming model runs on: that route,
// else the default (LibreChat and others send title-generation calls
// with arbitrary names), or, when strict, a 404 model_not_found. An
// empty name is the default's.
func (r *Router) Resolve(model string) (*Route, error) {
	if rt := r.byID[model]; rt != nil {
		return rt, nil
	}
	if model != "" && r.strict {
		return nil, &hermes.Error{Code: hermes.EModelNotFound, Param: "model",
			Message: "The model '" + model + "' does not exist"}
	}
	return r.def, nil
}

// Model returns rt as a Model that falls back: a call that fails before
// its first token with an error a fallback may cure (no connection, HTTP
// 5xx, 429) is made again on rt's fallbacks, in order, once each. Each
// call is sent as the route's own upstream model id, and its Response
// names the route that answered.
func (r *Router) Model(rt *Route) Model { return fallbackModel{r: r, rt: rt} }

type fallbackModel struct {
	r         *Router
	rt        *Route
	reasoning func(string) // the caller's OnReasoning
}

func (f fallbackModel) Stream(ctx context.Context, req Request, onDelta func(string)) (Response, error) {
	tries := append([]*Route{f.rt}, f.rt.Fallbacks...)
	f.reasoning = req.OnReasoning
	for i, rt := range tries {
		req.Model = rt.Upstream
		started := false
		if onReasoning := f.reasoning; onReasoning != nil {
			req.OnReasoning = func(d string) {
				started = true
				onReasoning(d)
			}
		}
		out, err := rt.Model.Stream(ctx, req, func(d string) {
			started = true
			if onDelta != nil {
				onDelta(d)
			}
		})
		out.Model = rt.ID
		if err == nil || started || len(out.ToolCalls) > 0 || i == len(tries)-1 || ctx.Err() != nil || !fallsBack(err) {
			return out, err
		}
		if f.r.onFallback != nil {
			f.r.onFallback(rt.ID, tries[i+1].ID, err)
		}
	}
	panic("unreachable: the last try returns")
}

// fallsBack reports an error another upstream may not have: no connection,
// HTTP 5xx, or rate limiting. A 4xx says the request itself is wrong, and
// a timeout after connecting may have cost the upstream the whole prompt.
func fallsBack(err error) bool {
	var he *hermes.Error
	if !errors.As(err, &he) {
		return false
	}
	if he.Code == hermes.ERateLimited {
		return true
	}
	var st httpStatus
	if errors.As(he.Cause, &st) {
		return st >= 500
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(he.Cause, &dnsErr) || errors.As(he.Cause, &opErr) && opErr.Op == "dial"
}

// httpStatus is the cause of an upstream's non-2xx answer, so a router
// can tell a server error from a refused request.
type httpStatus int

func (s httpStatus) Error() string { return "HTTP " + strconv.Itoa(int(s)) }
