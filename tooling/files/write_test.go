package files

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestWriteCreatesParents(t *testing.T) {
	opts := testOpts(t)
	tool := NewWriteTool(opts)
	m := mustOK(t, run(t, tool, `{"path":"a/b/c/new.txt","content":"héllo\n"}`))
	if m["path"] != "a/b/c/new.txt" || m["bytes_written"] != 7.0 {
		t.Fatalf("result %v", m)
	}
	p := filepath.Join(opts.Workspace, "a", "b", "c", "new.txt")
	if got := readFile(t, p); got != "héllo\n" {
		t.Fatalf("content %q", got)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	mustOK(t, run(t, tool, `{"path":"empty.txt","content":""}`))
	if got := readFile(t, filepath.Join(opts.Workspace, "empty.txt")); got != "" {
		t.Fatalf("empty file holds %q", got)
	}
}

// TestWriteEnvLikeNames: files whose names start with "env" are not .env
// files; write_file refused them while its temporary file was named
// ".<name>…", which the deny list reads as a .env file.
func TestWriteEnvLikeNames(t *testing.T) {
	opts := testOpts(t)
	tool := NewWriteTool(opts)
	for _, name := range []string{"environment.yml", "env", "envoy.yaml"} {
		mustOK(t, run(t, tool, `{"path":"`+name+`","content":"x"}`))
		if got := readFile(t, filepath.Join(opts.Workspace, name)); got != "x" {
			t.Fatalf("%s holds %q", name, got)
		}
	}
	if m := run(t, tool, `{"path":".env","content":"x"}`); !strings.Contains(fmt.Sprint(m), "denied") {
		t.Fatalf(".env written: %v", m)
	}
}

// TestWriteReplacesAtomically checks the file is replaced by a rename, not
// rewritten in place: a reader holding the old file still sees all of the
// old content, the mode is kept, and no temporary file is left behind.
func TestWriteReplacesAtomically(t *testing.T) {
	opts := testOpts(t)
	p := filepath.Join(opts.Workspace, "run.sh")
	if err := os.WriteFile(p, []byte("old content\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o750); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	mustOK(t, run(t, NewWriteTool(opts), `{"path":"run.sh","content":"new"}`))

	if got := readFile(t, p); got != "new" {
		t.Fatalf("content %q", got)
	}
	buf := make([]byte, 64)
	n, _ := held.Read(buf)
	if string(buf[:n]) != "old content\n" {
		t.Fatalf("old handle reads %q: file was rewritten in place", buf[:n])
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("mode %v, %v; want 0750 kept", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(opts.Workspace)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only run.sh", len(entries))
	}
}

func TestWriteRefusals(t *testing.T) {
	opts := testOpts(t)
	out := realTemp(t)
	if err := os.Symlink(out, filepath.Join(opts.Workspace, "ext")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, opts.Workspace, map[string]string{"dir/x": "x"})
	tool := NewWriteTool(opts)
	tests := []struct{ args, want string }{
		{`{"path":"ext/new.txt","content":"x"}`, "path escapes the workspace through a symlink"},
		{`{"path":"../new.txt","content":"x"}`, "path escapes the workspace"},
		{`{"path":".env","content":"x"}`, "access to credential files is denied"},
		{`{"path":".ssh/authorized_keys","content":"x"}`, "access to credential files is denied"},
		{`{"path":"dir","content":"x"}`, "is a directory"},
		{`{"path":"a.txt"}`, "content is required"},
		{`{"path":"a.txt","content":1}`, "invalid tool arguments"},
	}
	for _, tc := range tests {
		if e := errOf(t, run(t, tool, tc.args)); !strings.Contains(e, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.args, e, tc.want)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a file was created outside the workspace")
	}
	if entries, _ := os.ReadDir(filepath.Join(opts.Workspace, "dir")); len(entries) != 1 {
		t.Errorf("a temporary file was left behind: %v", entries)
	}
	for _, name := range []string{".env", ".ssh", "a.txt"} {
		if _, err := os.Lstat(filepath.Join(opts.Workspace, name)); err == nil {
			t.Errorf("%s was created", name)
		}
	}
}

func TestWriteLabel(t *testing.T) {
	tool := NewWriteTool(testOpts(t))
	for args, want := range map[string]string{
		`{"path":"docs/a.md","content":"x"}`: "docs/a.md",
		`{"content":"x"}`:                    "write_file",
		`[1,2]`:                              "write_file",
	} {
		if got := tool.Label([]byte(args)); got != want {
			t.Errorf("Label(%s) = %q, want %q", args, got, want)
		}
	}
}

// TestConcurrentPatches runs many patches of one file at once, as the agent
// does when a model asks for several edits in one step: none may be lost.
func TestConcurrentPatches(t *testing.T) {
	opts := testOpts(t)
	const n = 20
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "item %02d: todo\n", i)
	}
	writeFiles(t, opts.Workspace, map[string]string{"list.txt": b.String()})
	tool := NewPatchTool(opts)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mustOK(t, run(t, tool, fmt.Sprintf(`{"path":"list.txt","old_string":"item %02d: todo","new_string":"item %02d: done"}`, i, i)))
		}()
	}
	wg.Wait()
	got := readFile(t, filepath.Join(opts.Workspace, "list.txt"))
	if c := strings.Count(got, ": done"); c != n {
		t.Fatalf("%d of %d edits survived:\n%s", c, n, got)
	}
	if len(pathLocks.m) != 0 {
		t.Errorf("%d path locks left behind", len(pathLocks.m))
	}
}
