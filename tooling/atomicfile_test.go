package tooling

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// leftovers lists what the directory holds besides want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range ents {
		if !slices.Contains(want, e.Name()) {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

func TestWriteFileAtomicReplaces(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077) // the mode must not depend on it
	defer syscall.Umask(old)
	r := openRoot(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("old content, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(r, "f", []byte("new"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q, %v", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "f"))
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644 whatever the umask", fi.Mode().Perm())
	}
	if extra := leftovers(t, dir, "f"); len(extra) != 0 {
		t.Fatalf("left behind: %v", extra)
	}
}

// TestWriteFileAtomicCheckRefuses: a refused temporary file leaves the old
// content and nothing else, and the refusal reaches the caller unchanged.
func TestWriteFileAtomicCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	r := openRoot(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	var seen string
	err := WriteFileAtomic(r, "f", []byte("new"), 0o600, func(f *os.File) error {
		seen = filepath.Base(f.Name())
		return refused
	})
	if err != refused {
		t.Fatalf("err %v, want the check's own", err)
	}
	if !strings.HasPrefix(seen, ".tmp-f.") || !strings.HasSuffix(seen, ".tmp") {
		t.Fatalf("check saw %q, want the hidden temporary file", seen)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "old" {
		t.Fatalf("content %q after a refusal", b)
	}
	if extra := leftovers(t, dir, "f"); len(extra) != 0 {
		t.Fatalf("left behind: %v", extra)
	}
}

// TestWriteFileAtomicStaysUnderRoot: a symlinked directory leading out of
// the root cannot carry the write out of it.
func TestWriteFileAtomicStaysUnderRoot(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	r := openRoot(t, dir)
	if err := WriteFileAtomic(r, "link/f", []byte("escaped"), 0o600, nil); err == nil {
		t.Fatal("write through a symlink out of the root succeeded")
	}
	if extra := leftovers(t, outside); len(extra) != 0 {
		t.Fatalf("written outside the root: %v", extra)
	}
}

// TestCreateFileAtomic: a file made once (a key) is created whole, and an
// existing one is never replaced, whoever made it first.
func TestCreateFileAtomic(t *testing.T) {
	dir := t.TempDir()
	r := openRoot(t, dir)
	if err := CreateFileAtomic(r, "key", []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := CreateFileAtomic(r, "key", []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second create: %v, want fs.ErrExist", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "key"))
	fi, _ := os.Stat(filepath.Join(dir, "key"))
	if string(b) != "first" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key %q mode %v after a second create", b, fi.Mode().Perm())
	}
	if extra := leftovers(t, dir, "key"); len(extra) != 0 {
		t.Fatalf("left behind: %v", extra)
	}
}
