// Command hermesd serves the hermes agent over an OpenAI-compatible HTTP
// API. It wires config, the store, the tools, the actor runtime and the
// HTTP front end, and shuts them down in order on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/actors"
	"github.com/hermesd/hermesd/config"
	"github.com/hermesd/hermesd/httpfront"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/persistence/postgres"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/files"
	"github.com/hermesd/hermesd/tooling/llm"
	"github.com/hermesd/hermesd/tooling/mcp"
	"github.com/hermesd/hermesd/tooling/memory"
	"github.com/hermesd/hermesd/tooling/redact"
	"github.com/hermesd/hermesd/tooling/skills"
	"github.com/hermesd/hermesd/tooling/terminal"
	"github.com/hermesd/hermesd/tooling/todo"
	"github.com/hermesd/hermesd/tooling/web"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check-config" {
		os.Exit(checkConfig(os.Args[2:], os.LookupEnv, os.Stdout, os.Stderr))
	}
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:], os.LookupEnv); err != nil {
		if errors.Is(err, config.ErrHelp) {
			config.Usage(os.Stdout)
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "hermesd:", err)
		os.Exit(2)
	}
	if err := m.Config.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "hermesd:", err)
		os.Exit(2)
	}
	if err := terminal.Harden(); err != nil {
		fmt.Fprintln(os.Stderr, "hermesd:", err)
		os.Exit(1)
	}
	// Signals are caught before Run starts serving: a supervisor may send
	// SIGTERM as soon as /health answers, and the default action would kill
	// hermesd without its graceful shutdown. Signals that arrive during
	// start are acted on once Run returns.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		m.logOut.Close()
		fmt.Fprintln(os.Stderr, "hermesd:", err)
		var ce *configError
		if errors.As(err, &ce) {
			os.Exit(2)
		}
		os.Exit(1)
	}
	go func() {
		for range hup {
			_ = m.Reload() // Reload logs what it did or refused
		}
	}()
	code := 0
	select {
	case s := <-sig:
		m.Logger.Info("shutting down", "signal", s.String(), "grace", m.Config.ShutdownGrace.String())
	case err := <-m.served:
		// Serving stopped although nobody asked: hermesd would live on deaf.
		// Exit non-zero so a supervisor restarts it.
		m.Logger.Error("HTTP server stopped serving; exiting", "err", err)
		code = 1
	}
	go func() {
		<-sig // a second signal: the operator wants out now; bbolt stays consistent
		m.Logger.Warn("second signal: exiting immediately")
		m.logOut.Close()
		os.Exit(1)
	}()
	grace, cancel := context.WithTimeout(ctx, m.Config.ShutdownGrace)
	err := m.Close(grace)
	cancel()
	if err != nil {
		os.Exit(1) // Close has logged what it abandoned
	}
	os.Exit(code)
}

// Main is a whole hermesd: end-to-end tests start it the way main does.
type Main struct {
	Config *config.Config
	Logger *slog.Logger
	// Listener, when set before Run, is served instead of binding
	// Config.Addr() (tests bind 127.0.0.1:0).
	Listener net.Listener
	// Model, when set before Run, replaces the configured model.
	Model llm.Model
	// Environ is the process environment (NAME=value), read by NewMain:
	// the values of its secret-looking variables are masked in every tool
	// result, since nothing below cmd reads the environment.
	Environ []string
	// MCPServers are the MCP servers whose tools the agent uses, by name;
	// unset, config.yaml's mcp_servers.
	MCPServers map[string]mcp.Server

	logOut  *bufferedLog // nil when the caller set Logger itself
	store   responseStore
	files   fileStore
	runtime *actors.Runtime
	term    *terminal.Tool // stopped at Close: its background commands
	mcp     *mcp.Manager   // closed at Close: its stdio servers
	mcpMu   sync.Mutex     // orders updates of a registry's MCP tools and reloads
	// mcpFromConfig says MCPServers came from config.yaml, so a reload
	// applies the file's mcp_servers (a caller's own are left alone).
	mcpFromConfig bool
	// draining are the setups reloads replaced whose turns may still run.
	draining []*setup
	http     *httpfront.Server
	served   chan error
	// discovery bounds the context-window discoveries still running;
	// stopDiscovery ends them.
	discovery     context.Context
	stopDiscovery context.CancelFunc
	// current is what new turns run with; a reload (SIGHUP) swaps it.
	current atomic.Pointer[setup]
	// args and lookup are what ParseFlags loaded the configuration from,
	// loaded again by Reload.
	args   []string
	lookup func(string) (string, bool)
	tools  []tooling.Tool // the built-in tools, made once
	memory *memory.Tool
	obs    *observers
	// node is what /health and the logs call this node (HERMES_NODE_ID,
	// else the host name); cluster is its part in a cluster (cluster
	// mode), nil on bbolt.
	node    string
	cluster *postgres.Cluster
}

// responseStore is the store hermesd runs on: the bbolt file in
// HERMES_HOME, or PostgreSQL (cluster mode, HERMES_DATABASE_URL).
type responseStore interface {
	actors.Store
	Close() error
}

// fileStore keeps the Files API's files: a directory in HERMES_HOME, or
// the database in cluster mode, where every node must see every file.
type fileStore interface {
	httpfront.FileStore
	ReadFile(id string, limit int64) (*hermes.File, []byte, error)
	Close() error
}

// configError is a refusal to start because of a setting, such as a
// database that cannot be used: main exits 2 for it, as for a setting that
// does not validate.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// NewMain returns a Main with default configuration.
func NewMain() *Main {
	c := config.Defaults()
	return &Main{Config: &c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Environ: os.Environ()}
}

// ParseFlags loads the configuration from args and the environment
// (lookup, as os.LookupEnv). It returns config.ErrHelp when args ask for
// help.
func (m *Main) ParseFlags(args []string, lookup func(string) (string, bool)) error {
	c, err := config.Load(args, lookup)
	if err != nil {
		return err
	}
	m.Config = c
	m.args, m.lookup = args, lookup
	m.logOut = newBufferedLog(os.Stderr)
	m.Logger = newLogger(c.LogFormat, c.LogLevel, m.logOut)
	return nil
}

// checkConfig is `hermesd check-config`: it prints the effective
// configuration with each value's origin and secrets masked, and returns
// the exit code: 0, or 2 with the reasons hermesd would refuse to start.
// It does not bind, so it can check a running server's file.
func checkConfig(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	c, err := config.Load(args, lookup)
	if errors.Is(err, config.ErrHelp) {
		config.Usage(stdout)
		return 0
	}
	if err == nil {
		err = c.Check()
	}
	if err != nil {
		fmt.Fprintln(stderr, "hermesd:", err)
		return 2
	}
	c.Describe(stdout)
	return 0
}

func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run opens the store, builds the agent and starts serving. It returns once
// the server is listening.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if err := os.MkdirAll(c.Home, 0o700); err != nil {
		return fmt.Errorf("creating HERMES_HOME: %w", err)
	}
	// An existing HERMES_HOME keeps whatever mode it was made with; its
	// .env, store and memories are for this user alone.
	if err := os.Chmod(c.Home, 0o700); err != nil {
		return fmt.Errorf("HERMES_HOME: %w", err)
	}
	if err := m.openStores(ctx); err != nil {
		return err
	}
	store := m.store
	// The runtime the cluster's notifications act on, once it exists.
	var rt atomic.Pointer[actors.Runtime]
	var cluster actors.Cluster // an interface holding a nil *Cluster would not be nil
	sealKey, err := llm.LoadKey(filepath.Join(c.Home, "compaction.key"))
	if err != nil {
		return fmt.Errorf("compaction key: %w", err)
	}
	if pg, ok := store.(*postgres.Store); ok {
		m.node = nodeID(c.NodeID)
		if m.cluster, err = m.joinCluster(ctx, pg, &rt); err != nil {
			return &configError{msg: "HERMES_DATABASE_URL: " + hermes.AsError(err).Message}
		}
		cluster = m.cluster
		// What one node seals, every node must open.
		if sealKey, err = pg.SharedKey(ctx, "compaction", sealKey); err != nil {
			return fmt.Errorf("compaction key: %w", err)
		}
	}
	sealer, err := llm.NewSealer(sealKey)
	if err != nil {
		return fmt.Errorf("compaction key: %w", err)
	}

	m.discovery, m.stopDiscovery = context.WithCancel(context.Background())
	mem := memory.New(c.Home)
	m.term = terminal.New(terminal.Options{Workspace: c.Workspace, Approve: c.TerminalAppr, Environ: m.Environ, PassEnv: c.TerminalEnv, Landlock: c.TerminalLock})
	all := []tooling.Tool{
		m.term,
		mem,
		todo.New(),
	}
	all = append(all, files.New(files.Options{
		Workspace: c.Workspace, Private: []string{c.Home}, AllowHardlinks: c.FilesHardlinks,
	})...)
	all = append(all, skills.New(c.Home)...)
	all = append(all, web.New(web.Options{
		Backend: c.WebBackend, SearXNGURL: c.SearXNGURL,
		BraveAPIKey: c.BraveAPIKey, BraveBaseURL: c.BraveBaseURL,
		TavilyAPIKey: c.TavilyAPIKey, TavilyBaseURL: c.TavilyBaseURL,
		DuckDuckGoBaseURL: c.DuckDuckGoURL, AllowPrivate: c.WebAllowPriv,
	})...)
	m.tools, m.memory = all, mem
	if m.MCPServers == nil {
		m.MCPServers, m.mcpFromConfig = mcpServers(c.MCPServers), true
	}
	metrics := httpfront.NewMetrics()
	obs := newObservers(metrics.Registry)
	m.obs = obs
	if err := m.startMCP(); err != nil {
		return err
	}
	first := m.newSetup(c)
	m.current.Store(first)
	route, _ := first.router.Resolve("")
	m.runtime = actors.New(actors.Options{
		Agent: &actors.Agent{
			Model: first.router.Model(route), Tools: first.registry, MaxIterations: c.MaxIterations,
			Prompt: first.prompt, UpstreamModel: route.Upstream, Setup: m.turnSetup,
			OnModelCall: obs.modelCall, MaxParallelTools: c.MaxParallel,
			OnTool: func(name string, failed bool, d time.Duration) {
				// The label set stays the tools that exist: a model inventing
				// names (or an MCP list come and gone) adds no series.
				if _, ok := m.current.Load().registry.Get(name); !ok {
					name = "unknown"
				}
				obs.tool(name, failed, d)
			},
			Window: route.Window, CompactAt: c.CompactThreshold, Estimator: &llm.Estimator{}, Seal: sealer.Seal,
			Remote: m.remoteMCP,
		},
		OpenCompaction: sealer.Open,
		Attach:         m.attachments(),
		SealReasoning:  sealer.SealReasoning,
		OpenReasoning:  sealer.OpenReasoning,
		OnBatch:        obs.batch,
		Cluster:        cluster,
		Store:          store,
		MaxTurns:       c.MaxTurns,
		MaxQueued:      c.MaxQueued,
		TurnTimeout:    c.TurnTimeout,
		IdleActor:      c.IdleActor,
		WorkerIdle:     c.WorkerIdle,
		Logger:         m.Logger,
	})
	rt.Store(m.runtime)
	obs.gauges(m.runtime, store)
	if m.cluster != nil {
		obs.clusterMetrics(m.cluster)
	}
	// Background responses the previous process left unfinished: nothing
	// runs them now, so their pollers are told, rather than left waiting.
	// Not in cluster mode: there another node may be running them.
	if c.DatabaseURL != "" {
		m.Logger.Info("cluster mode: response store on PostgreSQL", "database", config.MaskDatabaseURL(c.DatabaseURL))
	} else if n, err := m.runtime.FailUnfinished(); err != nil {
		m.Logger.Error("marking unfinished background responses failed", "err", err)
	} else if n > 0 {
		m.Logger.Warn("background responses left unfinished by the previous process marked failed", "count", n, "code", hermes.ERestarted)
	}
	m.http = httpfront.New(httpfront.Options{
		Runtime:            m.runtime,
		Key:                c.Key,
		CORSOrigins:        c.CORSOrigins,
		BindHost:           c.Host,
		AllowedHosts:       c.AllowedHosts,
		ModelName:          c.ModelName,
		Models:             modelsView{m},
		HoldAnswer:         !c.Streaming,
		ToolProgress:       c.ToolProgress,
		AgentToolItems:     c.AgentToolItems,
		ChatOverflow:       c.ChatOverflow,
		MaxBodyBytes:       c.MaxBodyBytes,
		BodyMemory:         c.BodyMemory,
		MaxConns:           capConnections(c.MaxConns, m.Logger),
		MaxConnsPerIP:      c.MaxConnsPerIP,
		StreamWriteTimeout: c.StreamDeadline,
		KeepAlive:          c.KeepAlive,
		WorkerIdle:         c.WorkerIdle,
		Tools:              func() []httpfront.Tool { return toolList(m.current.Load().registry) },
		Logger:             m.Logger,
		Node:               m.node,
		Database:           m.databaseUp(),
		Metrics:            metrics,
		Files:              m.files,
		MaxUploadBytes:     c.MaxUploadBytes,
	})

	ln := m.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", c.Addr()); err != nil {
			return fmt.Errorf("listen %s: %w", c.Addr(), err)
		}
		m.Listener = ln
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.http.Serve(ln) }()
	m.Logger.Info("hermesd listening", "addr", "http://"+ln.Addr().String()+"/v1", "models", first.describe(),
		"config", c.File, "home", c.Home, "workspace", c.Workspace, "tools", len(first.registry.Names()))
	return nil
}

// openStores opens the response store and the file store: PostgreSQL
// when HERMES_DATABASE_URL is set, else the bbolt file and the files
// directory in HERMES_HOME. A database that cannot be reached, or whose
// schema is newer than this hermesd's, is a configError of one line.
func (m *Main) openStores(ctx context.Context) error {
	c := m.Config
	opts := persistence.Options{Capacity: c.MaxStored, MaxConversations: c.MaxConvs,
		MaxPendingBytes: c.MaxPending, MaxIdempotencyEntries: c.IdemMaxEntries, MaxIdempotencyBytes: c.IdemMaxBytes}
	fopts := persistence.FilesOptions{MaxBytes: int64(c.MaxFileBytes)}
	if c.DatabaseURL != "" {
		pg, err := postgres.Open(ctx, c.DatabaseURL, opts)
		if err != nil {
			msg := err.Error()
			var he *hermes.Error
			if errors.As(err, &he) {
				msg = he.Message // the cause is in it already, without the code
			}
			return &configError{msg: "HERMES_DATABASE_URL: " + msg}
		}
		m.store = pg
		files, err := pg.Files(fopts)
		if err != nil {
			return fmt.Errorf("file store: %w", err)
		}
		m.files = files
		return nil
	}
	store, err := persistence.Open(c.DBPath(), opts)
	if err != nil {
		return err
	}
	m.store = store
	// Assigned only when opened: a nil *Files in the interface would not
	// compare equal to nil at Close.
	files, err := persistence.OpenFiles(c.FilesDir(), fopts)
	if err != nil {
		return fmt.Errorf("file store: %w", err)
	}
	m.files = files
	return nil
}

// attachments is how files sent in messages are read: uploaded files from
// the file store, file_url through the web tools' SSRF guard, and with
// HERMES_UPLOADS=workspace a copy under uploads/ in the workspace, written
// through the file tools' jail.
func (m *Main) attachments() *actors.Attachments {
	c := m.Config
	a := &actors.Attachments{
		Files: m.files,
		Fetch: web.NewFetcher(web.Options{AllowPrivate: c.WebAllowPriv}).Fetch,
	}
	if c.Uploads == "workspace" {
		a.Save = files.Options{Workspace: c.Workspace, Private: []string{c.Home}, AllowHardlinks: c.FilesHardlinks}.Jail().SaveUpload
	}
	return a
}

// startMCP connects to the MCP servers (their first attempts in parallel;
// a failing one keeps being retried) and keeps their tools in the current
// setup's registry, masked like the built-in ones, as their lists change.
// A manager is started even with no server, so a reload can add some.
func (m *Main) startMCP() error {
	mgr, err := mcp.Start(mcp.Options{
		Servers: m.MCPServers, Environ: m.Environ, Logger: m.Logger,
		OnChange: func() {
			// Under the lock, so a reload swapping the setup is not
			// overtaken: a change lands in the setup new turns use, never
			// in one a reload just left to its running turns.
			m.mcpMu.Lock()
			defer m.mcpMu.Unlock()
			if s := m.current.Load(); s != nil {
				m.addMCPTools(s)
			}
		},
	})
	if err != nil {
		return err
	}
	m.mcp = mgr
	if len(m.MCPServers) > 0 {
		m.Logger.Info("MCP servers", "servers", len(m.MCPServers), "tools", len(mgr.Tools()))
	}
	return nil
}

// addMCPTools puts the MCP servers' tools, as they are now, in s's
// registry. Callers hold mcpMu, or own s alone.
func (m *Main) addMCPTools(s *setup) {
	for _, name := range s.registry.SetDynamic(tooling.Masked(m.mcp.Tools(), s.mask)) {
		m.Logger.Error("MCP tool refused: a built-in tool has its name", "tool", name)
	}
}

// remoteMCP connects to a request's MCP server for one turn. Unless
// HERMES_MCP_ALLOW_PRIVATE, it goes through the web tools' SSRF guard: the
// URL is the client's choice (or a prompt's it relays), and must not reach
// what hermesd's own network can. Redirects are refused, so the request's
// headers go nowhere else. Results are masked with the request's header
// values besides the server's own secrets.
func (m *Main) remoteMCP(ctx context.Context, s hermes.RemoteMCP) (actors.RemoteServer, error) {
	cur := m.current.Load()
	cfg := mcp.Server{URL: s.URL, Headers: s.Headers, NoRedirects: true}
	var refused atomic.Bool
	if !cur.allowPrivateMCP {
		dial := web.GuardedDial()
		cfg.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			conn, err := dial(ctx, network, address)
			if web.IsRefused(err) {
				refused.Store(true)
			}
			return conn, err
		}
	}
	known := redact.NewKnown(headerSecrets("tools.mcp."+s.Label, s.Headers))
	mask := func(v string) string { return cur.mask(known.String(v)) }
	r, err := mcp.Dial(ctx, mcp.RemoteOptions{Label: s.Label, Server: cfg, Allowed: s.Allowed, Logger: m.Logger})
	switch {
	case err == nil:
	case refused.Load():
		return nil, hermes.InvalidParam("tools", "the server_url of MCP server '%s' was refused: its host resolves to a private, loopback, "+
			"link-local or reserved address, or one of this machine's own (set HERMES_MCP_ALLOW_PRIVATE=true to allow)", s.Label)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		return nil, &hermes.Error{Code: hermes.EUpstream,
			Message: fmt.Sprintf("MCP server '%s' could not be reached or did not list its tools: %s", s.Label, mask(tooling.CutBytes(err.Error(), 500)))}
	}
	return remoteServer{Remote: r, tools: tooling.Masked(r.Tools(), mask)}, nil
}

// remoteServer is a request's MCP server with its tools masked.
type remoteServer struct {
	*mcp.Remote
	tools []tooling.Tool
}

func (r remoteServer) Tools() []tooling.Tool { return r.tools }

// headerSecrets are the values of headers sent to an MCP server, as
// secrets to mask: each value, and the token of "Bearer TOKEN".
func headerSecrets(where string, headers map[string]string) []redact.Secret {
	var out []redact.Secret
	for h, v := range headers {
		what := where + ".headers." + h
		out = append(out, redact.Secret{Name: what, Value: v})
		if f := strings.Fields(v); len(f) > 1 {
			out = append(out, redact.Secret{Name: what, Value: f[len(f)-1]})
		}
	}
	return out
}

// mcpServers converts config.yaml's servers into tooling/mcp's settings
// (tooling does not import config).
func mcpServers(in map[string]config.MCPServer) map[string]mcp.Server {
	out := make(map[string]mcp.Server, len(in))
	for name, s := range in {
		out[name] = mcp.Server{
			Command: s.Command, Args: s.Args, Env: s.Env, Cwd: s.Cwd, URL: s.URL, Headers: s.Headers,
			Timeout: s.Timeout, ConnectTimeout: s.ConnectTimeout,
		}
	}
	return out
}

// toolList is GET /v1/tools: every enabled tool and who runs it.
func toolList(r *tooling.Registry) []httpfront.Tool {
	names := r.Names()
	out := make([]httpfront.Tool, len(names))
	for i, n := range names {
		out[i] = httpfront.Tool{Name: n, Server: r.Server(n)}
	}
	return out
}

// knownSecrets lists every secret hermesd knows, for masking in tool
// results: its own keys, the passwords of URLs in its settings, and the
// secret-looking variables of its environment (which commands inherit).
func (m *Main) knownSecrets(c *config.Config) []redact.Secret {
	secrets := []redact.Secret{
		{Name: "API_SERVER_KEY", Value: c.Key},
		{Name: "OPENAI_API_KEY", Value: c.APIKey},
		{Name: "BRAVE_API_KEY", Value: c.BraveAPIKey},
		{Name: "TAVILY_API_KEY", Value: c.TavilyAPIKey},
	}
	secrets = append(secrets, redact.EnvSecrets([]string{
		"OPENAI_BASE_URL=" + c.BaseURL, "SEARXNG_URL=" + c.SearXNGURL,
		"BRAVE_BASE_URL=" + c.BraveBaseURL, "TAVILY_BASE_URL=" + c.TavilyBaseURL,
		"DUCKDUCKGO_BASE_URL=" + c.DuckDuckGoURL,
	})...)
	// config.yaml's models: their keys and URL passwords.
	for _, md := range c.Models {
		secrets = append(secrets, redact.Secret{Name: "models." + md.ID + ".api_key", Value: md.APIKey})
		secrets = append(secrets, redact.EnvSecrets([]string{"MODEL_BASE_URL=" + md.BaseURL})...)
	}
	secrets = append(secrets, redact.EnvSecrets(m.Environ)...)
	// What an MCP server was given to authenticate: its headers (the
	// token of "Bearer TOKEN" too) and its secret-looking variables.
	for name, s := range m.MCPServers {
		secrets = append(secrets, headerSecrets("mcp_servers."+name, s.Headers)...)
		env := make([]string, 0, len(s.Env))
		for k, v := range s.Env {
			env = append(env, k+"="+v)
		}
		secrets = append(secrets, redact.EnvSecrets(env)...)
	}
	return secrets
}

// URL is the base URL clients use, e.g. http://127.0.0.1:8642/v1.
func (m *Main) URL() string { return "http://" + m.Listener.Addr().String() + "/v1" }

// Close shuts down in DESIGN.md's order, bounded as a whole by ctx (the
// grace period): HTTP stops accepting, running turns drain (cancelled
// shortly before ctx ends) while HTTP finishes their answers, then the
// store writer stops and the store closes. A step still unfinished when ctx
// ends is abandoned, not waited for; the error names everything that was
// cut short or abandoned, and is logged at error.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.stopDiscovery != nil {
		m.stopDiscovery()
	}
	// Turns and HTTP get the grace period but its last tenth (at most 2s),
	// which is kept for the writer and the store, so a turn that never
	// ends does not also leave the store unflushed.
	drainCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		drainCtx, cancel = context.WithDeadline(ctx, dl.Add(-min(time.Until(dl)/10, 2*time.Second)))
		defer cancel()
	}
	httpDone := make(<-chan error)
	if m.http != nil {
		httpDone = async(m.http.Shutdown)
	}
	if m.runtime != nil {
		// What the drain cut short is reported by Shutdown below.
		_ = m.runtime.Drain(drainCtx)
	}
	if m.http != nil {
		// Streams end with their turns; connections still open now belong
		// to clients that stopped reading, whose writes time out on
		// their own.
		errs = append(errs, await(drainCtx, "http: closing connections", httpDone))
	}
	if m.runtime != nil {
		if err := m.runtime.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("runtime: %w", err))
		}
	}
	if m.term != nil {
		errs = append(errs, await(ctx, "terminal: stopping background commands", async(m.term.Close)))
	}
	if m.mcp != nil {
		errs = append(errs, await(ctx, "mcp: stopping servers", async(m.mcp.Close)))
	}
	if m.cluster != nil {
		// After the runtime: its last turns release their leases first.
		// Leases still held expire on their own.
		m.cluster.Close()
	}
	if m.store != nil {
		// A close still waiting at the end waits for a write stuck in the
		// store; bbolt's file stays consistent without it.
		errs = append(errs, await(ctx, "store: closing", async(m.store.Close)))
	}
	if m.files != nil {
		errs = append(errs, m.files.Close())
	}
	err := errors.Join(errs...)
	if err != nil {
		m.Logger.Error("shutdown incomplete", "abandoned", err.Error())
	}
	m.Logger.Info("stopped")
	if m.logOut != nil {
		m.logOut.Close()
	}
	return err
}

// async runs f on a goroutine of its own and delivers its answer.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// await waits for a shutdown step's answer until ctx ends; a step still
// running then is abandoned and named.
func await(ctx context.Context, step string, ch <-chan error) error {
	select {
	case err := <-ch:
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: still running at the end of the grace period", step)
	}
}
