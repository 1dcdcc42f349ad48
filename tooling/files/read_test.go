package files

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func numbered(n int, prefix string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

func TestReadPaging(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{"big.txt": numbered(1200, "line")})
	tool := NewReadTool(opts)

	tests := []struct {
		name                   string
		args                   string
		offset, returned       int
		truncated              bool
		first, last, hintMatch string
	}{
		{"default", `{"path":"big.txt"}`, 1, 500, true, "  1|line 1", "500|line 500", "offset=501"},
		{"middle", `{"path":"big.txt","offset":998,"limit":5}`, 998, 5, true, " 998|line 998", "1002|line 1002", "offset=1003"},
		{"tail", `{"path":"big.txt","offset":1101,"limit":500}`, 1101, 100, false, "1101|line 1101", "1200|line 1200", ""},
		{"exact end", `{"path":"big.txt","offset":1200,"limit":1}`, 1200, 1, false, "1200|line 1200", "1200|line 1200", ""},
		{"limit capped", `{"path":"big.txt","limit":5000}`, 1, 1200, false, "   1|line 1", "1200|line 1200", "capped at 2000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustOK(t, run(t, tool, tc.args))
			if m["total_lines"] != 1200.0 || m["offset"] != float64(tc.offset) || m["lines_returned"] != float64(tc.returned) || m["truncated"] != tc.truncated {
				t.Fatalf("got total=%v offset=%v returned=%v truncated=%v", m["total_lines"], m["offset"], m["lines_returned"], m["truncated"])
			}
			lines := strings.Split(strings.TrimSuffix(m["content"].(string), "\n"), "\n")
			if len(lines) != tc.returned || lines[0] != tc.first || lines[len(lines)-1] != tc.last {
				t.Fatalf("got %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
			}
			hint, _ := m["hint"].(string)
			if tc.hintMatch == "" && hint != "" || !strings.Contains(hint, tc.hintMatch) {
				t.Fatalf("hint = %q, want it to contain %q", hint, tc.hintMatch)
			}
		})
	}

	if e := errOf(t, run(t, tool, `{"path":"big.txt","offset":1201}`)); !strings.Contains(e, "past the end") {
		t.Errorf("offset past end: %q", e)
	}
	if e := errOf(t, run(t, tool, `{"path":"big.txt","offset":-1}`)); !strings.Contains(e, "positive") {
		t.Errorf("negative offset: %q", e)
	}
}

func TestReadContent(t *testing.T) {
	opts := testOpts(t)
	long := strings.Repeat("x", 5000)
	wide := strings.Repeat("é", 1500) // 3000 bytes, cut must not split a rune
	writeFiles(t, opts.Workspace, map[string]string{
		"nonl.txt":  "a\nb",
		"nl.txt":    "a\nb\n",
		"empty.txt": "",
		"crlf.txt":  "a\r\nb\r\n",
		"blank.txt": "\n\n",
		"long.txt":  "short\n" + long + "\nend\n",
		"wide.txt":  wide + "\n",
	})
	tool := NewReadTool(opts)
	tests := []struct {
		path    string
		content string
		total   float64
	}{
		{"nonl.txt", "1|a\n2|b\n", 2},
		{"nl.txt", "1|a\n2|b\n", 2},
		{"empty.txt", "", 0},
		{"crlf.txt", "1|a\n2|b\n", 2},
		{"blank.txt", "1|\n2|\n", 2},
		{"long.txt", "1|short\n2|" + strings.Repeat("x", 2000) + " … [line truncated: 5000 bytes]\n3|end\n", 3},
	}
	for _, tc := range tests {
		m := mustOK(t, run(t, tool, `{"path":"`+tc.path+`"}`))
		if m["content"] != tc.content || m["total_lines"] != tc.total {
			t.Errorf("%s: content %q total %v, want %q %v", tc.path, m["content"], m["total_lines"], tc.content, tc.total)
		}
	}
	m := mustOK(t, run(t, tool, `{"path":"wide.txt"}`))
	c := m["content"].(string)
	if !utf8.ValidString(c) || !strings.Contains(c, "[line truncated: 3000 bytes]") || len(c) > 2100 {
		t.Errorf("wide line: valid=%v len=%d", utf8.ValidString(c), len(c))
	}
}

func TestReadRefusals(t *testing.T) {
	opts := testOpts(t)
	row := strings.Repeat("y", 99) + "\n"
	writeFiles(t, opts.Workspace, map[string]string{
		"huge.txt":  strings.Repeat(row, 1500),
		"bin.dat":   "ELF\x00\x01\x02 text after",
		"key.pem":   "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
		"cert.pem":  "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"dir/x.txt": "x",
		".env":      "TOKEN=1",
	})
	tool := NewReadTool(opts)
	tests := []struct {
		args string
		want string // substring of the error; "" means success
	}{
		{`{"path":"huge.txt","limit":1500}`, "more than 100 KB"},
		{`{"path":"huge.txt","limit":1500}`, "offset=1 limit="},
		{`{"path":"huge.txt","limit":500}`, ""},
		{`{"path":"bin.dat"}`, "binary file"},
		{`{"path":"key.pem"}`, "credential files is denied"},
		{`{"path":"cert.pem"}`, ""},
		{`{"path":"dir"}`, "is a directory"},
		{`{"path":".env"}`, "access to credential files is denied"},
		{`{"path":"../../etc/passwd"}`, "path escapes the workspace"},
		{`{"path":""}`, "path is required"},
		{`{"path":42}`, "invalid tool arguments"},
		{`not json`, "invalid tool arguments"},
	}
	for _, tc := range tests {
		m := run(t, tool, tc.args)
		if tc.want == "" {
			mustOK(t, m)
			continue
		}
		if e := errOf(t, m); !strings.Contains(e, tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.args, e, tc.want)
		}
	}
}

// TestReadPrivateKeyAnywhere checks that paging cannot read around the
// key check: the whole file is looked at, whichever lines are asked for,
// including a marker that straddles two reads of the line counter.
func TestReadPrivateKeyAnywhere(t *testing.T) {
	opts := testOpts(t)
	key := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----\n"
	pad := strings.Repeat("p", (64<<10)-20) + "\n" // puts the marker across a read boundary
	writeFiles(t, opts.Workspace, map[string]string{
		"notes.txt": numbered(20, "n") + key + numbered(20, "m"),
		"far.txt":   "first\n" + pad + key,
	})
	tool := NewReadTool(opts)
	for _, a := range []string{
		`{"path":"notes.txt","offset":22,"limit":1}`,
		`{"path":"notes.txt","limit":5}`,
		`{"path":"notes.txt","offset":30}`,
		`{"path":"far.txt","limit":1}`,
	} {
		if e := errOf(t, run(t, tool, a)); !strings.Contains(e, "private key") {
			t.Errorf("%s: error %q", a, e)
		}
	}
}

func TestReadMissingSuggestions(t *testing.T) {
	opts := testOpts(t)
	writeFiles(t, opts.Workspace, map[string]string{
		"src/main.go":          "package main",
		"cmd/tool/main.go":     "package main",
		"src/handler.go":       "package src",
		"node_modules/main.go": "x",
		"src/.env":             "SECRET=1",
	})
	tool := NewReadTool(opts)
	tests := []struct {
		path     string
		want     []string
		unwanted []string
	}{
		{"main.go", []string{"src/main.go", "cmd/tool/main.go"}, []string{"node_modules"}},
		{"src/mian.go", []string{"src/main.go"}, nil},
		{"src/handlr.go", []string{"src/handler.go"}, nil},
		{"src/envs", nil, []string{"Similar"}}, // src/.env is close but denied
		{"nothing/like/it.txt", nil, []string{"Similar"}},
	}
	for _, tc := range tests {
		e := errOf(t, run(t, tool, `{"path":"`+tc.path+`"}`))
		if !strings.HasPrefix(e, "file not found: "+tc.path) {
			t.Errorf("%s: error %q", tc.path, e)
		}
		for _, w := range tc.want {
			if !strings.Contains(e, w) {
				t.Errorf("%s: error %q lacks suggestion %q", tc.path, e, w)
			}
		}
		for _, u := range tc.unwanted {
			if strings.Contains(e, u) {
				t.Errorf("%s: error %q should not mention %q", tc.path, e, u)
			}
		}
	}
}

func TestSuggestCapsAtFive(t *testing.T) {
	opts := testOpts(t)
	files := map[string]string{}
	for i := 0; i < 8; i++ {
		files[fmt.Sprintf("d%d/util.go", i)] = "x"
	}
	writeFiles(t, opts.Workspace, files)
	got := opts.Jail().suggest(filepath.Join(opts.Workspace, "util.go"))
	if len(got) != 5 || got[0] != "d0/util.go" || got[4] != "d4/util.go" {
		t.Errorf("suggest = %v, want d0..d4/util.go", got)
	}
}

func TestReadLabel(t *testing.T) {
	tool := NewReadTool(testOpts(t))
	tests := []struct{ args, want string }{
		{`{"path":"main.go"}`, "main.go"},
		{`{"path":"main.go","offset":1,"limit":500}`, "main.go:1-500"},
		{`{"path":"main.go","offset":20}`, "main.go:20-519"},
		{`{"path":"main.go","limit":10}`, "main.go:1-10"},
		{`{"path":"a\nb.go"}`, "a b.go"},
		{`{"path":""}`, "read_file"},
		{`{"path":7}`, "read_file"},
		{`garbage`, "read_file"},
		{``, "read_file"},
	}
	for _, tc := range tests {
		if got := tool.Label([]byte(tc.args)); got != tc.want {
			t.Errorf("Label(%s) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"main.go", "main.go", 0},
		{"mian.go", "main.go", 2},
		{"handlr.go", "handler.go", 1},
		{"kitten", "sitting", 3},
	}
	for _, tc := range tests {
		if got := editDistance(tc.a, tc.b, 10); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	if got := editDistance("a", "abcdefgh", 3); got <= 3 {
		t.Errorf("length gap beyond bound: got %d, want > 3", got)
	}
}

func TestReadLargeFileCountsAll(t *testing.T) {
	opts := testOpts(t)
	// A line longer than the reader's buffer, past the page, must still
	// count as one line.
	content := numbered(10, "l") + strings.Repeat("z", 200<<10) + "\n" + numbered(5, "m")
	if err := os.WriteFile(filepath.Join(opts.Workspace, "f.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m := mustOK(t, run(t, NewReadTool(opts), `{"path":"f.txt","limit":3}`))
	if m["total_lines"] != 16.0 || m["lines_returned"] != 3.0 {
		t.Errorf("total %v returned %v, want 16 and 3", m["total_lines"], m["lines_returned"])
	}
	m = mustOK(t, run(t, NewReadTool(opts), `{"path":"f.txt","offset":11,"limit":2}`))
	if c := m["content"].(string); !strings.Contains(c, "[line truncated: 204800 bytes]") || !strings.HasSuffix(c, "12|m 1\n") {
		t.Errorf("content around the long line: %q…", c[:40])
	}
}
