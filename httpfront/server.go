package httpfront

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/fasthttp/router"
	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/actors"
	"github.com/valyala/fasthttp"
)

// Options configure the HTTP front end.
type Options struct {
	Runtime     *actors.Runtime
	Key         string   // API_SERVER_KEY; empty: open (loopback binds only)
	CORSOrigins []string // API_SERVER_CORS_ORIGINS
	ModelName   string   // API_SERVER_MODEL_NAME; the one model when Models is nil
	// Node names this node in /health (cluster mode); "" leaves it out.
	Node string
	// Database, when set (cluster mode), says whether the shared database
	// answered lately: /health reports it ok, or degraded with a 503 so a
	// load balancer sends requests to nodes that can store them.
	Database func() bool
	// Models, when set, are the models clients may name (config.yaml's
	// models:); it is asked on every request, so a reload shows at once.
	Models Models
	// HoldAnswer sends a stream's answer text as one chunk at its end
	// (API_SERVER_STREAMING=false, hermes-agent's switch for clients that
	// cannot take deltas); tool progress stays live.
	HoldAnswer bool
	// ToolProgress is the default progress mode: inline, events or off.
	ToolProgress string
	// AgentToolItems is how the Responses API shows the agent's own tool
	// runs: "hosted" (mcp_call, web_search_call; the default) or
	// "function_call" (function_call + function_call_output, the older form).
	AgentToolItems string
	// ChatOverflow is what a chat completion whose messages outgrow the
	// model's window gets (API_SERVER_CHAT_OVERFLOW): "compact" (the
	// middle is compacted for the upstream call; the default) or "error"
	// (400 context_length_exceeded).
	ChatOverflow string
	MaxBodyBytes int
	// BodyMemory bounds the request body bytes held at once, all
	// connections together; beyond it requests are answered 503.
	BodyMemory int
	// MaxConns caps open client connections (keep it below the descriptor
	// limit); MaxConnsPerIP caps them per client address, 0 for no cap.
	MaxConns      int
	MaxConnsPerIP int
	// StreamWriteTimeout bounds each SSE frame's write, so a client that
	// stops reading cannot hold a stream (and its turn) forever.
	StreamWriteTimeout time.Duration
	// KeepAlive is how often an idle stream gets an SSE comment: it keeps
	// proxies from closing the connection while a tool runs, and lets a
	// vanished client be noticed (the write fails) so its turn is cancelled.
	KeepAlive time.Duration
	// WorkerIdle is how long an idle connection goroutine is kept for the
	// next connection (fasthttp's MaxIdleWorkerDuration).
	WorkerIdle   time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// Tools lists the agent's enabled tools for GET /v1/tools; MCP
	// servers' tools come and go, so it is asked on each request.
	Tools  func() []Tool
	Logger *slog.Logger
	Now    func() time.Time
	// NewID returns a fresh id with the given prefix (chatcmpl-, resp_…).
	NewID func(prefix string) string
	// Metrics, when set, records request counts and latencies.
	Metrics *Metrics
	// Files, when set, serves the Files API. Uploads are streamed to it
	// under their own body limit, MaxUploadBytes.
	Files          FileStore
	MaxUploadBytes int
	// BindHost (API_SERVER_HOST) and AllowedHosts (API_SERVER_ALLOWED_HOSTS,
	// "*" for any) are the names besides localhost and loopback literals a
	// request's Host may give. The check applies without a Key, or with one
	// when AllowedHosts is set: see hosts.go.
	BindHost     string
	AllowedHosts []string
}

// Server is the HTTP front end.
type Server struct {
	opts    Options
	rt      *actors.Runtime
	srv     *fasthttp.Server
	log     *slog.Logger
	authHdr []byte // "Bearer <key>", compared in constant time
	origins map[string]bool
	hosts   hostGuard
	budget  bodyBudget
	router  *router.Router
	created int64 // the model's "created" timestamp
	sockets sockets
}

// New builds the server and its routes.
func New(opts Options) *Server {
	if opts.ModelName == "" {
		opts.ModelName = "hermes-agent"
	}
	if opts.ToolProgress == "" {
		opts.ToolProgress = "inline"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 10 << 20
	}
	if opts.MaxUploadBytes <= 0 {
		opts.MaxUploadBytes = 100 << 20
	}
	if opts.BodyMemory < opts.MaxBodyBytes {
		opts.BodyMemory = max(opts.MaxBodyBytes, 256<<20)
	}
	if opts.StreamWriteTimeout <= 0 {
		opts.StreamWriteTimeout = 30 * time.Second
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 60 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 60 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewID == nil {
		opts.NewID = NewID
	}
	s := &Server{opts: opts, rt: opts.Runtime, log: opts.Logger, origins: make(map[string]bool), created: opts.Now().Unix(),
		hosts: newHostGuard(opts.Key != "", opts.BindHost, opts.AllowedHosts)}
	s.budget.limit = int64(opts.BodyMemory)
	if opts.Key != "" {
		s.authHdr = []byte("Bearer " + opts.Key)
	}
	for _, o := range opts.CORSOrigins {
		s.origins[strings.TrimRight(o, "/")] = true
	}

	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.SaveMatchedRoutePath = opts.Metrics != nil
	r.HandleOPTIONS = false // preflights are answered before routing
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		writeError(ctx, hermes.Errorf(hermes.ENotFound, "Unknown route %s %s", ctx.Method(), ctx.Path()))
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		writeError(ctx, hermes.Errorf(hermes.EMethodNotAllowed, "Method %s is not allowed on %s", ctx.Method(), ctx.Path()))
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, p any) {
		s.log.Error("handler panic", "path", string(ctx.Path()), "panic", p)
		writeError(ctx, hermes.Errorf(hermes.EInternal, "internal error"))
	}
	r.GET("/health", s.health)
	r.GET("/v1/health", s.health)
	r.GET("/v1/models", s.models)
	r.GET("/v1/models/{id}", s.model)
	r.GET("/v1/tools", s.tools)
	r.POST("/v1/chat/completions", s.idempotent("chat", s.chatCompletions))
	if opts.Metrics != nil {
		r.GET("/metrics", opts.Metrics.handler)
	}
	s.responseRoutes(r)
	s.fileRoutes(r)

	s.router = r
	s.srv = &fasthttp.Server{
		Handler:            s.middleware(r.Handler),
		Name:               "hermesd",
		ReadTimeout:        opts.ReadTimeout,
		WriteTimeout:       opts.WriteTimeout,
		IdleTimeout:        opts.IdleTimeout,
		MaxRequestBodySize: opts.MaxBodyBytes,
		// Bodies are read by the middleware, after admission: see admit.go.
		StreamRequestBody: true,
		HeaderReceived:    s.headerReceived,
		ExpectHandler:     s.expect,
		ErrorHandler:      s.transportError,
		Concurrency:       opts.MaxConns,
		MaxConnsPerIP:     opts.MaxConnsPerIP,
		// Go's default header limits are fine; fasthttp's 4 KiB read
		// buffer is too small for browsers with many cookies.
		ReadBufferSize:               16 << 10,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		MaxIdleWorkerDuration:        opts.WorkerIdle,
		Logger:                       fasthttpLogger{s.log},
	}
	return s
}

// Serve serves HTTP on ln until Shutdown. Accept errors that pass (out of
// file descriptors) are retried; any other ends Serve, and the caller must
// treat that as fatal.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(newRetryListener(ln, s.log)) }

// Shutdown stops accepting connections and waits for open requests,
// streams and WebSocket responses included, to finish. Streams end when their turns do, so call it
// alongside the runtime's drain.
func (s *Server) Shutdown() error {
	done := make(chan struct{})
	go func() { s.sockets.shutdown(); close(done) }()
	err := s.srv.Shutdown()
	<-done
	return err
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", strings.TrimSpace(format), "args", args)
}

// transportError answers errors fasthttp meets before a handler runs,
// with the headers every other answer carries (fasthttp closes the
// connection after it).
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	start := time.Now()
	rid := s.commonHeaders(ctx)
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		writeError(ctx, hermes.Errorf(hermes.ERequestTimeout, "The request was not received in time"))
		return // not logged: mostly connections opened and never used (browsers preconnect)
	case errors.As(err, &small):
		writeError(ctx, hermes.Errorf(hermes.EHeaderTooLarge, "Request headers exceed %d bytes", s.srv.ReadBufferSize))
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, hermes.Errorf(hermes.ETooLarge, "Request body exceeds the limit of %d bytes", s.opts.MaxBodyBytes))
	default:
		writeError(ctx, hermes.Errorf(hermes.EInvalid, "Malformed HTTP request"))
	}
	s.logRequest(ctx, rid, start)
}

// commonHeaders sets what every answer carries, whichever layer writes it:
// security headers, the request id and, for an allowed Origin, the CORS
// headers (without them a browser page reads any error as "Failed to
// fetch"). It returns the request id.
func (s *Server) commonHeaders(ctx *fasthttp.RequestCtx) string {
	h := &ctx.Response.Header
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	rid := requestID(ctx)
	h.Set("X-Request-Id", rid)
	if origin := ctx.Request.Header.Peek("Origin"); len(origin) > 0 && s.origins[string(origin)] {
		h.SetBytesV("Access-Control-Allow-Origin", origin)
		h.Set("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	}
	return rid
}

// middleware wraps every route: security headers, request id, CORS,
// admission (origin, key, path, body size), reading the body within the
// memory budget, one log line per request.
func (s *Server) middleware(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		rid := s.commonHeaders(ctx)
		ctx.SetUserValue(ridKey, rid)
		s.serve(ctx, next)
		l := s.requestLine(ctx, rid, start)
		if b, ok := ctx.Response.BodyStream().(*sseBody); ok {
			// A stream is logged when its body ends, off the path of its
			// first token and with the duration of the whole stream.
			b.logLine = &l
			return
		}
		l.log()
	}
}

// requestLine is one request's log line and metrics, taken from the
// request before its ctx may be recycled.
type requestLine struct {
	s                       *Server
	id, method, path, route string
	status                  int
	start                   time.Time
}

func (s *Server) requestLine(ctx *fasthttp.RequestCtx, rid string, start time.Time) requestLine {
	return requestLine{s: s, id: rid, method: string(ctx.Method()), path: string(ctx.Path()),
		route: routeLabel(ctx), status: ctx.Response.StatusCode(), start: start}
}

// logRequest logs an answered request at once.
func (s *Server) logRequest(ctx *fasthttp.RequestCtx, rid string, start time.Time) {
	l := s.requestLine(ctx, rid, start)
	l.log()
}

func (l *requestLine) log() {
	d := time.Since(l.start)
	if m := l.s.opts.Metrics; m != nil {
		m.observe(l.route, l.status, d)
	}
	if h, bg := l.s.log.Handler(), context.Background(); h.Enabled(bg, slog.LevelInfo) {
		// The record goes to the handler itself: Logger.LogAttrs would
		// first walk the stack for the caller's PC (runtime.Callers, a
		// sixth of the line's cost), which this line never shows.
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
		r.AddAttrs(slog.String("id", l.id), slog.String("method", l.method),
			slog.String("path", l.path), slog.Int("status", l.status),
			slog.Float64("dur_ms", float64(d.Microseconds())/1000))
		_ = h.Handle(bg, r)
	}
}

func (s *Server) serve(ctx *fasthttp.RequestCtx, next fasthttp.RequestHandler) {
	if e := s.admit(&ctx.Request.Header, ctx.Request.URI().PathOriginal()); e != nil {
		s.refuse(ctx, e)
		return
	}
	if ctx.IsOptions() {
		h := &ctx.Response.Header
		if len(ctx.Request.Header.Peek("Origin")) > 0 {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
		} else {
			h.Set("Allow", "GET, POST, DELETE, OPTIONS")
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		if hasBody(&ctx.Request.Header) {
			ctx.SetConnectionClose()
		}
		return
	}
	if hasBody(&ctx.Request.Header) {
		if h, _ := s.router.Lookup(string(ctx.Method()), string(ctx.Request.URI().PathOriginal()), ctx); h == nil {
			// No route takes this body: the router answers 404 or 405
			// without it being read.
			ctx.SetConnectionClose()
			next(ctx)
			return
		}
	}
	if s.isUpload(&ctx.Request.Header, ctx.Request.URI().PathOriginal()) {
		next(ctx) // the handler streams the body to the file store
		return
	}
	reserved, e := s.readBody(ctx)
	if e != nil {
		s.refuse(ctx, e)
		return
	}
	defer s.budget.release(reserved)
	next(ctx)
}

// refuse answers e before the body was read; the connection closes, since
// what is left of the body on the wire must not be read as the next request.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, e *hermes.Error) {
	writeError(ctx, e)
	if hasBody(&ctx.Request.Header) {
		ctx.SetConnectionClose()
	}
}

// corsExposeHeaders are the response headers page scripts may read.
const corsExposeHeaders = "X-Request-Id, Retry-After, Idempotent-Replayed, X-Hermes-Model"

const corsAllowHeaders = "Authorization, Content-Type, Idempotency-Key, X-Hermes-Progress, OpenAI-Organization, OpenAI-Project, " +
	"X-Stainless-Lang, X-Stainless-Package-Version, X-Stainless-OS, X-Stainless-Arch, X-Stainless-Runtime, " +
	"X-Stainless-Runtime-Version, X-Stainless-Retry-Count, X-Stainless-Timeout, X-Stainless-Helper-Method"

type ctxKey int

const ridKey ctxKey = iota

// requestID keeps a sane incoming X-Request-Id (so a proxy's id follows the
// request) or makes one.
func requestID(ctx *fasthttp.RequestCtx) string {
	if in := ctx.Request.Header.Peek("X-Request-Id"); len(in) > 0 && len(in) <= 64 && saneID(in) {
		return string(in)
	}
	return NewID("req_")
}

func saneID(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// NewID returns prefix, the time (Unix milliseconds, 12 hex digits), then
// 24 random hex digits. The random part (96 bits) keeps ids unguessable as
// before; the time in front makes later ids sort after earlier ones, as
// OpenAI's do. The store keys its trees by response id, so ordered ids
// are appended at the end of each tree and a grouped commit rewrites a
// few pages, where uniformly random ids dirtied a page per key
// (persistence BenchmarkChains200: 9.9 pages written per response with
// random ids, 1.4 with ordered ones, at a quarter of the CPU).
func NewID(prefix string) string { return newID(prefix, time.Now()) }

func newID(prefix string, now time.Time) string {
	var buf [64]byte
	b := append(buf[:0], prefix...)
	ms := uint64(max(now.UnixMilli(), 0))
	for shift := 44; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[ms>>shift&0xf])
	}
	for i := 0; i < 3; i++ {
		v := rand.Uint32()
		for j := 0; j < 8; j++ {
			b = append(b, hexDigits[v&0xf])
			v >>= 4
		}
	}
	return string(b)
}

// principal names who is calling, for scoping idempotency keys: a hash of
// the bearer token, never the token itself.
func principal(ctx *fasthttp.RequestCtx) string {
	auth := ctx.Request.Header.Peek("Authorization")
	if len(auth) == 0 {
		return "anonymous"
	}
	sum := sha256.Sum256(auth)
	return hex.EncodeToString(sum[:8])
}

func (s *Server) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if s.opts.Database == nil && s.opts.Node == "" {
		ctx.SetBodyString(`{"status":"ok","platform":"hermes-agent"}`)
		return
	}
	status := "ok"
	if s.opts.Database != nil && !s.opts.Database() {
		status = "degraded"
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	b := append([]byte(`{"status":"`), status...)
	b = append(b, `","platform":"hermes-agent"`...)
	if s.opts.Node != "" {
		b = append(b, `,"node":`...)
		b = appendString(b, s.opts.Node)
	}
	if s.opts.Database != nil {
		b = append(b, `,"database":"`...)
		b = append(b, status...)
		b = append(b, '"')
	}
	ctx.Response.SetBodyRaw(append(b, '}'))
}

// Tool is one agent tool GET /v1/tools lists: its name and the server
// that runs it (hermes.AgentServer for the built-in ones, the MCP server's
// name for its tools).
type Tool struct{ Name, Server string }

func (s *Server) tools(ctx *fasthttp.RequestCtx) {
	b := append([]byte(nil), `{"object":"list","data":[`...)
	var tools []Tool
	if s.opts.Tools != nil {
		tools = s.opts.Tools()
	}
	for i, t := range tools {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, t.Name)
		b = append(b, `,"type":"function","server":`...)
		b = appendString(b, t.Server)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	ctx.SetContentType("application/json")
	ctx.Response.SetBodyRaw(b)
}
