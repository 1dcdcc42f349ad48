package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Config is every setting of hermesd. Field comments name the variable.
type Config struct {
	Host           string        // API_SERVER_HOST
	Port           string        // API_SERVER_PORT; a string so Validate can say what was wrong with it
	Key            string        // API_SERVER_KEY
	CORSOrigins    []string      // API_SERVER_CORS_ORIGINS
	AllowedHosts   []string      // API_SERVER_ALLOWED_HOSTS: Host names answered besides loopback ones; "*" any
	ModelName      string        // API_SERVER_MODEL_NAME
	MaxStored      int           // API_SERVER_MAX_STORED_RESPONSES
	DatabaseURL    string        // HERMES_DATABASE_URL: PostgreSQL (cluster mode) instead of the bbolt file
	MaxConvs       int           // API_SERVER_MAX_CONVERSATIONS: least recently used dropped beyond this
	MaxPending     int           // API_SERVER_MAX_PENDING_BYTES: items added to one conversation not yet used by a turn
	IdemMaxEntries int           // API_SERVER_IDEMPOTENCY_MAX_ENTRIES: oldest dropped beyond this
	IdemMaxBytes   int           // API_SERVER_IDEMPOTENCY_MAX_BYTES: oldest dropped beyond this
	ToolProgress   string        // API_SERVER_TOOL_PROGRESS: inline, events, off
	AgentToolItems string        // API_SERVER_AGENT_TOOL_ITEMS: hosted or function_call
	MaxTurns       int           // API_SERVER_MAX_CONCURRENT_TURNS
	MaxQueued      int           // API_SERVER_MAX_QUEUED_TURNS
	ShutdownGrace  time.Duration // API_SERVER_SHUTDOWN_GRACE
	IdleActor      time.Duration // API_SERVER_ACTOR_IDLE: idle conversation actors stop after this
	Home           string        // HERMES_HOME
	Workspace      string        // HERMES_WORKSPACE
	MaxIterations  int           // HERMES_MAX_ITERATIONS
	MaxParallel    int           // HERMES_MAX_PARALLEL_TOOLS: tool calls of one model response running at once
	TurnTimeout    time.Duration // HERMES_TURN_TIMEOUT
	LeaseTTL       time.Duration // HERMES_LEASE_TTL: cluster mode; a dead node's conversations wait this long
	NodeID         string        // HERMES_NODE_ID: cluster mode; names this node in /health, logs and lease rows
	BaseURL        string        // OPENAI_BASE_URL
	APIKey         string        // OPENAI_API_KEY
	Model          string        // HERMES_MODEL
	ContextWindow  int           // HERMES_CONTEXT_WINDOW: tokens; 0 asks the upstream, else 128k
	Reasoning      bool          // HERMES_REASONING: the environment-only model is a reasoning model (gets reasoning_effort)
	CompactAt      string        // HERMES_COMPACT_AT: "80%" of the window, or a number of tokens
	ChatOverflow   string        // API_SERVER_CHAT_OVERFLOW: compact or error
	FirstByte      time.Duration // HERMES_UPSTREAM_FIRST_BYTE_TIMEOUT
	Tools          []string      // HERMES_TOOLS
	DisabledTools  []string      // HERMES_DISABLED_TOOLS
	TerminalAppr   string        // HERMES_TERMINAL_APPROVE
	TerminalEnv    []string      // HERMES_TERMINAL_ENV: names of more variables commands may see
	TerminalLock   bool          // HERMES_TERMINAL_LANDLOCK: confine commands' files with Landlock
	WebBackend     string        // HERMES_WEB_BACKEND
	SearXNGURL     string        // SEARXNG_URL
	BraveAPIKey    string        // BRAVE_API_KEY
	BraveBaseURL   string        // BRAVE_BASE_URL
	TavilyAPIKey   string        // TAVILY_API_KEY
	TavilyBaseURL  string        // TAVILY_BASE_URL
	DuckDuckGoURL  string        // DUCKDUCKGO_BASE_URL
	WebAllowPriv   bool          // HERMES_WEB_ALLOW_PRIVATE
	// MCPAllowPriv lets a request's mcp tool reach private, loopback and
	// link-local addresses (HERMES_MCP_ALLOW_PRIVATE); configured
	// mcp_servers are the operator's and never guarded.
	MCPAllowPriv   bool
	FilesHardlinks bool          // HERMES_FILES_ALLOW_HARDLINKS: file tools open files with several hard links
	LogFormat      string        // HERMES_LOG_FORMAT or -log-format: text or json
	LogLevel       string        // HERMES_LOG_LEVEL: debug, info, warn, error
	MaxBodyBytes   int           // API_SERVER_MAX_BODY_BYTES
	BodyMemory     int           // API_SERVER_MAX_BODY_MEMORY: request body bytes held at once, all connections together
	MaxConns       int           // API_SERVER_MAX_CONNECTIONS: open client connections (lowered to fit RLIMIT_NOFILE)
	MaxConnsPerIP  int           // API_SERVER_MAX_CONNECTIONS_PER_IP; 0: no per-address limit
	StreamDeadline time.Duration // API_SERVER_STREAM_WRITE_TIMEOUT: per-frame write deadline on streams
	KeepAlive      time.Duration // API_SERVER_SSE_KEEPALIVE: comment frames on idle streams
	WorkerIdle     time.Duration // API_SERVER_WORKER_IDLE: idle pooled goroutines (HTTP, turns) exit after this
	MaxFileBytes   int           // API_SERVER_MAX_FILE_BYTES: all uploaded files together; least recently used evicted beyond
	MaxUploadBytes int           // API_SERVER_MAX_UPLOAD_BYTES: one upload's request body (POST /v1/files)
	Uploads        string        // HERMES_UPLOADS: "workspace" also writes files sent in requests under uploads/ in the workspace
	Streaming      bool          // API_SERVER_STREAMING: false sends a stream's answer as one chunk at its end
	UnknownModel   string        // API_SERVER_UNKNOWN_MODEL: default (use DefaultModel) or error (404)

	// File is the config.yaml read, "" when there was none.
	File string
	// Models are the models clients may name: config.yaml's `models:`, or
	// else one model from OPENAI_BASE_URL/HERMES_MODEL named ModelName
	// (BaseURL "" is the offline model).
	Models []Model
	// DefaultModel answers requests naming no model or an unknown one.
	DefaultModel string
	// MCPServers are config.yaml's `mcp_servers:`, by name.
	MCPServers map[string]MCPServer

	// origins says where each setting came from, by variable name;
	// settings lists them in order with their effective values, for
	// check-config and for messages naming the file's line.
	origins  map[string]origin
	settings []setting
}

// origin is where a setting's value came from.
type origin struct {
	from string // flag, env, .env, file or default
	line int    // in File, when from is file
}

// setting is one setting as check-config shows it.
type setting struct {
	env, value string
}

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		Host:           "127.0.0.1",
		Port:           "8642",
		ModelName:      "hermes-agent",
		MaxStored:      100,
		MaxConvs:       10_000,
		MaxPending:     1 << 20,
		IdemMaxEntries: 10_000,
		IdemMaxBytes:   64 << 20,
		ToolProgress:   "inline",
		AgentToolItems: "hosted",
		MaxTurns:       256,
		MaxQueued:      16,
		ShutdownGrace:  30 * time.Second,
		IdleActor:      2 * time.Minute,
		MaxIterations:  90,
		CompactAt:      "80%",
		ChatOverflow:   "compact",
		MaxParallel:    8,
		TurnTimeout:    10 * time.Minute,
		LeaseTTL:       10 * time.Second,
		FirstByte:      2 * time.Minute,
		LogFormat:      "text",
		LogLevel:       "info",
		MaxBodyBytes:   10 << 20,
		BodyMemory:     256 << 20,
		MaxConns:       4096,
		MaxConnsPerIP:  512,
		StreamDeadline: 30 * time.Second,
		KeepAlive:      15 * time.Second,
		WorkerIdle:     10 * time.Second,
		MaxFileBytes:   1 << 30,
		MaxUploadBytes: 100 << 20,
		Streaming:      true,
		UnknownModel:   "default",
	}
}

// Addr is the host:port to bind.
func (c *Config) Addr() string { return net.JoinHostPort(c.Host, c.Port) }

// DBPath is where the response store lives when DatabaseURL is unset.
func (c *Config) DBPath() string { return filepath.Join(c.Home, "api_server.db") }

// FilesDir is where files uploaded through the Files API live.
func (c *Config) FilesDir() string { return filepath.Join(c.Home, "files") }

// flags are hermesd's command-line flags; each overrides a setting.
type flags struct {
	host, port, home, logFormat, config *string
}

func newFlagSet() (*flag.FlagSet, flags) {
	fs := flag.NewFlagSet("hermesd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, flags{
		host:      fs.String("host", "", "bind address (API_SERVER_HOST)"),
		port:      fs.String("port", "", "port (API_SERVER_PORT)"),
		home:      fs.String("home", "", "data directory (HERMES_HOME)"),
		logFormat: fs.String("log-format", "", "text or json (HERMES_LOG_FORMAT)"),
		config:    fs.String("config", "", "config file (default $HERMES_HOME/config.yaml, optional)"),
	}
}

// Usage writes hermesd's usage: its flags and where settings come from.
func Usage(w io.Writer) {
	fs, _ := newFlagSet()
	fs.SetOutput(w)
	fmt.Fprint(w, `Usage: hermesd [flags]
       hermesd check-config [flags]

hermesd serves an AI agent over an OpenAI-compatible HTTP API.
check-config prints the effective configuration, each value's origin and
secrets masked, and exits 0, or 2 with the reasons it would refuse to start.

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Settings come from these flags, then the environment, then $HERMES_HOME/.env,
then $HERMES_HOME/config.yaml (or --config), then defaults; a variable set in
the environment, even to "", hides its .env entry. README.md lists every
setting under Configuration.
`)
}

// ErrHelp is returned by Load when the arguments ask for help (-h, --help).
var ErrHelp = flag.ErrHelp

// Load builds the configuration from flags (args, without the program name),
// the environment (lookup, as os.LookupEnv) and $HERMES_HOME/.env.
// Precedence: flags, then the environment, then .env, then defaults. A
// variable set in the environment wins over .env even when it is empty
// (empty then means the default), so an operator can mask a .env entry.
func Load(args []string, lookup func(string) (string, bool)) (*Config, error) {
	fs, f := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ErrHelp
		}
		return nil, fmt.Errorf("flags: %w (hermesd --help lists them)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	envHome, _ := lookup("HERMES_HOME")
	homeDir := first(*f.home, envHome)
	if homeDir == "" {
		u, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("HERMES_HOME is not set and the home directory is unknown: %w", err)
		}
		homeDir = filepath.Join(u, ".hermes")
	}
	dotenv, err := readDotEnv(filepath.Join(homeDir, ".env"))
	if err != nil {
		return nil, err
	}
	// The file's ${VAR}s see the environment, then .env.
	envOrDotenv := func(k string) (string, bool) {
		if v, ok := lookup(k); ok {
			return v, true
		}
		v, ok := dotenv[k]
		return v, ok
	}
	file, err := readFile(first(*f.config, filepath.Join(homeDir, "config.yaml")), *f.config != "", envOrDotenv)
	if err != nil {
		return nil, err
	}
	if file == nil {
		file = &fileConfig{}
	}

	c := Defaults()
	c.Home = homeDir
	c.File = file.path
	c.origins = map[string]origin{}
	var errs []error
	// get returns setting k's value from the first source that has it.
	// An empty value is the default, so its origin is too.
	get := func(k string) string {
		v, ok := lookup(k)
		o := origin{from: "env"}
		if !ok {
			v, ok = dotenv[k]
			o = origin{from: ".env"}
		}
		if fv, inFile := file.values[k]; !ok && inFile {
			v, o = fv.val, origin{from: "file", line: fv.line}
			if fv.seq {
				v = strings.Join(fv.list, ",")
			}
		}
		if v != "" {
			c.origins[k] = o
		}
		return v
	}
	// single is get for a setting that takes one value, not a list.
	single := func(k string) string {
		v := get(k)
		if c.origins[k].from == "file" && file.values[k].seq {
			errs = append(errs, c.bad(k, v, "want a single value, not a list"))
			return ""
		}
		return v
	}
	// show records how check-config prints setting k once Load is done.
	var shows []func()
	show := func(k string, f func() string) {
		shows = append(shows, func() { c.settings = append(c.settings, setting{env: k, value: f()}) })
	}
	str := func(dst *string, k string) {
		show(k, func() string { return *dst })
		if v := single(k); v != "" {
			*dst = v
		}
	}
	num := func(dst *int, k string, min int) {
		show(k, func() string { return strconv.Itoa(*dst) })
		if v := single(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < min {
				errs = append(errs, c.bad(k, v, fmt.Sprintf("want an integer ≥ %d", min)))
				return
			}
			*dst = n
		}
	}
	dur := func(dst *time.Duration, k string) {
		show(k, func() string { return dst.String() })
		if v := single(k); v != "" {
			d, err := parseDuration(v)
			if err != nil {
				errs = append(errs, c.bad(k, v, "want a duration like 30s or a number of seconds"))
				return
			}
			*dst = d
		}
	}
	boolean := func(dst *bool, k string) {
		show(k, func() string { return strconv.FormatBool(*dst) })
		if v := single(k); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, c.bad(k, v, "want true or false"))
				return
			}
			*dst = b
		}
	}
	list := func(dst *[]string, k string) {
		show(k, func() string { return strings.Join(*dst, ",") })
		if v := get(k); v != "" {
			*dst = splitList(v)
		}
	}
	str(&c.Host, "API_SERVER_HOST")
	str(&c.Port, "API_SERVER_PORT")
	str(&c.Key, "API_SERVER_KEY")
	list(&c.CORSOrigins, "API_SERVER_CORS_ORIGINS")
	list(&c.AllowedHosts, "API_SERVER_ALLOWED_HOSTS")
	str(&c.ModelName, "API_SERVER_MODEL_NAME")
	str(&c.UnknownModel, "API_SERVER_UNKNOWN_MODEL")
	boolean(&c.Streaming, "API_SERVER_STREAMING")
	num(&c.MaxStored, "API_SERVER_MAX_STORED_RESPONSES", 1)
	str(&c.DatabaseURL, "HERMES_DATABASE_URL")
	num(&c.MaxConvs, "API_SERVER_MAX_CONVERSATIONS", 1)
	num(&c.MaxPending, "API_SERVER_MAX_PENDING_BYTES", 1024)
	num(&c.IdemMaxEntries, "API_SERVER_IDEMPOTENCY_MAX_ENTRIES", 1)
	num(&c.IdemMaxBytes, "API_SERVER_IDEMPOTENCY_MAX_BYTES", 1024)
	str(&c.ToolProgress, "API_SERVER_TOOL_PROGRESS")
	str(&c.AgentToolItems, "API_SERVER_AGENT_TOOL_ITEMS")
	num(&c.MaxTurns, "API_SERVER_MAX_CONCURRENT_TURNS", 1)
	num(&c.MaxQueued, "API_SERVER_MAX_QUEUED_TURNS", 0)
	dur(&c.ShutdownGrace, "API_SERVER_SHUTDOWN_GRACE")
	dur(&c.IdleActor, "API_SERVER_ACTOR_IDLE")
	num(&c.MaxBodyBytes, "API_SERVER_MAX_BODY_BYTES", 1024)
	num(&c.BodyMemory, "API_SERVER_MAX_BODY_MEMORY", 1024)
	num(&c.MaxConns, "API_SERVER_MAX_CONNECTIONS", 1)
	num(&c.MaxConnsPerIP, "API_SERVER_MAX_CONNECTIONS_PER_IP", 0)
	dur(&c.StreamDeadline, "API_SERVER_STREAM_WRITE_TIMEOUT")
	dur(&c.KeepAlive, "API_SERVER_SSE_KEEPALIVE")
	dur(&c.WorkerIdle, "API_SERVER_WORKER_IDLE")
	num(&c.MaxFileBytes, "API_SERVER_MAX_FILE_BYTES", 1024)
	num(&c.MaxUploadBytes, "API_SERVER_MAX_UPLOAD_BYTES", 1024)
	str(&c.Uploads, "HERMES_UPLOADS")
	str(&c.Workspace, "HERMES_WORKSPACE")
	num(&c.MaxIterations, "HERMES_MAX_ITERATIONS", 1)
	num(&c.MaxParallel, "HERMES_MAX_PARALLEL_TOOLS", 1)
	dur(&c.TurnTimeout, "HERMES_TURN_TIMEOUT")
	dur(&c.LeaseTTL, "HERMES_LEASE_TTL")
	str(&c.NodeID, "HERMES_NODE_ID")
	str(&c.BaseURL, "OPENAI_BASE_URL")
	str(&c.APIKey, "OPENAI_API_KEY")
	str(&c.Model, "HERMES_MODEL")
	num(&c.ContextWindow, "HERMES_CONTEXT_WINDOW", 0)
	boolean(&c.Reasoning, "HERMES_REASONING")
	str(&c.CompactAt, "HERMES_COMPACT_AT")
	str(&c.ChatOverflow, "API_SERVER_CHAT_OVERFLOW")
	dur(&c.FirstByte, "HERMES_UPSTREAM_FIRST_BYTE_TIMEOUT")
	list(&c.Tools, "HERMES_TOOLS")
	list(&c.DisabledTools, "HERMES_DISABLED_TOOLS")
	str(&c.TerminalAppr, "HERMES_TERMINAL_APPROVE")
	list(&c.TerminalEnv, "HERMES_TERMINAL_ENV")
	boolean(&c.TerminalLock, "HERMES_TERMINAL_LANDLOCK")
	str(&c.WebBackend, "HERMES_WEB_BACKEND")
	str(&c.SearXNGURL, "SEARXNG_URL")
	str(&c.BraveAPIKey, "BRAVE_API_KEY")
	str(&c.BraveBaseURL, "BRAVE_BASE_URL")
	str(&c.TavilyAPIKey, "TAVILY_API_KEY")
	str(&c.TavilyBaseURL, "TAVILY_BASE_URL")
	str(&c.DuckDuckGoURL, "DUCKDUCKGO_BASE_URL")
	str(&c.LogFormat, "HERMES_LOG_FORMAT")
	str(&c.LogLevel, "HERMES_LOG_LEVEL")
	boolean(&c.WebAllowPriv, "HERMES_WEB_ALLOW_PRIVATE")
	boolean(&c.MCPAllowPriv, "HERMES_MCP_ALLOW_PRIVATE")
	boolean(&c.FilesHardlinks, "HERMES_FILES_ALLOW_HARDLINKS")
	for k, v := range map[string]*string{"API_SERVER_HOST": f.host, "API_SERVER_PORT": f.port, "HERMES_LOG_FORMAT": f.logFormat} {
		if *v != "" {
			c.origins[k] = origin{from: "flag"}
		}
	}
	if *f.host != "" {
		c.Host = *f.host
	}
	if *f.port != "" {
		c.Port = *f.port
	}
	if *f.logFormat != "" {
		c.LogFormat = *f.logFormat
	}
	c.origins["HERMES_HOME"] = origin{from: "default"}
	if *f.home != "" {
		c.origins["HERMES_HOME"] = origin{from: "flag"}
	} else if envHome != "" {
		c.origins["HERMES_HOME"] = origin{from: "env"}
	}
	c.MCPServers = file.mcp
	c.Models, c.DefaultModel = file.models, file.defaultModel.val
	if len(c.Models) == 0 {
		c.Models = []Model{{ID: c.ModelName, BaseURL: c.BaseURL, APIKey: c.APIKey, Upstream: c.Model,
			ContextWindow: c.ContextWindow, Reasoning: c.Reasoning, Tools: true}}
	}
	if c.DefaultModel == "" {
		c.DefaultModel = c.Models[0].ID
	} else if c.model(c.DefaultModel) == nil {
		errs = append(errs, fmt.Errorf("%s:%d: default_model %q is not one of models", c.File, file.defaultModel.line, c.DefaultModel))
	}
	if c.Workspace == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("HERMES_WORKSPACE is not set and the current directory is unknown: %w", err)
		}
		c.Workspace = wd
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, f := range shows {
		f()
	}
	return &c, nil
}

// bad is the refusal of setting k's value v: with the file and line when
// config.yaml gave it, else with the variable's name.
func (c *Config) bad(k, v, reason string) error {
	if o := c.origins[k]; o.from == "file" {
		return fmt.Errorf("%s:%d: %s: %q: %s", c.File, o.line, fileKeys[k], v, reason)
	}
	return fmt.Errorf("%s=%q: %s", k, v, reason)
}

// model returns the model named id, or nil.
func (c *Config) model(id string) *Model {
	for i := range c.Models {
		if c.Models[i].ID == id {
			return &c.Models[i]
		}
	}
	return nil
}

// CompactThreshold is the prompt size, in tokens, past which a turn
// compacts its history (HERMES_COMPACT_AT) for a model whose context window
// is window.
func (c *Config) CompactThreshold(window int) int {
	if p, ok := strings.CutSuffix(c.CompactAt, "%"); ok {
		n, _ := strconv.Atoi(p)
		return window * n / 100
	}
	n, _ := strconv.Atoi(c.CompactAt)
	return min(n, window)
}

// Validate refuses settings that are unsafe or cannot work, with a one-line
// reason: Check's, and a port already in use.
func (c *Config) Validate() error {
	if err := c.Check(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr())
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v", c.Addr(), unwrapOp(err))
	}
	ln.Close()
	return nil
}

// Check refuses settings that are unsafe or cannot work, naming config.yaml's
// line for values from it: a non-loopback bind without a strong enough key
// (anyone on the network could run commands), a bad port, values out of
// range. It does not bind, so check-config and a reload can use it while
// hermesd serves.
func (c *Config) Check() error {
	n, err := strconv.Atoi(c.Port)
	if err != nil || n < 1 || n > 65535 {
		return c.bad("API_SERVER_PORT", c.Port, "want a number from 1 to 65535")
	}
	if !IsLoopback(c.Host) {
		if c.Key == "" {
			return fmt.Errorf("refusing to bind %s without API_SERVER_KEY: anyone who can reach it could run commands on this machine; set a key of at least 8 characters or bind 127.0.0.1", c.Host)
		}
		if len(c.Key) < 8 {
			return fmt.Errorf("refusing to bind %s: API_SERVER_KEY is shorter than 8 characters", c.Host)
		}
	}
	for _, h := range c.AllowedHosts {
		if !validHostName(h) {
			return c.bad("API_SERVER_ALLOWED_HOSTS", h, "want a host name or IP address without a port, or * for any")
		}
	}
	if c.BodyMemory < c.MaxBodyBytes {
		return fmt.Errorf("API_SERVER_MAX_BODY_MEMORY=%d is below API_SERVER_MAX_BODY_BYTES=%d: a request of the largest allowed size could never be read", c.BodyMemory, c.MaxBodyBytes)
	}
	if c.MaxUploadBytes > c.MaxFileBytes {
		return fmt.Errorf("API_SERVER_MAX_UPLOAD_BYTES=%d is above API_SERVER_MAX_FILE_BYTES=%d: an upload of the largest allowed size could never be kept", c.MaxUploadBytes, c.MaxFileBytes)
	}
	if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		return c.bad("HERMES_DATABASE_URL", MaskDatabaseURL(c.DatabaseURL), err.Error())
	}
	switch c.Uploads {
	case "", "off", "workspace":
	default:
		return fmt.Errorf("HERMES_UPLOADS=%q: want workspace, or off (the default)", c.Uploads)
	}
	if c.ContextWindow != 0 && c.ContextWindow < 1024 {
		return c.bad("HERMES_CONTEXT_WINDOW", strconv.Itoa(c.ContextWindow), "want 0 (ask the upstream) or at least 1024 tokens")
	}
	if p, ok := strings.CutSuffix(c.CompactAt, "%"); ok {
		if n, err := strconv.Atoi(p); err != nil || n < 10 || n > 95 {
			return c.bad("HERMES_COMPACT_AT", c.CompactAt, "want a percentage of the context window from 10% to 95%, or a number of tokens")
		}
	} else if n, err := strconv.Atoi(c.CompactAt); err != nil || n < 512 {
		return c.bad("HERMES_COMPACT_AT", c.CompactAt, "want a percentage of the context window like 80%, or at least 512 tokens")
	}
	for _, e := range []struct {
		env     string
		value   string
		allowed []string
	}{
		{"API_SERVER_TOOL_PROGRESS", c.ToolProgress, []string{"inline", "events", "off"}},
		{"API_SERVER_AGENT_TOOL_ITEMS", c.AgentToolItems, []string{"hosted", "function_call"}},
		{"API_SERVER_CHAT_OVERFLOW", c.ChatOverflow, []string{"compact", "error"}},
		{"API_SERVER_UNKNOWN_MODEL", c.UnknownModel, []string{"default", "error"}},
		{"HERMES_LOG_FORMAT", c.LogFormat, []string{"text", "json"}},
		{"HERMES_LOG_LEVEL", strings.ToLower(c.LogLevel), []string{"debug", "info", "warn", "error"}},
	} {
		if !slices.Contains(e.allowed, e.value) {
			return c.bad(e.env, e.value, "want "+strings.Join(e.allowed, ", "))
		}
	}
	for _, name := range c.TerminalEnv {
		if !validEnvName(name) {
			return c.bad("HERMES_TERMINAL_ENV", name, "not a variable name")
		}
	}
	// A malformed pattern would match nothing, silently dropping (or
	// keeping) tools.
	for k, list := range map[string][]string{"HERMES_TOOLS": c.Tools, "HERMES_DISABLED_TOOLS": c.DisabledTools} {
		for _, p := range list {
			if _, err := path.Match(strings.TrimSpace(p), ""); err != nil {
				return c.bad(k, p, "not a valid name pattern (names, or patterns like mcp_github_*)")
			}
		}
	}
	if st, err := os.Stat(c.Workspace); err != nil || !st.IsDir() {
		return c.bad("HERMES_WORKSPACE", c.Workspace, "not a directory")
	}
	// Renewals come every third of the TTL: below a second a busy
	// database or a GC pause would cost a node its conversations; above
	// ten minutes a dead node's conversations wait that long.
	if c.LeaseTTL < time.Second || c.LeaseTTL > 10*time.Minute {
		return c.bad("HERMES_LEASE_TTL", c.LeaseTTL.String(), "want a duration from 1s to 10m")
	}
	if len(c.NodeID) > 128 || strings.IndexFunc(c.NodeID, func(r rune) bool { return r <= ' ' || r == 0x7f || r > '~' }) >= 0 {
		return c.bad("HERMES_NODE_ID", c.NodeID, "want at most 128 printable ASCII characters without spaces")
	}
	return nil
}

// validEnvName reports a name a shell can export: letters, digits and _,
// not starting with a digit.
func validEnvName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return name != ""
}

// validHostName reports a name a Host header can carry: "*", an IP
// literal, or DNS labels of letters, digits, - and _.
func validHostName(h string) bool {
	if h == "*" {
		return true
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return !strings.Contains(h, "%")
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				return false
			}
		}
	}
	return true
}

// IsLoopback reports whether host is a loopback address or localhost.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys *os.SyscallError
		if errors.As(op.Err, &sys) {
			return sys.Err // "address already in use"
		}
		return op.Err
	}
	return err
}

// readDotEnv reads a .env file the way the dotenv tools that write them
// do (godotenv: quotes, escapes, inline comments, export); a missing file
// is empty.
func readDotEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	m, err := godotenv.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("bad duration")
	}
	return d, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
