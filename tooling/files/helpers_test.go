package files

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hermesd/hermesd/tooling"
)

// realTemp returns a fresh temporary directory with symlinks resolved, so
// paths compare equal to what the jail returns.
func realTemp(t testing.TB) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeFiles creates files (relative path → content) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testOpts returns options for a fresh workspace and a separate home.
func testOpts(t testing.TB) Options {
	return Options{Workspace: realTemp(t), Home: realTemp(t)}
}

// run calls tool with args and decodes its JSON result.
func run(t testing.TB, tool tooling.Tool, args string) map[string]any {
	t.Helper()
	out := tool.Run(context.Background(), tooling.Call{ID: "call_1", Args: []byte(args)})
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("result is not a JSON object: %v: %s", err, out)
	}
	return m
}

// mustOK fails the test when the result is an error result.
func mustOK(t testing.TB, m map[string]any) map[string]any {
	t.Helper()
	if e, ok := m["error"]; ok {
		t.Fatalf("unexpected error result: %v", e)
	}
	return m
}

// errOf returns the error text of a result, failing when there is none.
func errOf(t testing.TB, m map[string]any) string {
	t.Helper()
	e, ok := m["error"].(string)
	if !ok {
		t.Fatalf("expected an error result, got %v", m)
	}
	return e
}

func args(t testing.TB, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
