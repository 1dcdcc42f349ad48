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
