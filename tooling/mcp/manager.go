package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// Server is one MCP server's settings: a stdio server (Command) or a remote
// one (URL), never both.
type Server struct {
	Command string
	Args    []string
	Env     map[string]string // added to the safe part of Options.Environ
	Cwd     string
	URL     string
	Headers map[string]string
	// Timeout bounds one tool call (default 120 s), ConnectTimeout one
	// connection attempt: starting, initialize and listing tools (default
	// 30 s).
	Timeout        time.Duration
	ConnectTimeout time.Duration
	// Dial, when set, makes every connection to a remote server (no proxy):
	// an SSRF guard for URLs a client chose.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// NoRedirects refuses redirects: the headers would follow them to
	// wherever the server points.
	NoRedirects bool
}

const (
	defaultTimeout        = 120 * time.Second
	defaultConnectTimeout = 30 * time.Second
	// maxMessage bounds one message from a server (a stdio line, an HTTP
	// body, an SSE event): a server answering with gigabytes would
	// otherwise be read into memory whole.
	maxMessage = 16 << 20
)

// Options configures a Manager.
type Options struct {
	Servers map[string]Server
	// Environ is hermesd's environment; stdio servers get only its safe
	// variables (PATH, HOME, locale…) plus their own Env, so API keys meant
	// for hermesd do not reach third-party servers unless configured.
	Environ []string
	Logger  *slog.Logger
	// OnChange is called (from any goroutine) after the set of tools
	// changed: a server connected or its list changed.
	OnChange func()
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts to a failing server (default 1 s and 60 s).
	MinBackoff, MaxBackoff time.Duration
}

// Manager keeps the connections to the configured MCP servers and the tools
// they offer.
type Manager struct {
	opts   Options
	ctx    context.Context // the servers' connections live on it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex        // guards servers, owners and tools
	servers []*server         // sorted by name
	owners  map[string]string // tool name → the server that claimed it first
	tools   []tooling.Tool
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// ToolName is the name a server's tool is offered to the model under:
// mcp_<server>_<tool>, sanitised (hermes.MCPToolName).
func ToolName(server, tool string) string { return hermes.MCPToolName(server, tool) }

// Start validates opts, connects to every server in parallel and returns
// once each has connected or failed its first attempt (bounded by its
// ConnectTimeout). A server that failed is retried in the background with
// backoff; the others serve meanwhile.
func Start(opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(opts.MinBackoff, 60*time.Second)
	}
	m := &Manager{opts: opts, owners: make(map[string]string)}
	servers, err := m.prepare(opts.Servers)
	if err != nil {
		return nil, err
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.servers = servers
	m.connect(servers)
	return m, nil
}

// prepare checks a set of servers' settings and makes their servers,
// sorted by name, not yet connected.
func (m *Manager) prepare(settings map[string]Server) ([]*server, error) {
	var servers []*server
	byLabel := make(map[string]string)
	for name, s := range settings {
		if err := check(name, s); err != nil {
			return nil, err
		}
		label := ToolName(name, "") // the prefix of its tools' names
		if other, dup := byLabel[label]; dup {
			return nil, fmt.Errorf("mcp_servers: %q and %q both become %s… in tool names; rename one", other, name, label)
		}
		byLabel[label] = name
		servers = append(servers, &server{m: m, name: name, cfg: withDefaults(s), ready: make(chan struct{})})
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].name < servers[j].name })
	return servers, nil
}

func withDefaults(s Server) Server {
	if s.Timeout <= 0 {
		s.Timeout = defaultTimeout
	}
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = defaultConnectTimeout
	}
	return s
}

// connect starts servers, each on a context of its own, and returns once
// each has connected or failed its first attempt.
func (m *Manager) connect(servers []*server) {
	first := make(chan struct{}, len(servers))
	for _, s := range servers {
		ctx, cancel := context.WithCancel(m.ctx)
		s.stop, s.stopped = cancel, make(chan struct{})
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer close(s.stopped)
			s.run(ctx, first)
		}()
	}
	for range servers {
		<-first
	}
}

// Update changes the servers to settings, for a reload: a server whose
// settings did not change stays connected; the others leave Tools at
// once (OnChange is not called for that: the caller builds what new turns
// use from Tools). start connects the new and changed servers, which call
// OnChange as they connect; retire disconnects the servers taken out, to
// be called once no running turn can still use them. Settings that do not
// check change nothing.
func (m *Manager) Update(settings map[string]Server) (start, retire func(), err error) {
	fresh, err := m.prepare(settings)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	old := make(map[string]*server, len(m.servers))
	for _, s := range m.servers {
		old[s.name] = s
	}
	var added, next []*server
	for _, s := range fresh {
		if o, ok := old[s.name]; ok && reflect.DeepEqual(o.cfg, s.cfg) {
			next = append(next, o)
			delete(old, s.name)
			continue
		}
		added = append(added, s)
		next = append(next, s)
	}
	m.servers = next
	m.mu.Unlock()
	m.rebuild(false)
	retired := make([]*server, 0, len(old))
	for _, s := range old {
		retired = append(retired, s)
	}
	return func() { m.connect(added) }, func() {
		for _, s := range retired {
			s.stop()
			<-s.stopped
		}
	}, nil
}

// check refuses settings no connection could come of.
func check(name string, s Server) error {
	if name == "" {
		return errors.New("mcp_servers: a server needs a name")
	}
	if len(ToolName(name, "x")) > 64 {
		return fmt.Errorf("mcp_servers: the name %q is too long for tool names (mcp_<server>_<tool> must fit 64 characters)", name)
	}
	switch {
	case s.Command == "" && s.URL == "":
		return fmt.Errorf("mcp_servers.%s: set command (a stdio server) or url (a remote one)", name)
	case s.Command != "" && s.URL != "":
		return fmt.Errorf("mcp_servers.%s: set command or url, not both", name)
	case s.URL != "" && !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://"):
		return fmt.Errorf("mcp_servers.%s: url must be http:// or https://", name)
	}
	return nil
}

// Tools returns the tools the connected servers offer now, sorted by name.
func (m *Manager) Tools() []tooling.Tool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]tooling.Tool(nil), m.tools...)
}

// Close disconnects from every server and stops the stdio ones.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	return nil
}

// rebuild recomputes the offered tools from every server's current list.
// A name already claimed by another server is refused (logged), so a
// server cannot take over another's tool by naming one to collide, and
// which one wins does not depend on the order they happened to connect in
// later: the first claim stands until that server stops offering it.
func (m *Manager) rebuild(notify bool) {
	m.mu.Lock()
	claimed := make(map[string]string)
	var tools []tooling.Tool
	var refused []string
	for _, s := range m.servers {
		for _, t := range s.listed() {
			if owner, ok := m.owners[t.name]; ok && owner != s.name {
				if _, still := findTool(m.servers, owner, t.name); still {
					refused = append(refused, fmt.Sprintf("%s (from %s; %s has it)", t.name, s.name, owner))
					continue
				}
			}
			if _, dup := claimed[t.name]; dup {
				refused = append(refused, fmt.Sprintf("%s (from %s; %s has it)", t.name, s.name, claimed[t.name]))
				continue
			}
			claimed[t.name] = s.name
			tools = append(tools, t)
		}
	}
	m.owners = claimed
	sort.Slice(tools, func(i, j int) bool { return tools[i].(*tool).name < tools[j].(*tool).name })
	m.tools = tools
	m.mu.Unlock()
	for _, r := range refused {
		m.opts.Logger.Error("MCP tool refused: its name collides with another tool", "tool", r)
	}
	if notify && m.opts.OnChange != nil {
		m.opts.OnChange()
	}
}

func findTool(servers []*server, owner, name string) (*tool, bool) {
	for _, s := range servers {
		if s.name != owner {
			continue
		}
		for _, t := range s.listed() {
			if t.name == name {
				return t, true
			}
		}
	}
	return nil, false
}

// server is one configured server and its connection.
type server struct {
	m    *Manager
	name string
	cfg  Server

	// stop ends the server's connections; stopped is closed once its
	// goroutine is done (a manager's servers only).
	stop    context.CancelFunc
	stopped chan struct{}

	mu      sync.Mutex // guards session, cmd, ready, tools
	session *conn
	cmd     *exec.Cmd     // the stdio server's process
	ready   chan struct{} // closed while session is set
	tools   []*tool
	// oneShot is a request's server, connected for one turn: nothing
	// reconnects it.
	oneShot bool
}

func (s *server) listed() []*tool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tools
}

// current returns the connected session, waiting for a reconnection (a
// crashed server being restarted) until ctx ends.
func (s *server) current(ctx context.Context) (*conn, error) {
	s.mu.Lock()
	c, ready := s.session, s.ready
	s.mu.Unlock()
	if c != nil {
		select {
		case <-c.closed: // closed, and serve has not noticed yet
			s.drop(c)
			return s.current(ctx)
		default:
			return c, nil
		}
	}
	if s.oneShot {
		return nil, errors.New("the connection ended") // nothing reconnects it
	}
	select {
	case <-ready:
		return s.current(ctx)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// drop forgets sess once it is known to be closed, so later calls wait for
// the reconnection instead of failing on it.
func (s *server) drop(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session == c {
		s.session, s.ready = nil, make(chan struct{})
	}
}

// run connects, serves until the connection ends and reconnects, with
// backoff, until ctx ends. It reports on first once the first attempt is
// over.
func (s *server) run(ctx context.Context, first chan<- struct{}) {
	log := s.m.opts.Logger.With("mcp_server", s.name)
	backoff := s.m.opts.MinBackoff
	var restarted time.Time // the last immediate reconnection
	for attempt := 1; ; attempt++ {
		sess, relist, stop, err := s.connect(ctx)
		if err == nil {
			log.Info("MCP server connected", "tools", len(s.listed()))
			s.m.rebuild(true)
		}
		if first != nil {
			first <- struct{}{}
			first = nil
		}
		wait := backoff
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error("MCP server failed to connect; retrying", "attempt", attempt, "retry_in", wait, "err", err)
			backoff = min(backoff*2, s.m.opts.MaxBackoff)
		} else {
			s.serve(ctx, sess, relist, log)
			stop()
			if ctx.Err() != nil {
				return
			}
			// A server that crashed is back at once, so the call waiting
			// for it gets an answer within its timeout; one that crashes
			// again within a minute waits its backoff (a crash loop).
			if time.Since(restarted) > time.Minute {
				restarted, wait, backoff = time.Now(), 0, s.m.opts.MinBackoff
			} else {
				backoff = min(backoff*2, s.m.opts.MaxBackoff)
			}
			log.Warn("MCP server disconnected; reconnecting", "retry_in", wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// conn is one connected session.
type conn struct {
	*mcp.ClientSession
	closed chan struct{} // closed when the session ended
}

// serve keeps c listed until it closes or ctx ends.
func (s *server) serve(ctx context.Context, c *conn, relist <-chan struct{}, log *slog.Logger) {
	sess := c.ClientSession
	defer func() {
		s.mu.Lock()
		cmd := s.cmd
		s.cmd = nil
		s.mu.Unlock()
		s.drop(c)
		_ = sess.Close()
		killGroup(cmd)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.closed:
			return
		case <-relist:
			lctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
			tools, err := s.list(lctx, sess)
			cancel()
			if err != nil {
				log.Error("MCP server's changed tool list could not be read", "err", err)
				continue
			}
			s.mu.Lock()
			s.tools = tools
			s.mu.Unlock()
			log.Info("MCP server's tool list changed", "tools", len(tools))
			s.m.rebuild(true)
		}
	}
}

var errConnectTimeout = errors.New("connect_timeout passed")

// connect makes one connection attempt: start or reach the server,
// initialize, list its tools. The context it connects with outlives the
// attempt (an HTTP+SSE stream lives on it) until stop is called; the
// connect timeout cancels it only while the attempt lasts.
func (s *server) connect(parent context.Context) (_ *conn, _ <-chan struct{}, stop func(), err error) {
	ctx, cancel := context.WithCancelCause(parent)
	timer := time.AfterFunc(s.cfg.ConnectTimeout, func() { cancel(errConnectTimeout) })
	defer func() {
		if err != nil {
			timer.Stop()
			cancel(nil)
		}
	}()
	relist := make(chan struct{}, 1)
	client := mcp.NewClient(&mcp.Implementation{Name: "hermesd", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select { // several notifications before one relist make one relist
			case relist <- struct{}{}:
			default:
			}
		},
	})
	var cmd *exec.Cmd
	var transports []mcp.Transport
	if s.cfg.Command != "" {
		cmd = s.command()
		transports = []mcp.Transport{&mcp.CommandTransport{Command: cmd, TerminateDuration: time.Second}}
	} else {
		hc := s.httpClient()
		transports = []mcp.Transport{
			&mcp.StreamableClientTransport{Endpoint: s.cfg.URL, HTTPClient: hc, MaxRetries: 2, MaxEventSize: maxMessage},
			// An older server speaks only HTTP+SSE (protocol 2024-11-05).
			&mcp.SSEClientTransport{Endpoint: s.cfg.URL, HTTPClient: hc, MaxEventSize: maxMessage},
		}
	}
	sess, err := connectAny(ctx, client, transports, func() { killGroup(cmd) })
	if err != nil {
		if context.Cause(ctx) == errConnectTimeout {
			err = fmt.Errorf("no answer within connect_timeout (%s): %w", s.cfg.ConnectTimeout, err)
		}
		return nil, nil, nil, err
	}
	tools, err := s.list(ctx, sess)
	if err != nil {
		_ = sess.Close()
		killGroup(cmd)
		if context.Cause(ctx) == errConnectTimeout {
			err = fmt.Errorf("no answer within connect_timeout (%s): %w", s.cfg.ConnectTimeout, err)
		}
		return nil, nil, nil, fmt.Errorf("listing tools: %w", err)
	}
	if !timer.Stop() {
		_ = sess.Close()
		killGroup(cmd)
		return nil, nil, nil, fmt.Errorf("no answer within connect_timeout (%s)", s.cfg.ConnectTimeout)
	}
	c := &conn{ClientSession: sess, closed: make(chan struct{})}
	go func() {
		_ = sess.Wait()
		close(c.closed)
	}()
	s.mu.Lock()
	s.session, s.cmd, s.tools = c, cmd, tools
	close(s.ready)
	s.mu.Unlock()
	return c, relist, func() { cancel(nil) }, nil
}

// connectAny connects over the first transport that works. It returns when
// ctx ends even if the SDK does not (its streamable transport's teardown
// of a connection to a server that never answered takes seconds more); a
// session that comes of it after all is closed. failed runs once the SDK is
// done with a connection that failed.
func connectAny(ctx context.Context, client *mcp.Client, transports []mcp.Transport, failed func()) (*mcp.ClientSession, error) {
	type result struct {
		sess *mcp.ClientSession
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var errs []error
		for _, t := range transports {
			sess, err := client.Connect(ctx, t, nil)
			if err == nil {
				done <- result{sess, nil}
				return
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		done <- result{nil, errors.Join(errs...)}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			failed()
		}
		return r.sess, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.sess != nil {
				_ = r.sess.Close()
			}
			failed()
		}()
		return nil, ctx.Err()
	}
}

// maxTools bounds one server's list: a server listing a million tools
// would otherwise be offered to the model in every request.
const maxTools = 512

// list reads the server's tools and names them for the model. Two tools of
// one server that sanitise to the same name keep the first, by name.
func (s *server) list(ctx context.Context, sess *mcp.ClientSession) ([]*tool, error) {
	var out []*tool
	seen := make(map[string]string)
	for t, err := range sess.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		if len(out) == maxTools {
			s.m.opts.Logger.Error("MCP server lists too many tools; the rest are ignored", "mcp_server", s.name, "max", maxTools)
			break
		}
		nt := newTool(s, t)
		if !validName.MatchString(nt.name) {
			s.m.opts.Logger.Error("MCP tool refused: its name does not fit 64 characters", "mcp_server", s.name, "tool", t.Name)
			continue
		}
		if other, dup := seen[nt.name]; dup {
			s.m.opts.Logger.Error("MCP tool refused: its name collides with another tool of the same server",
				"mcp_server", s.name, "tool", t.Name, "other", other, "name", nt.name)
			continue
		}
		seen[nt.name] = t.Name
		out = append(out, nt)
	}
	return out, nil
}

// safeEnv names the variables of hermesd's environment a stdio server
// inherits: what a program needs to find itself and its files.
var safeEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"}

func (s *server) command() *exec.Cmd {
	cmd := exec.Command(s.cfg.Command, s.cfg.Args...)
	cmd.Dir = s.cfg.Cwd
	for _, kv := range s.m.opts.Environ {
		k, _, _ := strings.Cut(kv, "=")
		for _, safe := range safeEnv {
			if k == safe || strings.HasPrefix(k, "LC_") {
				cmd.Env = append(cmd.Env, kv)
				break
			}
		}
	}
	keys := make([]string, 0, len(s.cfg.Env))
	for k := range s.cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+s.cfg.Env[k])
	}
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean all of hermesd's environment
	}
	cmd.Stderr = &stderrLog{log: s.m.opts.Logger.With("mcp_server", s.name)}
	// Its own process group, so what it started (npx starts node) goes
	// with it when it is stopped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// killGroup kills what is left of a stdio server's process group once its
// session closed (the SDK stopped the server itself).
func killGroup(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// stderrLog logs a stdio server's stderr, line by line, each line bounded.
type stderrLog struct {
	log *slog.Logger
	buf []byte
}

func (w *stderrLog) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *stderrLog) emit(line []byte) {
	if len(line) > 4096 {
		line = line[:4096]
	}
	if s := strings.TrimSpace(string(line)); s != "" {
		w.log.Debug("MCP server stderr", "line", s)
	}
}

// httpClient is a remote server's client: it sends the configured headers
// and bounds every response body.
func (s *server) httpClient() *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if s.cfg.Dial != nil {
		base.Proxy = nil // a proxy would be the only address the guard saw
		base.DialContext, base.DialTLSContext = s.cfg.Dial, nil
	}
	c := &http.Client{Transport: &headerTransport{headers: s.cfg.Headers, origin: origin(s.cfg.URL), base: base}}
	if s.cfg.NoRedirects {
		c.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
			return fmt.Errorf("the MCP server redirected to %s; redirects are not followed", r.URL.Redacted())
		}
	}
	return c
}

type headerTransport struct {
	headers map[string]string
	// origin is the server URL's scheme://host:port. An HTTP+SSE server
	// names the endpoint messages are posted to, and one naming another
	// origin would get the headers (a request's credentials) and make
	// hermesd post wherever it likes: such a request is refused.
	origin string
	base   http.RoundTripper
}

// origin returns raw's scheme://host:port, the port made explicit ("" when
// raw does not parse).
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if o := origin(r.URL.String()); o != t.origin {
		return nil, fmt.Errorf("the MCP server sent hermesd to %s, another origin than its URL's %s; refused (its headers would go there)", o, t.origin)
	}
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	// An event stream is one body for its whole life: MaxEventSize bounds
	// its events. Every other answer is one message.
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxMessage}
	}
	return resp, nil
}

var errTooLarge = errors.New("the MCP server's answer is larger than 16 MiB")

// limitedBody fails a read past its limit instead of buffering it.
type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}
