package tooling

import (
	"encoding/json"
	"strings"
	"testing"
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
