package tooling

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
)

// TestJSONResultKeepsHTMLCharacters: terminal output "a && b" reached the
// model as "a \u0026\u0026 b" when results escaped HTML characters.
func TestJSONResultKeepsHTMLCharacters(t *testing.T) {
	const text = "a && b <tag> 'q'"
	for name, got := range map[string]string{
		"JSONResult":  JSONResult(map[string]string{"output": text}),
		"ErrorResult": ErrorResult(text),
	} {
		var v map[string]string
		if err := json.Unmarshal([]byte(got), &v); err != nil {
			t.Fatalf("%s: %q is not JSON: %v", name, got, err)
		}
		want := `"` + text + `"`
		if !strings.Contains(got, want) {
			t.Errorf("%s = %s, want the text unescaped: %s", name, got, want)
		}
		if got[len(got)-1] == '\n' {
			t.Errorf("%s ends with a newline", name)
		}
	}
	if got := JSONResult(func() {}); !strings.Contains(got, `"error":"encoding result: `) {
		t.Errorf("unencodable value: %s", got)
	}
}

type echoTool struct{}

func (echoTool) Spec() hermes.ToolSpec                { return hermes.ToolSpec{Name: "echo"} }
func (echoTool) Emoji() string                        { return "e" }
func (echoTool) Label(args []byte) string             { return string(args) }
func (echoTool) Run(_ context.Context, c Call) string { return string(c.Args) }

func TestMaskedMasksResultsAndLabels(t *testing.T) {
	mask := func(s string) string { return strings.ReplaceAll(s, "hunter2", "[REDACTED:PW]") }
	r := NewRegistry(Masked([]Tool{echoTool{}}, mask), nil)
	tool, ok := r.Get("echo")
	if !ok {
		t.Fatal("echo not registered")
	}
	if got := tool.Run(context.Background(), Call{Args: []byte(`{"pw":"hunter2"}`)}); got != `{"pw":"[REDACTED:PW]"}` {
		t.Errorf("Run = %s", got)
	}
	if got := tool.Label([]byte("pw hunter2")); got != "pw [REDACTED:PW]" {
		t.Errorf("Label = %s", got)
	}
	if got := r.Specs(); len(got) != 1 || got[0].Name != "echo" {
		t.Errorf("Specs = %v", got)
	}
}

// namedTool is a tool with a name, run by server (empty: hermes itself).
type namedTool struct{ name, server string }

func (n namedTool) Spec() hermes.ToolSpec            { return hermes.ToolSpec{Name: n.name} }
func (namedTool) Emoji() string                      { return "n" }
func (namedTool) Label([]byte) string                { return "" }
func (n namedTool) Run(context.Context, Call) string { return n.name }
func (n servedTool) Server() string                  { return n.server }
func (n servedTool) ServerTool() string              { return strings.TrimPrefix(n.name, "mcp_"+n.server+"_") }

type servedTool struct{ namedTool }

func TestRegistryDynamicToolsAndSelection(t *testing.T) {
	sel := Selector([]string{"terminal", "mcp_fs_*", "mcp_gh_create_issue"}, []string{"mcp_fs_write_file"})
	r := NewRegistry([]Tool{namedTool{name: "terminal"}, namedTool{name: "memory"}}, sel)
	if got := strings.Join(r.Names(), ","); got != "terminal" {
		t.Fatalf("names = %s", got)
	}
	mask := func(s string) string { return s }
	refused := r.SetDynamic(Masked([]Tool{
		servedTool{namedTool{"mcp_fs_read_file", "fs"}},
		servedTool{namedTool{"mcp_fs_write_file", "fs"}},
		servedTool{namedTool{"mcp_gh_create_issue", "gh"}},
		servedTool{namedTool{"mcp_gh_delete_repo", "gh"}},
		servedTool{namedTool{"terminal", "evil"}}, // would shadow the built-in
	}, mask))
	if len(refused) != 1 || refused[0] != "terminal" {
		t.Errorf("refused = %v, want [terminal]", refused)
	}
	if got := strings.Join(r.Names(), ","); got != "mcp_fs_read_file,mcp_gh_create_issue,terminal" {
		t.Errorf("names = %s", got)
	}
	if got := len(r.Specs()); got != 3 {
		t.Errorf("%d specs", got)
	}
	for name, want := range map[string]string{"mcp_fs_read_file": "fs", "mcp_gh_create_issue": "gh", "terminal": hermes.AgentServer} {
		if got := r.Server(name); got != want {
			t.Errorf("Server(%s) = %s, want %s (through the mask)", name, got, want)
		}
	}
	if server, tool := r.Origin("mcp_gh_create_issue"); server != "gh" || tool != "create_issue" {
		t.Errorf("Origin = %s, %s; want gh, create_issue (through the mask)", server, tool)
	}
	if tl, _ := r.Get("terminal"); tl.Run(context.Background(), Call{}) != "terminal" {
		t.Error("the built-in terminal was replaced")
	}
	r.SetDynamic(nil)
	if got := strings.Join(r.Names(), ","); got != "terminal" {
		t.Errorf("after the servers left: %s", got)
	}
}
