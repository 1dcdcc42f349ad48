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

// TestFilesStoreLRU: an upload that does not fit evicts the least recently
// used files (a read of the bytes is a use), and the order holds across a
// reopen.
func TestFilesStoreLRU(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	f, err := OpenFiles(dir, FilesOptions{MaxBytes: 30, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	putFile(t, f, "file-a", strings.Repeat("a", 10))
	putFile(t, f, "file-b", strings.Repeat("b", 10))
	putFile(t, f, "file-c", strings.Repeat("c", 10))
	readAll(t, f, "file-a") // b is now the least recently used
	putFile(t, f, "file-d", strings.Repeat("d", 10))
	if _, err := f.File("file-b"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("b not evicted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "file-b.data")); !os.IsNotExist(err) {
		t.Fatalf("b's bytes left on disk: %v", err)
	}
	readAll(t, f, "file-c") // order, most recent first: c, d, a
	f.Close()
	f, err = OpenFiles(dir, FilesOptions{MaxBytes: 30, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	putFile(t, f, "file-e", strings.Repeat("e", 10))
	if _, err := f.File("file-a"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("after reopen, a (least recently used) not evicted: %v", err)
	}
	for _, id := range []string{"file-c", "file-d", "file-e"} {
		if _, err := f.File(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	// A file larger than the whole store is refused and evicts nothing.
	err = put(f, &hermes.File{ID: "file-big"}, strings.Repeat("x", 31))
	if hermes.ErrorCode(err) != hermes.ETooLarge {
		t.Fatalf("over the cap: %v", err)
	}
	if f.Total() != 30 || len(f.List()) != 3 {
		t.Fatalf("a refused upload changed the store: total %d, %d files", f.Total(), len(f.List()))
	}
	// An upload received but discarded leaves nothing and evicts nothing.
	_, discard, err := f.Receive(&hermes.File{ID: "file-f"}, strings.NewReader(strings.Repeat("f", 20)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	discard()
	if f.Total() != 30 || len(f.List()) != 3 {
		t.Fatalf("a discarded upload changed the store: total %d, %d files", f.Total(), len(f.List()))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestFilesStoreHostileIDs: ids that are not of the store's own form never
// reach the filesystem: each is not found, and nothing outside is touched.
func TestFilesStoreHostileIDs(t *testing.T) {
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
	for _, id := range []string{"", "file-", "../api_server", "file-../../api_server", "file-a/../../api_server",
		"file-a\x00", "file-a.data", "FILE-a", "file-" + strings.Repeat("a", 65), `file-..\x`, "file-%2e%2e"} {
		if _, err := f.File(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("File(%q): %v", id, err)
		}
		if _, _, err := f.Open(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("Open(%q): %v", id, err)
		}
		if err := f.Delete(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("Delete(%q): %v", id, err)
		}
		if err := put(f, &hermes.File{ID: id}, "x"); err == nil {
			t.Errorf("Put(%q) accepted", id)
		}
	}
	if b, err := os.ReadFile(secret); err != nil || !bytes.Equal(b, []byte("secret")) {
		t.Fatalf("file outside the store changed: %q %v", b, err)
	}
}
