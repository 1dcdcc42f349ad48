package files

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermesd/hermesd/tooling"
)

const secretText = "SECRETVALUE-0f9e"

// credentialFiles are files every file tool must refuse, and search must
// never show, with the workspace at the user's home.
var credentialFiles = []string{
	".azure/accessTokens.json", ".config/gcloud/credentials.db", ".kube/config", ".kube/cache/token",
	".docker/config.json", ".ssh/config", ".gnupg/pubring.kbx", ".aws/credentials", "cfg/credentials",
	"prod.env", "deploy/staging.env", ".env", ".env.local", ".envrc", ".netrc", ".pgpass",
	".local/share/keyrings/login.keyring", "vault.kdbx", "app/credentials.json",
}

// TestDenyEveryTool: with the workspace at the home, search_files used to
// return secrets from .azure/, .config/gcloud/, .kube/ and .docker/ that
// read_file refused. One deny check now covers every tool.
func TestDenyEveryTool(t *testing.T) {
	ws := realTemp(t)
	opts := Options{Workspace: ws, Home: ws}
	files := map[string]string{"notes.txt": secretText + "\n", ".env.example": "KEY=" + secretText + "\n"}
	for _, f := range credentialFiles {
		files[f] = secretText + "\n"
	}
	writeFiles(t, ws, files)
	read, write, patch, search := NewReadTool(opts), NewWriteTool(opts), NewPatchTool(opts), NewSearchTool(opts)

	for _, f := range credentialFiles {
		for name, res := range map[string]map[string]any{
			"read_file":  run(t, read, args(t, map[string]any{"path": f})),
			"write_file": run(t, write, args(t, map[string]any{"path": f, "content": "x"})),
			"patch":      run(t, patch, args(t, map[string]any{"path": f, "old_string": secretText, "new_string": "y"})),
			"search":     run(t, search, args(t, map[string]any{"pattern": ".", "path": f})),
		} {
			if e := errOf(t, res); !strings.Contains(e, "access to credential files is denied") {
				t.Errorf("%s %s: %q", name, f, e)
			}
		}
		if got := readFile(t, filepath.Join(ws, f)); got != secretText+"\n" {
			t.Errorf("%s was changed to %q", f, got)
		}
	}

	content := mustOK(t, run(t, search, `{"pattern":"SECRETVALUE"}`))
	var paths []string
	for _, m := range content["matches"].([]any) {
		paths = append(paths, m.(map[string]any)["path"].(string))
	}
	slices.Sort(paths)
	if !slices.Equal(paths, []string{".env.example", "notes.txt"}) {
		t.Errorf("content search found %v, want only .env.example and notes.txt", paths)
	}
	names := mustOK(t, run(t, search, `{"pattern":".","target":"files","limit":500}`))
	for _, f := range names["files"].([]any) {
		if f != "notes.txt" && f != ".env.example" {
			t.Errorf("file search listed %v", f)
		}
	}
}

// TestPrivateDirectory: HERMES_HOME inside the workspace is out of reach of
// every file tool; writing its SOUL.md used to change the system prompt.
func TestPrivateDirectory(t *testing.T) {
	ws := realTemp(t)
	hermesHome := filepath.Join(ws, "state")
	writeFiles(t, ws, map[string]string{"state/SOUL.md": "be kind " + secretText, "state/memories/MEMORY.md": secretText, "a.txt": "a"})
	if err := os.Symlink("state", filepath.Join(ws, "alias")); err != nil {
		t.Fatal(err)
	}
	opts := Options{Workspace: ws, Home: realTemp(t), Private: []string{hermesHome}}
	read, write, patch, search := NewReadTool(opts), NewWriteTool(opts), NewPatchTool(opts), NewSearchTool(opts)
	for _, p := range []string{"state/SOUL.md", "alias/SOUL.md", filepath.Join(hermesHome, "SOUL.md"), "state/new.md"} {
		for name, res := range map[string]map[string]any{
			"read_file":  run(t, read, args(t, map[string]any{"path": p})),
			"write_file": run(t, write, args(t, map[string]any{"path": p, "content": "obey the page"})),
			"patch":      run(t, patch, args(t, map[string]any{"path": p, "old_string": "be kind", "new_string": "obey"})),
		} {
			if e := errOf(t, res); !strings.Contains(e, "access to credential files is denied") {
				t.Errorf("%s %s: %q", name, p, e)
			}
		}
	}
	if got := readFile(t, filepath.Join(hermesHome, "SOUL.md")); got != "be kind "+secretText {
		t.Fatalf("SOUL.md changed: %q", got)
	}
	if _, err := os.Stat(filepath.Join(hermesHome, "new.md")); err == nil {
		t.Fatal("a file was created in HERMES_HOME")
	}
	res := mustOK(t, run(t, search, `{"pattern":"SECRETVALUE"}`))
	if n := res["total"].(float64); n != 0 {
		t.Fatalf("search found HERMES_HOME content: %v", res)
	}
	if e := errOf(t, run(t, search, `{"pattern":".","path":"state"}`)); !strings.Contains(e, "denied") {
		t.Fatalf("search in HERMES_HOME: %q", e)
	}
}

// within5s runs f and fails the test if it does not return in time: a
// FIFO used to block open() for ever.
func within5s(t *testing.T, what string, f func() string) string {
	t.Helper()
	done := make(chan string, 1)
	go func() { done <- f() }()
	select {
	case out := <-done:
		return out
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked", what)
		return ""
	}
}

// TestFIFONeverBlocks: read_file or patch on a named pipe blocked in open,
// holding the turn for ever.
func TestFIFONeverBlocks(t *testing.T) {
	opts := testOpts(t)
	pipe := filepath.Join(opts.Workspace, "pipe")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	writeFiles(t, opts.Workspace, map[string]string{"a.txt": "hello"})
	calls := map[string]struct {
		tool tooling.Tool
		args string
	}{
		"read_file":  {NewReadTool(opts), `{"path":"pipe"}`},
		"patch":      {NewPatchTool(opts), `{"path":"pipe","old_string":"a","new_string":"b"}`},
		"write_file": {NewWriteTool(opts), `{"path":"pipe","content":"x"}`},
		"search":     {NewSearchTool(opts), `{"pattern":"hello","path":"pipe"}`},
	}
	for name, c := range calls {
		out := within5s(t, name, func() string {
			return c.tool.Run(context.Background(), tooling.Call{Args: []byte(c.args)})
		})
		if name == "search" {
			// A FIFO as the search path is no file to search: nothing found.
			if !strings.Contains(out, `"total":0`) {
				t.Errorf("search: %s", out)
			}
			continue
		}
		if !strings.Contains(out, "pipe is not a regular file (a named pipe)") {
			t.Errorf("%s: %s", name, out)
		}
	}
	if fi, err := os.Lstat(pipe); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi, err)
	}
	out := within5s(t, "search", func() string {
		return NewSearchTool(opts).Run(context.Background(), tooling.Call{Args: []byte(`{"pattern":"hello"}`)})
	})
	if !strings.Contains(out, `"path":"a.txt"`) {
		t.Fatalf("search of the workspace: %s", out)
	}
}

// TestHardLinksRefused: a hard link may reach a file outside the workspace
// (or a credential file inside it) under an innocent name.
func TestHardLinksRefused(t *testing.T) {
	opts := testOpts(t)
	outside := filepath.Join(realTemp(t), "secret.txt")
	if err := os.WriteFile(outside, []byte(secretText+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, filepath.Join(opts.Workspace, "innocent.txt")); err != nil {
		t.Skipf("hard link across temp dirs: %v", err)
	}
	read, write, patch, search := NewReadTool(opts), NewWriteTool(opts), NewPatchTool(opts), NewSearchTool(opts)
	for name, res := range map[string]map[string]any{
		"read_file":  run(t, read, `{"path":"innocent.txt"}`),
		"write_file": run(t, write, `{"path":"innocent.txt","content":"x"}`),
		"patch":      run(t, patch, `{"path":"innocent.txt","old_string":"SECRET","new_string":"y"}`),
	} {
		if e := errOf(t, res); !strings.Contains(e, "innocent.txt has 2 hard links") || !strings.Contains(e, "HERMES_FILES_ALLOW_HARDLINKS=true") {
			t.Errorf("%s: %q", name, e)
		}
	}
	if res := mustOK(t, run(t, search, `{"pattern":"SECRETVALUE"}`)); res["total"].(float64) != 0 {
		t.Errorf("search read the hard link: %v", res)
	}
	if got := readFile(t, outside); got != secretText+"\n" {
		t.Fatalf("the linked file changed: %q", got)
	}

	opts.AllowHardlinks = true
	res := mustOK(t, run(t, NewReadTool(opts), `{"path":"innocent.txt"}`))
	if !strings.Contains(res["content"].(string), secretText) {
		t.Fatalf("with hard links allowed: %v", res)
	}
}

// TestSwapAfterResolve replaces a checked directory with a symlink between
// Resolve and the open, as a racing process would: os.Root keeps the open
// inside the workspace, and the check after the open keeps it off
// credential files inside it.
func TestSwapAfterResolve(t *testing.T) {
	ws, out := realTemp(t), realTemp(t)
	writeFiles(t, ws, map[string]string{"sub/f.txt": "fine", ".ssh/f.txt": secretText})
	writeFiles(t, out, map[string]string{"f.txt": secretText})
	j := Jail{Workspace: ws}
	real, err := j.Resolve("sub/f.txt")
	if err != nil {
		t.Fatal(err)
	}
	swap := func(target string) {
		t.Helper()
		if err := os.RemoveAll(filepath.Join(ws, "sub")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(ws, "sub")); err != nil {
			t.Fatal(err)
		}
	}
	swap(out)
	if f, _, err := j.openRead(real); !errors.Is(err, ErrEscape) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("read through a swapped symlink to outside: %v", err)
	}
	if err := j.writeAtomic(real, []byte("pwned")); err == nil {
		t.Fatal("write through a swapped symlink to outside succeeded")
	}
	if got := readFile(t, filepath.Join(out, "f.txt")); got != secretText {
		t.Fatalf("outside file changed: %q", got)
	}
	swap(".ssh")
	if f, _, err := j.openRead(real); !errors.Is(err, ErrCredential) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("read through a swapped symlink to .ssh: %v", err)
	}
}

func TestSearchGlobs(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{
		"top.go": "x", "a/b/c.go": "x", "a/b/c_test.go": "x", "src/ui/app.ts": "x", "src/ui/app.tsx": "x",
		"other/app.ts": "x", "README.md": "x",
	})
	search := NewSearchTool(opts)
	list := func(glob string) []string {
		t.Helper()
		res := mustOK(t, run(t, search, args(t, map[string]any{"pattern": ".", "target": "files", "glob": glob})))
		var out []string
		for _, f := range res["files"].([]any) {
			out = append(out, f.(string))
		}
		return out
	}
	for glob, want := range map[string][]string{
		"**/*.go":            {"a/b/c.go", "a/b/c_test.go", "top.go"},
		"*.go":               {"a/b/c.go", "a/b/c_test.go", "top.go"},
		"**/*_test.go":       {"a/b/c_test.go"},
		"src/**/*.{ts,tsx}":  {"src/ui/app.ts", "src/ui/app.tsx"},
		"a/*/c.go":           {"a/b/c.go"},
		"*.md":               {"README.md"},
		"nothing/**/*.never": nil,
	} {
		if got := list(glob); !slices.Equal(got, want) {
			t.Errorf("glob %q: %v, want %v", glob, got, want)
		}
	}
	if e := errOf(t, run(t, search, `{"pattern":".","glob":"[a-"}`)); !strings.Contains(e, "invalid glob") {
		t.Errorf("bad glob: %q", e)
	}
	long := strings.Repeat("{a,b}", 60)
	if e := errOf(t, run(t, search, args(t, map[string]any{"pattern": ".", "glob": long}))); !strings.Contains(e, "longer than") {
		t.Errorf("long glob: %q", e)
	}
}
