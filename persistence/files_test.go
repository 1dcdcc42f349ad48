package persistence

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

func putFile(t *testing.T, f *Files, id string, data string) *hermes.File {
	t.Helper()
	rec := &hermes.File{ID: id, Created: time.Unix(1700000000, 0), Filename: "n.txt", Purpose: "user_data"}
	if err := put(f, rec, data); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
	return rec
}

func put(f *Files, rec *hermes.File, data string) error {
	commit, _, err := f.Receive(rec, strings.NewReader(data), 1<<20)
	if err != nil {
		return err
	}
	return commit()
}

func readAll(t *testing.T, f *Files, id string) string {
	t.Helper()
	r, _, err := f.Open(id)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// TestFilesStoreModesAndReload: files and records are 0600 in a 0700
// directory (tightened when it existed looser), survive a reopen, and the
// leftovers of interrupted uploads and deletes are cleaned up at open.
func TestFilesStoreModesAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFiles(dir, FilesOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, f, "file-a", "alpha")
	if got := readAll(t, f, "file-a"); got != "alpha" {
		t.Fatalf("content %q", got)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, n := range []string{"file-a.data", "file-a.json"} {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", n, st, err)
		}
	}
	f.Close()
	// What a crash can leave: a temporary upload, bytes without a record,
	// a record without its bytes, a record whose bytes are the wrong size.
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(".tmp-0123", "partial")
	write("file-orphan.data", "bytes")
	write("file-norec.json", `{"id":"file-norec","bytes":3}`)
	write("file-short.json", `{"id":"file-short","bytes":30}`)
	write("file-short.data", "abc")
	write("file-bad.json", `{"id":"file-other","bytes":3}`)
	write("file-bad.data", "abc")
	f, err = OpenFiles(dir, FilesOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(t, f, "file-a"); got != "alpha" {
		t.Fatalf("after reopen: %q", got)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "file-a.data file-a.json" {
		t.Fatalf("left after open: %v", names)
	}
	if f.Total() != 5 || len(f.List()) != 1 {
		t.Fatalf("total %d, list %v", f.Total(), f.List())
	}
}

// TestFilesStoreEvictionOnDisk: what the contract's LRU and discard
// cases (TestFilesContract) leave on the directory store's disk: an
// evicted file's bytes are gone, and a refused or discarded upload leaves
// no temporary file behind.
func TestFilesStoreEvictionOnDisk(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFiles(dir, FilesOptions{MaxBytes: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	putFile(t, f, "file-a", strings.Repeat("a", 10))
	putFile(t, f, "file-b", strings.Repeat("b", 10))
	putFile(t, f, "file-c", strings.Repeat("c", 10))
	putFile(t, f, "file-d", strings.Repeat("d", 10))
	if _, err := f.File("file-a"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("a not evicted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "file-a.data")); !os.IsNotExist(err) {
		t.Fatalf("a's bytes left on disk: %v", err)
	}
	if err := put(f, &hermes.File{ID: "file-big"}, strings.Repeat("x", 31)); hermes.ErrorCode(err) != hermes.ETooLarge {
		t.Fatalf("over the cap: %v", err)
	}
	_, discard, err := f.Receive(&hermes.File{ID: "file-f"}, strings.NewReader(strings.Repeat("f", 20)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	discard()
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestFilesStoreHostileIDsStayInside: the contract's hostile ids
// (TestFilesContract) never reach the filesystem around the store: a file
// beside its directory is untouched by every operation on them.
func TestFilesStoreHostileIDsStayInside(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "files")
	secret := filepath.Join(parent, "api_server.db")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFiles(dir, FilesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, id := range []string{"../api_server", "file-../../api_server", "file-a/../../api_server", `file-..\x`, "file-%2e%2e"} {
		_, _, _ = f.Open(id)
		_ = f.Delete(id)
		if err := put(f, &hermes.File{ID: id}, "x"); err == nil {
			t.Errorf("Put(%q) accepted", id)
		}
	}
	if b, err := os.ReadFile(secret); err != nil || !bytes.Equal(b, []byte("secret")) {
		t.Fatalf("file outside the store changed: %q %v", b, err)
	}
}
