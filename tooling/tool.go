package tooling

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"

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

// Registry holds the tools the agent may use. It is built once at start-up
// and read concurrently afterwards.
type Registry struct {
	tools map[string]Tool
	order []string
	specs []hermes.ToolSpec // built once: every turn sends them
}

// NewRegistry returns a registry of the given tools, keeping those that
// enable allows (nil allows all).
func NewRegistry(tools []Tool, enable func(name string) bool) *Registry {
	r := &Registry{tools: make(map[string]Tool)}
	for _, t := range tools {
		name := t.Spec().Name
		if enable != nil && !enable(name) {
			continue
		}
		if _, dup := r.tools[name]; !dup {
			r.order = append(r.order, name)
		}
		r.tools[name] = t
	}
	sort.Strings(r.order)
	r.specs = make([]hermes.ToolSpec, 0, len(r.order))
	for _, n := range r.order {
		r.specs = append(r.specs, r.tools[n].Spec())
	}
	return r
}

// Get returns the tool with that name.
func (r *Registry) Get(name string) (Tool, bool) {
	t, ok := r.tools[name]
	return t, ok
}

// Names returns the enabled tool names, sorted.
func (r *Registry) Names() []string { return append([]string(nil), r.order...) }

// Specs returns the specs of every enabled tool, sorted by name so the
// prompt stays byte-stable for upstream prompt caching. The slice is shared:
// callers must not modify it.
func (r *Registry) Specs() []hermes.ToolSpec { return r.specs[:len(r.specs):len(r.specs)] }

// Selector returns an enable func for NewRegistry from HERMES_TOOLS (a comma
// list of names to keep; empty keeps all) and HERMES_DISABLED_TOOLS.
func Selector(only, disabled []string) func(string) bool {
	in := func(list []string, name string) bool {
		for _, n := range list {
			if strings.TrimSpace(n) == name {
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
