package files

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/tooling"
)

func searchTree(t *testing.T) Options {
	t.Helper()
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{
		"a.go":                "package a\nfunc Foo() {}\n",
		"b.txt":               "foo\nFoo and Foo\n",
		"sub/c.go":            "func Foo() { Foo() }\n",
		"sub/deep/d.md":       "no match here\n",
		".git/config":         "Foo",
		"node_modules/x/y.js": "Foo",
		"bin.dat":             "Foo\x00",
		".env":                "FOO=Foo",
		"conf/.aws/creds":     "Foo",
		"keys/k.pem":          "-----BEGIN PRIVATE KEY-----\nFoo\n-----END PRIVATE KEY-----\n",
		"crlf.txt":            "Foo\r\nbar\r\n",
	})
	big := strings.Repeat("x", maxSearchFile) + "\nFoo\n"
	writeFiles(t, opts.Workspace, map[string]string{"big.log": big})
	out := realTemp(t)
	writeFiles(t, out, map[string]string{"secret.txt": "Foo"})
	if err := os.Symlink(out, filepath.Join(opts.Workspace, "ext")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(out, "secret.txt"), filepath.Join(opts.Workspace, "link.txt")); err != nil {
		t.Fatal(err)
	}
	return opts
}

type contentOut struct {
	Matches   []Match `json:"matches"`
	Total     int     `json:"total"`
	Truncated bool    `json:"truncated"`
	Hint      string  `json:"hint"`
	Error     string  `json:"error"`
}

func runSearch(t *testing.T, tool *SearchTool, args string) contentOut {
	t.Helper()
	var r contentOut
	if err := json.Unmarshal([]byte(tool.Run(context.Background(), tooling.Call{Args: []byte(args)})), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func where(ms []Match) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s:%d", m.Path, m.Line)
	}
	return strings.Join(s, " ")
}

func TestSearchContent(t *testing.T) {
	tool := NewSearchTool(searchTree(t))
	tests := []struct {
		name, args, want string
		total            int
		truncated        bool
	}{
		{"all", `{"pattern":"Foo"}`, "a.go:2 b.txt:2 crlf.txt:1 sub/c.go:1", 4, false},
		{"glob", `{"pattern":"Foo","glob":"*.go"}`, "a.go:2 sub/c.go:1", 2, false},
		{"subdir", `{"pattern":"Foo","path":"sub"}`, "sub/c.go:1", 1, false},
		{"one file", `{"pattern":"Foo","path":"sub/c.go"}`, "sub/c.go:1", 1, false},
		{"page", `{"pattern":"Foo","limit":2,"offset":1}`, "b.txt:2 crlf.txt:1", 4, true},
		{"past end", `{"pattern":"Foo","offset":10}`, "", 4, false},
		{"case", `{"pattern":"(?i)^foo$"}`, "b.txt:1 crlf.txt:1", 2, false},
		{"anchored", `{"pattern":"^func"}`, "a.go:2 sub/c.go:1", 2, false},
		{"end anchor", `{"pattern":"\\{\\}$"}`, "a.go:2", 1, false},
		{"none", `{"pattern":"zzz"}`, "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runSearch(t, tool, tc.args)
			if r.Error != "" {
				t.Fatal(r.Error)
			}
			if got := where(r.Matches); got != tc.want || r.Total != tc.total || r.Truncated != tc.truncated {
				t.Fatalf("got %q total %d truncated %v, want %q %d %v", got, r.Total, r.Truncated, tc.want, tc.total, tc.truncated)
			}
		})
	}
	r := runSearch(t, tool, `{"pattern":"Foo","limit":1}`)
	if r.Matches[0].Text != "func Foo() {}" || !strings.Contains(r.Hint, "offset=1") {
		t.Errorf("match %+v hint %q", r.Matches[0], r.Hint)
	}
	if r := runSearch(t, tool, `{"pattern":"Foo","path":"crlf.txt"}`); r.Matches[0].Text != "Foo" {
		t.Errorf("CRLF line text %q", r.Matches[0].Text)
	}
}

func TestSearchFiles(t *testing.T) {
	tool := NewSearchTool(searchTree(t))
	tests := []struct{ args, want string }{
		{`{"pattern":"\\.go$","target":"files"}`, "a.go sub/c.go"},
		{`{"pattern":".","target":"files"}`, "a.go b.txt big.log bin.dat crlf.txt keys/k.pem sub/c.go sub/deep/d.md"},
		{`{"pattern":"^sub/","target":"files","glob":"*.md"}`, "sub/deep/d.md"},
		{`{"pattern":".","target":"files","limit":2,"offset":2}`, "big.log bin.dat"},
	}
	for _, tc := range tests {
		var r struct {
			Files []string `json:"files"`
			Total int      `json:"total"`
			Error string   `json:"error"`
		}
		if err := json.Unmarshal([]byte(tool.Run(context.Background(), tooling.Call{Args: []byte(tc.args)})), &r); err != nil || r.Error != "" {
			t.Fatalf("%s: %v %s", tc.args, err, r.Error)
		}
		if got := strings.Join(r.Files, " "); got != tc.want {
			t.Errorf("%s: files %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestSearchRefusals(t *testing.T) {
	tool := NewSearchTool(searchTree(t))
	tests := []struct{ args, want string }{
		{`{"pattern":"("}`, "invalid pattern"},
		{`{}`, "pattern is required"},
		{`{"pattern":"x","target":"dirs"}`, "target must be"},
		{`{"pattern":"x","glob":"["}`, "invalid glob"},
		{`{"pattern":"x","path":"ext"}`, "path escapes the workspace"},
		{`{"pattern":"x","path":"../"}`, "path escapes the workspace"},
		{`{"pattern":"x","path":"conf/.aws"}`, "credential"},
		{`{"pattern":"x","path":"missing"}`, "cannot search missing"},
		{`{"pattern":"x","limit":-1}`, "positive"},
	}
	for _, tc := range tests {
		if r := runSearch(t, tool, tc.args); !strings.Contains(r.Error, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.args, r.Error, tc.want)
		}
	}
}

func TestSearchBounded(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{"many.txt": strings.Repeat("hit\n", maxSearchCount+50), "z.txt": "hit\n"})
	r := runSearch(t, NewSearchTool(opts), `{"pattern":"hit","limit":1000}`)
	if r.Total != maxSearchCount || !r.Truncated || len(r.Matches) != maxSearchLimit || !strings.Contains(r.Hint, "stopped counting") {
		t.Fatalf("total %d truncated %v matches %d hint %q", r.Total, r.Truncated, len(r.Matches), r.Hint)
	}
	long := strings.Repeat("a", 1000) + "hit"
	writeFiles(t, opts.Workspace, map[string]string{"many.txt": long})
	r = runSearch(t, NewSearchTool(opts), `{"pattern":"hit","path":"many.txt"}`)
	if len(r.Matches) != 1 || len(r.Matches[0].Text) > maxMatchText+10 {
		t.Fatalf("long line not capped: %d bytes", len(r.Matches[0].Text))
	}
}

func TestSearchCancelled(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{"a.txt": "x"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := NewSearchTool(opts).Run(ctx, tooling.Call{Args: []byte(`{"pattern":"x"}`)})
	if !strings.Contains(out, "search cancelled") {
		t.Fatalf("result %s", out)
	}
}

func TestSearchLabel(t *testing.T) {
	tool := NewSearchTool(testOpts(t))
	for args, want := range map[string]string{
		`{"pattern":"func New"}`:                         "func New",
		`{"pattern":"TODO","glob":"*.go"}`:               "TODO (*.go)",
		`{"pattern":""}`:                                 "search_files",
		`{"pattern":["x"]}`:                              "search_files",
		`{"pattern":"` + strings.Repeat("a", 200) + `"}`: strings.Repeat("a", 79) + "…",
	} {
		if got := tool.Label([]byte(args)); got != want {
			t.Errorf("Label(%s) = %q, want %q", args, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	want := map[string]string{"read_file": "📖", "write_file": "✍️", "patch": "🔧", "search_files": "🔎"}
	tools := New(testOpts(t))
	if len(tools) != len(want) {
		t.Fatalf("%d tools", len(tools))
	}
	for _, tool := range tools {
		spec := tool.Spec()
		if want[spec.Name] != tool.Emoji() {
			t.Errorf("%s: emoji %q", spec.Name, tool.Emoji())
		}
		var schema struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		if err := json.Unmarshal(spec.Parameters, &schema); err != nil || schema.Type != "object" || len(schema.Required) == 0 {
			t.Errorf("%s: bad schema: %v", spec.Name, err)
		}
		for _, r := range schema.Required {
			if _, ok := schema.Properties[r]; !ok {
				t.Errorf("%s: required %q is not a property", spec.Name, r)
			}
		}
		if tool.Label(nil) != spec.Name {
			t.Errorf("%s: Label(nil) = %q", spec.Name, tool.Label(nil))
		}
	}
}

// BenchmarkSearch searches 400 generated source files of 200 lines each.
func BenchmarkSearch(b *testing.B) {
	opts := testOpts(b)
	files := map[string]string{}
	for i := 0; i < 400; i++ {
		var s strings.Builder
		for l := 0; l < 200; l++ {
			fmt.Fprintf(&s, "func f%d_%d(x int) int { return x * %d } // filler text\n", i, l, l)
		}
		if i%10 == 0 {
			s.WriteString("// TODO: needle here\n")
		}
		files[fmt.Sprintf("pkg%02d/file%03d.go", i%20, i)] = s.String()
	}
	writeFiles(b, opts.Workspace, files)
	tool := NewSearchTool(opts)
	for _, bc := range []struct{ name, args string }{
		{"literal", `{"pattern":"TODO: needle"}`},
		{"anchored", `{"pattern":"^// TODO"}`},
		{"files", `{"pattern":"file1\\d+\\.go$","target":"files"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				out := tool.Run(context.Background(), tooling.Call{Args: []byte(bc.args)})
				if !strings.Contains(out, `"total":`) || strings.Contains(out, `"total":0`) {
					b.Fatal(out)
				}
			}
		})
	}
}
