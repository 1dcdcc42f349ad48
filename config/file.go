package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// fileKeys names each environment variable's key in config.yaml, by group.
// A variable Load reads that has no key here fails TestEveryVariableHasAKey.
var fileKeys = map[string]string{
	"API_SERVER_HOST":                    "server.host",
	"API_SERVER_PORT":                    "server.port",
	"API_SERVER_KEY":                     "server.key",
	"API_SERVER_CORS_ORIGINS":            "server.cors_origins",
	"API_SERVER_ALLOWED_HOSTS":           "server.allowed_hosts",
	"API_SERVER_MODEL_NAME":              "server.model_name",
	"API_SERVER_UNKNOWN_MODEL":           "server.unknown_model",
	"API_SERVER_STREAMING":               "server.streaming",
	"API_SERVER_TOOL_PROGRESS":           "server.tool_progress",
	"API_SERVER_AGENT_TOOL_ITEMS":        "server.agent_tool_items",
	"API_SERVER_CHAT_OVERFLOW":           "server.chat_overflow",
	"API_SERVER_MAX_CONCURRENT_TURNS":    "server.max_concurrent_turns",
	"API_SERVER_MAX_QUEUED_TURNS":        "server.max_queued_turns",
	"API_SERVER_SHUTDOWN_GRACE":          "server.shutdown_grace",
	"API_SERVER_ACTOR_IDLE":              "server.actor_idle",
	"API_SERVER_MAX_BODY_BYTES":          "server.max_body_bytes",
	"API_SERVER_MAX_BODY_MEMORY":         "server.max_body_memory",
	"API_SERVER_MAX_CONNECTIONS":         "server.max_connections",
	"API_SERVER_MAX_CONNECTIONS_PER_IP":  "server.max_connections_per_ip",
	"API_SERVER_STREAM_WRITE_TIMEOUT":    "server.stream_write_timeout",
	"API_SERVER_SSE_KEEPALIVE":           "server.sse_keepalive",
	"API_SERVER_WORKER_IDLE":             "server.worker_idle",
	"API_SERVER_MAX_STORED_RESPONSES":    "store.max_stored_responses",
	"HERMES_DATABASE_URL":                "store.postgres",
	"API_SERVER_MAX_CONVERSATIONS":       "store.max_conversations",
	"API_SERVER_MAX_PENDING_BYTES":       "store.max_pending_bytes",
	"API_SERVER_IDEMPOTENCY_MAX_ENTRIES": "store.idempotency_max_entries",
	"API_SERVER_IDEMPOTENCY_MAX_BYTES":   "store.idempotency_max_bytes",
	"API_SERVER_MAX_FILE_BYTES":          "store.max_file_bytes",
	"API_SERVER_MAX_UPLOAD_BYTES":        "server.max_upload_bytes",
	"HERMES_UPLOADS":                     "files.uploads",
	"HERMES_WORKSPACE":                   "agent.workspace",
	"HERMES_MAX_ITERATIONS":              "agent.max_iterations",
	"HERMES_MAX_PARALLEL_TOOLS":          "agent.max_parallel_tools",
	"HERMES_TURN_TIMEOUT":                "agent.turn_timeout",
	"HERMES_LEASE_TTL":                   "store.lease_ttl",
	"HERMES_NODE_ID":                     "store.node_id",
	"HERMES_COMPACT_AT":                  "agent.compact_at",
	"OPENAI_BASE_URL":                    "upstream.base_url",
	"OPENAI_API_KEY":                     "upstream.api_key",
	"HERMES_MODEL":                       "upstream.model",
	"HERMES_CONTEXT_WINDOW":              "upstream.context_window",
	"HERMES_REASONING":                   "upstream.reasoning",
	"HERMES_UPSTREAM_FIRST_BYTE_TIMEOUT": "upstream.first_byte_timeout",
	"HERMES_TOOLS":                       "tools.enabled",
	"HERMES_DISABLED_TOOLS":              "tools.disabled",
	"HERMES_TERMINAL_APPROVE":            "terminal.approve",
	"HERMES_TERMINAL_ENV":                "terminal.env",
	"HERMES_TERMINAL_LANDLOCK":           "terminal.landlock",
	"HERMES_FILES_ALLOW_HARDLINKS":       "files.allow_hardlinks",
	"HERMES_WEB_BACKEND":                 "web.backend",
	"SEARXNG_URL":                        "web.searxng_url",
	"BRAVE_API_KEY":                      "web.brave_api_key",
	"BRAVE_BASE_URL":                     "web.brave_base_url",
	"TAVILY_API_KEY":                     "web.tavily_api_key",
	"TAVILY_BASE_URL":                    "web.tavily_base_url",
	"DUCKDUCKGO_BASE_URL":                "web.duckduckgo_base_url",
	"HERMES_WEB_ALLOW_PRIVATE":           "web.allow_private",
	"HERMES_MCP_ALLOW_PRIVATE":           "mcp.allow_private",
	"HERMES_LOG_FORMAT":                  "log.format",
	"HERMES_LOG_LEVEL":                   "log.level",
}

// Model is one model clients may name in a request's `model`.
type Model struct {
	ID            string   // what clients send and see
	BaseURL       string   // the OpenAI-compatible upstream
	APIKey        string   // its key; secret
	Upstream      string   // the upstream's own model id (`model:`); ID when empty
	ContextWindow int      // tokens; 0 asks the upstream
	Vision        bool     // accepts images
	NoVision      bool     // `vision: false` given: images are refused before any upstream call
	Reasoning     bool     // `reasoning: true`: a reasoning model; a request's reasoning.effort goes upstream as reasoning_effort
	SendReasoning bool     // `send_reasoning: true`: earlier reasoning is sent back as reasoning_content
	FetchImages   bool     // `fetch_images: true`: hermesd fetches http(s) image URLs and sends them inline
	Tools         bool     // may call tools (default true)
	Fallbacks     []string // ids tried in order when this one fails before its first token
	Line          int      // where it is defined in the file, for messages
}

// MCPServer is one MCP server whose tools the agent gets: either a stdio
// server hermesd starts (Command) or a remote one (URL).
type MCPServer struct {
	Command        string
	Args           []string
	Env            map[string]string // secret values
	Cwd            string
	URL            string
	Headers        map[string]string // secret values
	Timeout        time.Duration     // per call; default 120s
	ConnectTimeout time.Duration     // default 30s
}

// fileValue is one setting as config.yaml gives it.
type fileValue struct {
	val  string
	list []string // when the file gives a sequence
	seq  bool
	line int
}

// fileConfig is what config.yaml says, interpolated, before merging.
type fileConfig struct {
	path         string
	values       map[string]fileValue // by environment variable name
	models       []Model
	defaultModel fileValue
	mcp          map[string]MCPServer
}

// fileErrs collects refusals, each with the file and line.
type fileErrs struct {
	path string
	errs []error
}

func (e *fileErrs) add(n ast.Node, format string, args ...any) {
	e.addAt(line(n), format, args...)
}

func (e *fileErrs) addAt(line int, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s:%d: %s", e.path, line, fmt.Sprintf(format, args...)))
}

func line(n ast.Node) int {
	if n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// readFile reads config.yaml at path, interpolating ${VAR} and
// ${VAR:-default} with lookup. A missing file is no file unless required.
// Every unknown key, misshapen value and unset variable is refused with
// its line.
func readFile(path string, required bool, lookup func(string) (string, bool)) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: %d bytes; a config file is at most %d", path, len(data), maxFileBytes)
	}
	if line := tooDeep(data); line > 0 {
		return nil, fmt.Errorf("%s:%d: more than %d nested [ or {", path, line, maxFlowDepth)
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimSpace(yaml.FormatError(err, false, false)))
	}
	fc := &fileConfig{path: path, values: map[string]fileValue{}}
	e := &fileErrs{path: path}
	byKey := map[string]string{}
	for env, key := range fileKeys {
		byKey[key] = env
	}
	if len(f.Docs) > 1 {
		e.add(f.Docs[1], "one YAML document expected")
	}
	var body ast.Node
	if len(f.Docs) > 0 {
		body = f.Docs[0].Body
	}
	if body == nil || body.Type() == ast.NullType {
		return fc, nil // an empty file sets nothing
	}
	sc := scalars{lookup: lookup, e: e}
	for _, kv := range sc.mapping(body, "the file") {
		switch kv.key {
		case "models":
			fc.models = sc.models(kv.value)
		case "default_model":
			if v, ok := sc.scalar(kv.value, kv.key); ok {
				fc.defaultModel = fileValue{val: v, line: line(kv.value)}
			}
		case "mcp_servers":
			fc.mcp = sc.mcpServers(kv.value)
		default:
			group := kv.key
			for _, sub := range sc.mapping(kv.value, group) {
				key := group + "." + sub.key
				env, ok := byKey[key]
				if !ok {
					e.add(sub.keyNode, "unknown key %s", key)
					continue
				}
				if list, ok := sc.list(sub.value, key); ok {
					fc.values[env] = fileValue{list: list, seq: true, line: line(sub.value)}
				} else if v, ok := sc.scalar(sub.value, key); ok {
					fc.values[env] = fileValue{val: v, line: line(sub.value)}
				}
			}
		}
	}
	if len(e.errs) > 0 {
		return nil, errors.Join(e.errs...)
	}
	return fc, nil
}

// maxFileBytes and maxFlowDepth bound what the YAML parser is given: its
// time grows with the square of the nesting of [ and { (16,000 levels take
// seconds, 100,000 a minute), which no real configuration comes near.
const (
	maxFileBytes = 1 << 20
	maxFlowDepth = 64
)

// tooDeep returns the line at which data nests [ and { (outside quotes and
// comments) past maxFlowDepth, or 0.
func tooDeep(data []byte) int {
	depth, line := 0, 1
	var quote byte
	comment := false
	for i, c := range data {
		switch {
		case c == '\n':
			line++
			comment = false
		case comment:
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || data[i-1] == ' ' || data[i-1] == '\t' || data[i-1] == '\n'):
			comment = true
		case c == '[' || c == '{':
			if depth++; depth > maxFlowDepth {
				return line
			}
		case (c == ']' || c == '}') && depth > 0:
			depth--
		}
	}
	return 0
}

// scalars reads nodes of the file, interpolated, reporting to e.
type scalars struct {
	lookup func(string) (string, bool)
	e      *fileErrs
}

type keyValue struct {
	key     string
	keyNode ast.Node
	value   ast.Node
}

// unwrap looks through anchors and tags; aliases are refused, since a
// value defined elsewhere would carry that place's line into messages.
func (s scalars) unwrap(n ast.Node) ast.Node {
	for {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.TagNode:
			n = t.Value
		default:
			return n
		}
	}
}

// mapping returns the entries of a mapping node, refusing anything else,
// duplicate keys and merge keys.
func (s scalars) mapping(n ast.Node, what string) []keyValue {
	n = s.unwrap(n)
	var values []*ast.MappingValueNode
	switch t := n.(type) {
	case *ast.MappingNode:
		values = t.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{t}
	case *ast.NullNode:
		return nil
	default:
		s.e.add(n, "%s: want a mapping (key: value lines), got %s", what, kind(n))
		return nil
	}
	seen := map[string]bool{}
	var out []keyValue
	for _, mv := range values {
		if mv.Key.IsMergeKey() {
			s.e.add(mv.Key, "%s: merge keys (<<) are not supported", what)
			continue
		}
		k, ok := s.raw(mv.Key)
		if !ok {
			s.e.add(mv.Key, "%s: want a plain key", what)
			continue
		}
		if seen[k] {
			s.e.add(mv.Key, "%s: %s given twice", what, k)
			continue
		}
		seen[k] = true
		out = append(out, keyValue{key: k, keyNode: mv.Key, value: mv.Value})
	}
	return out
}

func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.AliasNode:
		return "an alias (aliases are not supported)"
	case nil:
		return "nothing"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// raw is a scalar's text as written, not interpolated; ok is false for
// anything but a scalar.
func (s scalars) raw(n ast.Node) (string, bool) {
	switch t := s.unwrap(n).(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.LiteralNode:
		return t.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return t.GetToken().Value, true
	case *ast.NullNode:
		return "", true
	}
	return "", false
}

// scalar is a scalar value, interpolated.
func (s scalars) scalar(n ast.Node, key string) (string, bool) {
	v, ok := s.raw(n)
	if !ok {
		s.e.add(n, "%s: want a single value, got %s", key, kind(s.unwrap(n)))
		return "", false
	}
	v, err := interpolate(v, s.lookup)
	if err != nil {
		s.e.add(n, "%s: %v", key, err)
		return "", false
	}
	return v, true
}

// list is a sequence of scalars, interpolated; ok is false when n is not
// a sequence (a scalar is then read as a comma list by the setting).
func (s scalars) list(n ast.Node, key string) ([]string, bool) {
	seq, ok := s.unwrap(n).(*ast.SequenceNode)
	if !ok {
		return nil, false
	}
	out := []string{}
	for _, item := range seq.Values {
		if v, ok := s.scalar(item, key); ok && v != "" {
			out = append(out, v)
		}
	}
	return out, true
}

// strings is a list that must be a sequence.
func (s scalars) strings(n ast.Node, key string) []string {
	if l, ok := s.list(n, key); ok {
		return l
	}
	if _, null := s.unwrap(n).(*ast.NullNode); !null {
		s.e.add(n, "%s: want a list like [a, b], got %s", key, kind(s.unwrap(n)))
	}
	return nil
}

// stringMap is a mapping of names to scalars, interpolated.
func (s scalars) stringMap(n ast.Node, key string) map[string]string {
	out := map[string]string{}
	for _, kv := range s.mapping(n, key) {
		if v, ok := s.scalar(kv.value, key+"."+kv.key); ok {
			out[kv.key] = v
		}
	}
	return out
}

func (s scalars) boolean(n ast.Node, key string, dst *bool) {
	if v, ok := s.scalar(n, key); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.e.add(n, "%s: %q: want true or false", key, v)
			return
		}
		*dst = b
	}
}

func (s scalars) duration(n ast.Node, key string, dst *time.Duration) {
	if v, ok := s.scalar(n, key); ok {
		d, err := parseDuration(v)
		if err != nil || d == 0 {
			s.e.add(n, "%s: %q: want a duration above zero like 30s or a number of seconds", key, v)
			return
		}
		*dst = d
	}
}

var modelID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$`)

// models reads `models:`, a list of model entries.
func (s scalars) models(n ast.Node) []Model {
	seq, ok := s.unwrap(n).(*ast.SequenceNode)
	if !ok {
		if _, null := s.unwrap(n).(*ast.NullNode); !null {
			s.e.add(n, "models: want a list of models (- id: …), got %s", kind(s.unwrap(n)))
		}
		return nil
	}
	var out []Model
	ids := map[string]bool{}
	for i, item := range seq.Values {
		m := Model{Tools: true, Line: line(item)}
		where := fmt.Sprintf("models[%d]", i)
		for _, kv := range s.mapping(item, where) {
			key := where + "." + kv.key
			switch kv.key {
			case "id":
				m.ID, _ = s.scalar(kv.value, key)
			case "base_url":
				m.BaseURL, _ = s.scalar(kv.value, key)
			case "api_key":
				m.APIKey, _ = s.scalar(kv.value, key)
			case "model":
				m.Upstream, _ = s.scalar(kv.value, key)
			case "context_window":
				if v, ok := s.scalar(kv.value, key); ok && v != "" {
					w, err := strconv.Atoi(v)
					if err != nil || w != 0 && w < 1024 {
						s.e.add(kv.value, "%s: %q: want 0 (ask the upstream) or at least 1024 tokens", key, v)
					}
					m.ContextWindow = w
				}
			case "vision":
				// Only an explicit false refuses images; a model with no
				// mark gets them and its server decides.
				s.boolean(kv.value, key, &m.Vision)
				m.NoVision = !m.Vision
			case "send_reasoning":
				s.boolean(kv.value, key, &m.SendReasoning)
			case "fetch_images":
				s.boolean(kv.value, key, &m.FetchImages)
			case "reasoning":
				s.boolean(kv.value, key, &m.Reasoning)
			case "tools":
				s.boolean(kv.value, key, &m.Tools)
			case "fallbacks":
				m.Fallbacks = s.strings(kv.value, key)
			default:
				s.e.add(kv.keyNode, "unknown key %s (a model has id, base_url, api_key, model, context_window, vision, reasoning, send_reasoning, fetch_images, tools, fallbacks)", key)
			}
		}
		switch {
		case m.ID == "":
			s.e.add(item, "%s: id is required", where)
			continue
		case !modelID.MatchString(m.ID):
			s.e.add(item, "%s: id %q: want letters, digits and . _ : / @ + - (at most 128)", where, m.ID)
		case ids[m.ID]:
			s.e.add(item, "%s: id %q given twice", where, m.ID)
		}
		ids[m.ID] = true
		if err := checkURL(m.BaseURL); err != nil {
			s.e.add(item, "%s (%s): base_url %q: %v", where, m.ID, m.BaseURL, err)
		}
		if m.Upstream == "" {
			m.Upstream = m.ID
		}
		out = append(out, m)
	}
	for _, m := range out {
		seen := map[string]bool{}
		for _, fb := range m.Fallbacks {
			switch {
			case fb == m.ID:
				s.e.addAt(m.Line, "models: %s lists itself as a fallback", m.ID)
			case !ids[fb]:
				s.e.addAt(m.Line, "models: %s falls back to %q, which is not a model here", m.ID, fb)
			case seen[fb]:
				s.e.addAt(m.Line, "models: %s lists fallback %q twice", m.ID, fb)
			}
			seen[fb] = true
		}
	}
	return out
}

// checkURL accepts an absolute http or https URL.
func checkURL(v string) error {
	if v == "" {
		return errors.New("required")
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// or https:// URL")
	}
	return nil
}

var mcpName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// mcpServers reads `mcp_servers:`, a mapping of server names.
func (s scalars) mcpServers(n ast.Node) map[string]MCPServer {
	out := map[string]MCPServer{}
	for _, srv := range s.mapping(n, "mcp_servers") {
		where := "mcp_servers." + srv.key
		if !mcpName.MatchString(srv.key) {
			s.e.add(srv.keyNode, "%s: a server name is letters, digits, _ and - (at most 64), since its tools are named mcp_<server>_<tool>", where)
		}
		m := MCPServer{Timeout: 120 * time.Second, ConnectTimeout: 30 * time.Second}
		for _, kv := range s.mapping(srv.value, where) {
			key := where + "." + kv.key
			switch kv.key {
			case "command":
				m.Command, _ = s.scalar(kv.value, key)
			case "args":
				m.Args = s.strings(kv.value, key)
			case "env":
				m.Env = s.stringMap(kv.value, key)
				for name := range m.Env {
					if !validEnvName(name) {
						s.e.add(kv.value, "%s: %q is not a variable name", key, name)
					}
				}
			case "cwd":
				m.Cwd, _ = s.scalar(kv.value, key)
			case "url":
				m.URL, _ = s.scalar(kv.value, key)
			case "headers":
				m.Headers = s.stringMap(kv.value, key)
			case "timeout":
				s.duration(kv.value, key, &m.Timeout)
			case "connect_timeout":
				s.duration(kv.value, key, &m.ConnectTimeout)
			default:
				s.e.add(kv.keyNode, "unknown key %s (a server has command, args, env, cwd or url, headers; and timeout, connect_timeout)", key)
			}
		}
		switch {
		case (m.Command == "") == (m.URL == ""):
			s.e.add(srv.keyNode, "%s: give exactly one of command (a stdio server) or url (a remote server)", where)
		case m.URL != "":
			if err := checkURL(m.URL); err != nil {
				s.e.add(srv.keyNode, "%s: url %q: %v", where, m.URL, err)
			}
			if len(m.Args) > 0 || len(m.Env) > 0 || m.Cwd != "" {
				s.e.add(srv.keyNode, "%s: args, env and cwd are for command servers, not url ones", where)
			}
		case len(m.Headers) > 0:
			s.e.add(srv.keyNode, "%s: headers are for url servers, not command ones", where)
		}
		out[srv.key] = m
	}
	return out
}

// interpolate replaces ${VAR} and ${VAR:-default} with lookup's values;
// $$ is a literal $. An unset variable without a default is refused, so a
// missing secret is found at start rather than sent as "".
func interpolate(v string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(v, "$") {
		return v, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '$')
		if i < 0 {
			b.WriteString(v)
			return b.String(), nil
		}
		b.WriteString(v[:i])
		v = v[i:]
		switch {
		case strings.HasPrefix(v, "$$"):
			b.WriteByte('$')
			v = v[2:]
		case strings.HasPrefix(v, "${"):
			end := strings.IndexByte(v, '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", v)
			}
			name, def, hasDef := strings.Cut(v[2:end], ":-")
			if !validEnvName(name) {
				return "", fmt.Errorf("${%s}: not a variable name", v[2:end])
			}
			val, ok := lookup(name)
			switch {
			case ok && val != "":
				b.WriteString(val)
			case hasDef:
				b.WriteString(def)
			case ok:
			default:
				return "", fmt.Errorf("${%s} is not set (write ${%s:-} for empty)", name, name)
			}
			v = v[end+1:]
		default:
			b.WriteByte('$')
			v = v[1:]
		}
	}
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
