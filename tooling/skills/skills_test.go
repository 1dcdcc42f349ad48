package skills

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/tooling"
)

func write(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func skill(t testing.TB, home, rel, front, body string) string {
	t.Helper()
	dir := filepath.Join(home, "skills", filepath.FromSlash(rel))
	write(t, filepath.Join(dir, SkillFile), "---\n"+front+"\n---\n"+body)
	return dir
}

// library builds a home with a few skills of every kind.
func library(t testing.TB) string {
	home := t.TempDir()
	skill(t, home, "devops/deploy", "name: deploy\ndescription: Ship the service\ntags: [ops, release]", "# Deploy\nrun make ship\n")
	skill(t, home, "research/arxiv", "name: arxiv\ndescription: >\n  Search and read\n  papers\ntags: papers, search", "# arXiv\n")
	skill(t, home, "devops/no-name", "description: folder name is the name", "body")
	skill(t, home, "broken/bad-yaml", "name: [unclosed", "x")
	skill(t, home, "broken/bad-tags", "name: t\ntags: {a: 1}", "x")
	write(t, filepath.Join(home, "skills", "broken", "no-front", SkillFile), "# just markdown\n")
	skill(t, home, "toplevel", "name: toplevel\ndescription: a skill with no category", "top")
	write(t, filepath.Join(home, "skills", "devops", "deploy", "references", "api.md"), "API notes")
	write(t, filepath.Join(home, "skills", "devops", "notaskill", "README.md"), "no SKILL.md here")
	return home
}

func tools(home string) (list, view tooling.Tool) {
	ts := New(home)
	return ts[0], ts[1]
}

func run(t *testing.T, tool tooling.Tool, args string) map[string]any {
	t.Helper()
	res := tool.Run(context.Background(), tooling.Call{Args: []byte(args)})
	var m map[string]any
	if err := json.Unmarshal([]byte(res), &m); err != nil {
		t.Fatalf("not JSON: %s", res)
	}
	return m
}

func TestList(t *testing.T) {
	list, _ := tools(library(t))
	res := list.Run(context.Background(), tooling.Call{Args: []byte(`{}`)})
	var got struct {
		Skills  []Skill
		Skipped []Skipped
	}
	if err := json.Unmarshal([]byte(res), &got); err != nil {
		t.Fatal(err)
	}
	want := []Skill{
		{Name: "toplevel", Category: "", Description: "a skill with no category", Tags: []string{}},
		{Name: "deploy", Category: "devops", Description: "Ship the service", Tags: []string{"ops", "release"}},
		{Name: "no-name", Category: "devops", Description: "folder name is the name", Tags: []string{}},
		{Name: "arxiv", Category: "research", Description: "Search and read papers", Tags: []string{"papers", "search"}},
	}
	if !reflect.DeepEqual(got.Skills, want) {
		t.Fatalf("skills\n%+v\nwant\n%+v", got.Skills, want)
	}
	var paths []string
	for _, s := range got.Skipped {
		paths = append(paths, s.Path)
		if s.Reason == "" || strings.Contains(s.Reason, "\n") {
			t.Errorf("skipped %s: reason %q", s.Path, s.Reason)
		}
	}
	if !reflect.DeepEqual(paths, []string{"broken/bad-tags", "broken/bad-yaml", "broken/no-front"}) {
		t.Fatalf("skipped %v", got.Skipped)
	}
}

func TestListCategory(t *testing.T) {
	list, _ := tools(library(t))
	m := run(t, list, `{"category":"research"}`)
	skills := m["skills"].([]any)
	if len(skills) != 1 || skills[0].(map[string]any)["name"] != "arxiv" {
		t.Fatalf("%v", m)
	}
	m = run(t, list, `{"category":"cooking"}`)
	if e, _ := m["error"].(string); !strings.Contains(e, "devops, research") {
		t.Fatalf("unknown category: %v", m)
	}
	if list.Label([]byte(`{"category":"devops"}`)) != "devops" || list.Label(nil) != "skills" {
		t.Fatal("labels")
	}
}

func TestListEmptyHome(t *testing.T) {
	list, _ := tools(t.TempDir())
	if res := list.Run(context.Background(), tooling.Call{}); res != `{"skills":[]}` {
		t.Fatal(res)
	}
	if s := Index(t.TempDir()); s != "" {
		t.Fatalf("index of nothing: %q", s)
	}
}

func TestView(t *testing.T) {
	_, view := tools(library(t))
	tests := []struct {
		args, name, content, file string
		files                     []any
	}{
		{`{"name":"deploy"}`, "deploy", "---\nname: deploy\ndescription: Ship the service\ntags: [ops, release]\n---\n# Deploy\nrun make ship\n", "", []any{"references/api.md"}},
		{`{"name":"devops/deploy","file":"references/api.md"}`, "deploy", "API notes", "references/api.md", nil},
		{`{"name":"deploy","file":"./references//api.md"}`, "deploy", "API notes", "references/api.md", nil},
		{`{"name":"toplevel"}`, "toplevel", "---\nname: toplevel\ndescription: a skill with no category\n---\ntop", "", nil},
	}
	for _, tc := range tests {
		m := run(t, view, tc.args)
		if m["error"] != nil {
			t.Fatalf("%s: %v", tc.args, m["error"])
		}
		if m["name"] != tc.name || m["content"] != tc.content {
			t.Errorf("%s: got %v", tc.args, m)
		}
		if f, _ := m["file"].(string); f != tc.file {
			t.Errorf("%s: file %q", tc.args, f)
		}
		if files, _ := m["files"].([]any); !reflect.DeepEqual(files, tc.files) {
			t.Errorf("%s: files %v", tc.args, files)
		}
	}
	if view.Label([]byte(`{"name":"deploy","file":"x"}`)) != "deploy" {
		t.Fatal("label")
	}
}

func TestViewCapped(t *testing.T) {
	home := t.TempDir()
	dir := skill(t, home, "big/big", "name: big", "")
	write(t, filepath.Join(dir, "huge.txt"), strings.Repeat("a", MaxView+10))
	_, view := tools(home)
	m := run(t, view, `{"name":"big","file":"huge.txt"}`)
	if len(m["content"].(string)) != MaxView || m["truncated"] != true {
		t.Fatalf("len %d truncated %v", len(m["content"].(string)), m["truncated"])
	}
}

func TestViewRefusals(t *testing.T) {
	home := library(t)
	dir := filepath.Join(home, "skills", "devops", "deploy")
	secret := filepath.Join(t.TempDir(), "secret.txt")
	write(t, secret, "TOP SECRET")
	write(t, filepath.Join(home, "skills", "devops", "sibling.txt"), "SIBLING")
	if err := os.Symlink(secret, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../sibling.txt", filepath.Join(dir, "rel-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(secret), filepath.Join(dir, "outdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("references/api.md", filepath.Join(dir, "inside")); err != nil {
		t.Fatal(err)
	}
	_, view := tools(home)

	tests := []struct{ args, want string }{
		{`{"name":"deploy","file":"../no-name/SKILL.md"}`, "inside the skill's folder"},
		{`{"name":"deploy","file":"references/../../x"}`, "inside the skill's folder"},
		{`{"name":"deploy","file":"/etc/passwd"}`, "relative"},
		{`{"name":"deploy","file":"\\etc\\passwd"}`, "relative"},
		{`{"name":"deploy","file":"out"}`, "cannot open"},
		{`{"name":"deploy","file":"rel-out"}`, "cannot open"},
		{`{"name":"deploy","file":"outdir/secret.txt"}`, "cannot open"},
		{`{"name":"deploy","file":"missing.md"}`, "not found"},
		{`{"name":"deploy","file":"references"}`, "not a regular file"},
		{`{"name":"../devops/deploy"}`, "invalid skill name"},
		{`{"name":"/etc/passwd"}`, "invalid skill name"},
		{`{"name":"nope"}`, "unknown skill \"nope\"; available: toplevel, deploy, no-name, arxiv"},
		{`{"name":"bad-yaml"}`, "unknown skill"},
		{`{}`, "name is required"},
	}
	for _, tc := range tests {
		m := run(t, view, tc.args)
		e, _ := m["error"].(string)
		if !strings.Contains(e, tc.want) {
			t.Errorf("%s: error %q, want %q (result %v)", tc.args, e, tc.want, m)
		}
		if c, _ := m["content"].(string); strings.Contains(c, "SECRET") || strings.Contains(c, "SIBLING") {
			t.Errorf("%s: leaked %q", tc.args, c)
		}
	}
	// A symlink that stays inside the folder is fine.
	if m := run(t, view, `{"name":"deploy","file":"inside"}`); m["content"] != "API notes" {
		t.Fatalf("inside link: %v", m)
	}
}

func TestViewAmbiguous(t *testing.T) {
	home := t.TempDir()
	skill(t, home, "a/dup", "name: dup\ndescription: one", "A")
	skill(t, home, "b/dup", "name: dup\ndescription: two", "B")
	_, view := tools(home)
	if e, _ := run(t, view, `{"name":"dup"}`)["error"].(string); !strings.Contains(e, "a/dup, b/dup") {
		t.Fatalf("ambiguous: %q", e)
	}
	if c, _ := run(t, view, `{"name":"b/dup"}`)["content"].(string); !strings.HasSuffix(c, "B") {
		t.Fatalf("qualified: %q", c)
	}
}

func TestFrontMatter(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		wantErr string
	}{
		{"---\nname: a\n---\nbody", "a", ""},
		{"\ufeff---\r\nname: crlf\r\n---\r\n", "crlf", ""},
		{"---\nname: dots\n...\n", "dots", ""},
		{"# title\n---\nname: a\n---", "", "no front matter"},
		{"---\nname: a\n", "", "not closed"},
		{"---\nname: [x\n---\n", "", "bad front matter"},
		{"", "", "no front matter"},
	}
	for _, tc := range tests {
		m, err := frontMatter([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || m.Name != tc.name {
			t.Errorf("%q: %+v %v", tc.in, m, err)
		}
	}
}

func TestInvalidNameSkipped(t *testing.T) {
	home := t.TempDir()
	skill(t, home, "x/evil", "name: ../../etc", "")
	list, _ := tools(home)
	m := run(t, list, `{}`)
	if len(m["skills"].([]any)) != 0 || len(m["skipped"].([]any)) != 1 {
		t.Fatalf("%v", m)
	}
}

func TestIndex(t *testing.T) {
	want := "## Skills\n- arxiv: Search and read papers\n- deploy: Ship the service\n- no-name: folder name is the name\n- toplevel: a skill with no category"
	if got := Index(library(t)); got != want {
		t.Fatalf("index\n%q\nwant\n%q", got, want)
	}
}

func TestIndexSeesEdits(t *testing.T) {
	home := t.TempDir()
	skill(t, home, "c/a", "name: a\ndescription: old", "")
	if got := Index(home); got != "## Skills\n- a: old" {
		t.Fatal(got)
	}
	skill(t, home, "c/a", "name: a\ndescription: newer text", "")
	skill(t, home, "c/b", "name: b", "")
	if got := Index(home); got != "## Skills\n- a: newer text\n- b" {
		t.Fatalf("after edit: %q", got)
	}
	if err := os.RemoveAll(filepath.Join(home, "skills", "c", "a")); err != nil {
		t.Fatal(err)
	}
	if got := Index(home); got != "## Skills\n- b" {
		t.Fatalf("after delete: %q", got)
	}
}

func TestIndexCap(t *testing.T) {
	home := t.TempDir()
	for i := range 100 {
		skill(t, home, fmt.Sprintf("c/s%03d", i), fmt.Sprintf("name: s%03d\ndescription: %s", i, strings.Repeat("d", 300)), "")
	}
	got := Index(home)
	if n := len([]rune(got)); n > IndexCap {
		t.Fatalf("index is %d characters, cap %d", n, IndexCap)
	}
	lines := strings.Split(got, "\n")
	last := lines[len(lines)-1]
	shown := len(lines) - 2 // header and closing line
	if want := fmt.Sprintf("- … and %d more (see skills_list)", 100-shown); last != want {
		t.Fatalf("closing line %q, want %q", last, want)
	}
	if !strings.HasSuffix(lines[1], "…") || len([]rune(lines[1])) != len("- s000: ")+maxIndexDescription {
		t.Fatalf("description not truncated: %q", lines[1])
	}
}

func BenchmarkIndex(b *testing.B) {
	home := b.TempDir()
	for i := range 50 {
		skill(b, home, fmt.Sprintf("cat%d/skill%02d", i%5, i),
			fmt.Sprintf("name: skill%02d\ndescription: does thing %d well\ntags: [a, b]", i, i), strings.Repeat("body\n", 200))
	}
	b.ReportAllocs()
	for b.Loop() {
		if Index(home) == "" {
			b.Fatal("empty")
		}
	}
}
