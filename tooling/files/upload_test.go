package files

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveUpload: a client's file name is only a label: paths, dot names,
// names the deny list refuses and odd characters all land as a plain file
// under uploads/ in the workspace; a file already there is never replaced;
// a symlinked uploads/ leading out of the workspace is refused.
func TestSaveUpload(t *testing.T) {
	ws, outside := t.TempDir(), t.TempDir()
	j := Options{Workspace: ws, Home: t.TempDir()}.Jail()
	names := []string{
		"notes.md",
		"../../../etc/passwd",
		`..\..\win.ini`,
		".env",
		"id_rsa",
		"server.key",
		"..",
		"rapport final (v2).pdf",
		"\u202Etxt.exe",
		strings.Repeat("a", 300),
		"notes.md\x00/../../x",
	}
	for _, name := range names {
		got, err := j.SaveUpload(name, []byte("data of "+name))
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		if !strings.HasPrefix(got, "uploads/") || strings.Contains(got[len("uploads/"):], "/") {
			t.Errorf("%q saved at %q", name, got)
		}
		if b, err := os.ReadFile(filepath.Join(ws, got)); err != nil || string(b) != "data of "+name {
			t.Errorf("%q: read back %q %v", name, b, err)
		}
	}
	// The same name twice: the first file stays.
	a, _ := j.SaveUpload("same.txt", []byte("first"))
	b, _ := j.SaveUpload("same.txt", []byte("second"))
	if a != "uploads/same.txt" || b != "uploads/same-2.txt" {
		t.Fatalf("same name: %q %q", a, b)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, a)); string(got) != "first" {
		t.Fatalf("first file replaced: %q", got)
	}
	// uploads/ as a symlink out of the workspace.
	ws2 := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(ws2, "uploads")); err != nil {
		t.Fatal(err)
	}
	j2 := Options{Workspace: ws2, Home: t.TempDir()}.Jail()
	if p, err := j2.SaveUpload("x.txt", []byte("x")); err == nil {
		t.Fatalf("saved through a symlink out of the workspace: %s", p)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("written outside the workspace: %v", entries)
	}
}
