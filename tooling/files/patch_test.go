package files

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goSrc = `package demo

func add(a, b int) int {
	return a + b
}

func sub(a, b int) int {
	return a - b
}
`

func TestPatchUnique(t *testing.T) {
	opts := testOpts(t)
	p := filepath.Join(opts.Workspace, "demo.go")
	writeFiles(t, opts.Workspace, map[string]string{"demo.go": goSrc})
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	m := mustOK(t, run(t, NewPatchTool(opts), `{"path":"demo.go","old_string":"return a - b","new_string":"return a - b - 0"}`))
	wantDiff := "--- a/demo.go\n+++ b/demo.go\n@@ -5,5 +5,5 @@\n }\n \n func sub(a, b int) int {\n-\treturn a - b\n+\treturn a - b - 0\n }\n"
	if m["path"] != "demo.go" || m["replacements"] != 1.0 || m["diff"] != wantDiff {
		t.Fatalf("result %v\ndiff:\n%s", m, m["diff"])
	}
	if got := readFile(t, p); got != strings.Replace(goSrc, "a - b", "a - b - 0", 1) {
		t.Fatalf("file:\n%s", got)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode())
	}
}

func TestPatchMultiple(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{"demo.go": goSrc})
	tool := NewPatchTool(opts)
	e := errOf(t, run(t, tool, `{"path":"demo.go","old_string":"(a, b int) int","new_string":"(a, b int64) int64"}`))
	if !strings.Contains(e, "matches 2 times") || !strings.Contains(e, "lines 3, 7") || !strings.Contains(e, "replace_all") {
		t.Fatalf("error %q", e)
	}
	if got := readFile(t, filepath.Join(opts.Workspace, "demo.go")); got != goSrc {
		t.Fatal("a refused patch changed the file")
	}
	m := mustOK(t, run(t, tool, `{"path":"demo.go","old_string":"(a, b int) int","new_string":"(a, b int64) int64","replace_all":true}`))
	if m["replacements"] != 2.0 || strings.Count(m["diff"].(string), "\n+func") != 2 {
		t.Fatalf("result %v", m)
	}
	if got := readFile(t, filepath.Join(opts.Workspace, "demo.go")); strings.Count(got, "int64) int64") != 2 {
		t.Fatalf("file:\n%s", got)
	}
}

func TestPatchNotFoundHints(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{"demo.go": goSrc})
	tool := NewPatchTool(opts)
	tests := []struct {
		name, old, want string
	}{
		{"indentation", "func sub(a, b int) int {\n    return a - b\n}", "differs only in whitespace or indentation starts at line 7"},
		{"one line spaces", "return  a + b", "starts at line 4"},
		{"line numbers", "   4|\treturn a + b\n   5|}", "line-number prefixes"},
		{"first line only", "func sub(a, b int) int {\n\treturn b - a\n}", "first line appears at line 7"},
		{"stale", "func mul(a, b int) int {", "re-read it with read_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := errOf(t, run(t, tool, args(t, map[string]any{"path": "demo.go", "old_string": tc.old, "new_string": "x"})))
			if !strings.HasPrefix(e, "old_string was not found in demo.go") || !strings.Contains(e, tc.want) {
				t.Fatalf("error %q, want %q", e, tc.want)
			}
		})
	}
}

func TestPatchCRLF(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{"w.txt": "one\r\ntwo\r\nthree\r\n"})
	m := mustOK(t, run(t, NewPatchTool(opts), `{"path":"w.txt","old_string":"one\ntwo","new_string":"one\n2"}`))
	if m["replacements"] != 1.0 {
		t.Fatalf("result %v", m)
	}
	if got := readFile(t, filepath.Join(opts.Workspace, "w.txt")); got != "one\r\n2\r\nthree\r\n" {
		t.Fatalf("file %q: CRLF endings not kept", got)
	}
}

func TestPatchRefusals(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{
		"demo.go": goSrc,
		"bin.dat": "a\x00b",
		"key.pem": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
		".env":    "A=1",
	})
	tool := NewPatchTool(opts)
	tests := []struct{ args, want string }{
		{`{"path":"demo.go","old_string":"","new_string":"x"}`, "old_string is required"},
		{`{"path":"demo.go","old_string":"add"}`, "new_string is required"},
		{`{"path":"demo.go","old_string":"add","new_string":"add"}`, "identical"},
		{`{"path":"nope.go","old_string":"a","new_string":"b"}`, "use write_file"},
		{`{"path":"dem.go","old_string":"a","new_string":"b"}`, "Similar files: demo.go"},
		{`{"path":"bin.dat","old_string":"a","new_string":"b"}`, "binary"},
		{`{"path":"key.pem","old_string":"abc","new_string":"b"}`, "private key"},
		{`{"path":".env","old_string":"A","new_string":"B"}`, "access to credential files is denied"},
		{`{"path":"/etc/hosts","old_string":"a","new_string":"b"}`, "path escapes the workspace"},
		{`{"path":"demo.go","old_string":"add","new_string":"x","replace_all":"yes"}`, "invalid tool arguments"},
	}
	for _, tc := range tests {
		if e := errOf(t, run(t, tool, tc.args)); !strings.Contains(e, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.args, e, tc.want)
		}
	}
	if got := readFile(t, filepath.Join(opts.Workspace, "demo.go")); got != goSrc {
		t.Error("a refused patch changed demo.go")
	}
}

func TestPatchDelete(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{"demo.go": goSrc})
	m := mustOK(t, run(t, NewPatchTool(opts), `{"path":"demo.go","old_string":"\nfunc sub(a, b int) int {\n\treturn a - b\n}\n","new_string":""}`))
	if m["diff"] != "--- a/demo.go\n+++ b/demo.go\n@@ -3,7 +3,3 @@\n func add(a, b int) int {\n \treturn a + b\n }\n-\n-func sub(a, b int) int {\n-\treturn a - b\n-}\n" {
		t.Fatalf("diff:\n%s", m["diff"])
	}
}

func TestPatchLabel(t *testing.T) {
	tool := NewPatchTool(testOpts(t))
	for args, want := range map[string]string{
		`{"path":"x/y.go","old_string":"a","new_string":"b"}`: "x/y.go",
		`{"old_string":"a"}`: "patch",
		`"str"`:              "patch",
	} {
		if got := tool.Label([]byte(args)); got != want {
			t.Errorf("Label(%s) = %q, want %q", args, got, want)
		}
	}
}
