package tooling

import (
	"bytes"
	"context"
	"encoding/json"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	hermes "github.com/hermesd/hermesd"
)

// Tool is the plug-in contract of an agent tool.
type Tool interface {
	// Spec names the tool and gives the model its description and JSON schema.
	Spec() hermes.ToolSpec
	// Emoji is shown in progress markers.
	Emoji() string
	// Label is the one-line progress label for a call with these arguments:
	// the command, the query, the file name. It must not fail.
	Label(args []byte) string
	// Run executes one call and returns the result the model sees, as JSON
	// text. Failures are results too ({"error": "..."}), never panics.
	Run(ctx context.Context, call Call) string
}

// Call is one invocation of a tool.
type Call struct {
	ID   string
	Args []byte // the JSON arguments as the model wrote them
	// History is the transcript so far, read-only: tools that keep state
	// with the conversation (todo) recover it from their earlier results.
	History []hermes.Message
}

// ErrorResult returns the JSON result reporting a failed call to the model.
func ErrorResult(msg string) string {
	s, _ := marshal(map[string]string{"error": msg})
	return s
}

// JSONResult marshals v as a tool result, falling back to an error result.
func JSONResult(v any) string {
	s, err := marshal(v)
	if err != nil {
		return ErrorResult("encoding result: " + err.Error())
	}
	return s
}

// marshal encodes v as JSON without escaping '&', '<' and '>': results go
// to a model, not into HTML, and "a \u0026\u0026 b" costs it tokens and
// reads as something other than the command's output.
func marshal(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

// DecodeArgs unmarshals a call's JSON arguments into v. Empty arguments are
// an empty object. The error text is written for the model to fix its call.
func DecodeArgs(args []byte, v any) error {
	if len(strings.TrimSpace(string(args))) == 0 {
		args = []byte("{}")
	}
	if err := json.Unmarshal(args, v); err != nil {
		return &hermes.Error{Code: hermes.EInvalid, Message: "invalid tool arguments: " + err.Error()}
	}
	return nil
}

// Registry holds the tools the agent may use: the built-in ones, fixed at
// start-up, and a dynamic set (MCP servers' tools) replaced as servers come
// and go. It is read concurrently; a turn takes its specs once, so a change
// shows from the next turn on.
type Registry struct {
	static []Tool
	enable func(string) bool
	mu     sync.Mutex // serializes SetDynamic
	set    atomic.Pointer[toolSet]
}

// toolSet is one immutable state of a Registry.
type toolSet struct {
	tools   map[string]Tool
	order   []string
	specs   []hermes.ToolSpec // built once: every turn sends them
	servers map[string]origin // for tools another server runs
}

// origin is who runs a tool: the server's label and the tool's name there.
type origin struct{ server, tool string }

// Served is implemented by tools another server runs (MCP): their calls
// are reported with that server's label instead of hermes.AgentServer,
// and with the tool's own name on that server.
type Served interface {
	Server() string
	ServerTool() string
}

// NewRegistry returns a registry of the given tools, keeping those that
// enable allows (nil allows all).
func NewRegistry(tools []Tool, enable func(name string) bool) *Registry {
	r := &Registry{static: tools, enable: enable}
	r.set.Store(r.build(nil))
	return r
}

// SetDynamic replaces the registry's dynamic tools. A dynamic tool named
// like a built-in one is not taken (the built-in stays); their names are
// returned.
func (r *Registry) SetDynamic(tools []Tool) (refused []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	builtin := make(map[string]bool, len(r.static))
	for _, t := range r.static {
		builtin[t.Spec().Name] = true
	}
	kept := make([]Tool, 0, len(tools))
	for _, t := range tools {
		if builtin[t.Spec().Name] {
			refused = append(refused, t.Spec().Name)
			continue
		}
		kept = append(kept, t)
	}
	r.set.Store(r.build(kept))
	return refused
}

func (r *Registry) build(dynamic []Tool) *toolSet {
	s := &toolSet{tools: make(map[string]Tool), servers: make(map[string]origin)}
	for _, t := range append(r.static[:len(r.static):len(r.static)], dynamic...) {
		name := t.Spec().Name
		if r.enable != nil && !r.enable(name) {
			continue
		}
		if _, dup := s.tools[name]; !dup {
			s.order = append(s.order, name)
		}
		s.tools[name] = t
		if sv, ok := t.(Served); ok {
			s.servers[name] = origin{sv.Server(), sv.ServerTool()}
		}
	}
	sort.Strings(s.order)
	s.specs = make([]hermes.ToolSpec, 0, len(s.order))
	for _, n := range s.order {
		s.specs = append(s.specs, s.tools[n].Spec())
	}
	return s
}

// With returns a registry of r's tools and extra, for one turn: a
// request's own MCP servers, which r's selection does not apply to (the
// request chose them). An extra tool named like one of r's is left out;
// their names are returned.
func (r *Registry) With(extra []Tool) (_ *Registry, refused []string) {
	cur := r.set.Load()
	tools := make([]Tool, 0, len(cur.order))
	for _, n := range cur.order {
		tools = append(tools, cur.tools[n])
	}
	w := &Registry{static: tools}
	kept := make([]Tool, 0, len(extra))
	for _, t := range extra {
		if _, dup := cur.tools[t.Spec().Name]; dup {
			refused = append(refused, t.Spec().Name)
			continue
		}
		kept = append(kept, t)
	}
	w.set.Store(w.build(kept))
	return w, refused
}

// Get returns the tool with that name.
func (r *Registry) Get(name string) (Tool, bool) {
	t, ok := r.set.Load().tools[name]
	return t, ok
}

// Server returns the server_label of a tool's calls: the MCP server's name
// for its tools, hermes.AgentServer for the built-in ones.
func (r *Registry) Server(name string) string {
	server, _ := r.Origin(name)
	return server
}

// Origin returns who runs a tool and its name there: an MCP server's name
// and the tool's own name for its tools, hermes.AgentServer and "" for the
// built-in ones.
func (r *Registry) Origin(name string) (server, tool string) {
	if o, ok := r.set.Load().servers[name]; ok {
		return o.server, o.tool
	}
	return hermes.AgentServer, ""
}

// Names returns the enabled tool names, sorted.
func (r *Registry) Names() []string { return append([]string(nil), r.set.Load().order...) }

// Specs returns the specs of every enabled tool, sorted by name so the
// prompt stays byte-stable for upstream prompt caching. The slice is shared:
// callers must not modify it.
func (r *Registry) Specs() []hermes.ToolSpec {
	specs := r.set.Load().specs
	return specs[:len(specs):len(specs)]
}

// Selector returns an enable func for NewRegistry from HERMES_TOOLS (a comma
// list of names to keep; empty keeps all) and HERMES_DISABLED_TOOLS. An
// entry may be a pattern (path.Match: mcp_github_* selects one MCP
// server's tools).
func Selector(only, disabled []string) func(string) bool {
	in := func(list []string, name string) bool {
		for _, n := range list {
			if ok, _ := path.Match(strings.TrimSpace(n), name); ok {
				return true
			}
		}
		return false
	}
	return func(name string) bool {
		if len(only) > 0 && !in(only, name) {
			return false
		}
		return !in(disabled, name)
	}
}

// Masked returns tools whose results and progress labels pass through mask
// (redact.Known's String) before the model, the client or the store sees
// them. Wrapping the tools, rather than each tool masking its own output,
// keeps one place that no tool, present or future, can forget.
func Masked(tools []Tool, mask func(string) string) []Tool {
	out := make([]Tool, len(tools))
	for i, t := range tools {
		out[i] = masked{Tool: t, mask: mask}
	}
	return out
}

type masked struct {
	Tool
	mask func(string) string
}

func (m masked) Run(ctx context.Context, call Call) string { return m.mask(m.Tool.Run(ctx, call)) }

func (m masked) Label(args []byte) string { return m.mask(m.Tool.Label(args)) }

// Server keeps the wrapped tool's server label visible through the mask.
func (m masked) Server() string {
	if sv, ok := m.Tool.(Served); ok {
		return sv.Server()
	}
	return hermes.AgentServer
}

// ServerTool keeps the wrapped tool's name on its server visible too.
func (m masked) ServerTool() string {
	if sv, ok := m.Tool.(Served); ok {
		return sv.ServerTool()
	}
	return ""
}
