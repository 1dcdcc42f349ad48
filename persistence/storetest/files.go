package storetest

import (
	"io"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// Files is what the suite drives of a file store (the Files API's).
type Files interface {
	Receive(rec *hermes.File, r io.Reader, limit int64) (commit func() error, discard func(), err error)
	File(id string) (*hermes.File, error)
	Open(id string) (io.ReadCloser, *hermes.File, error)
	ReadFile(id string, limit int64) (*hermes.File, []byte, error)
	List() []hermes.File
	Delete(id string) error
	Total() int64
	Close() error
}

// FilesBackend is one file store implementation under test: Storage makes
// new storage for one test and returns how to open the store on it;
// opening again after Close is a restart.
type FilesBackend struct {
	Storage func(t *testing.T) (open func(t *testing.T, opts persistence.FilesOptions) Files)
}

// RunFiles runs the file store contract against b.
func RunFiles(t *testing.T, b FilesBackend) {
	for _, c := range []struct {
		name string
		f    func(*testing.T, FilesBackend)
	}{
		{"RoundTrip", filesRoundTrip},
		{"LRU", filesLRU},
		{"HostileIDs", filesHostile},
	} {
		t.Run(c.name, func(t *testing.T) { c.f(t, b) })
	}
}

func putFile(t *testing.T, f Files, id, data string) *hermes.File {
	t.Helper()
	rec := &hermes.File{ID: id, Created: time.Unix(1700000000, 0), Filename: "n.txt", Purpose: "user_data"}
	if err := storeFile(f, rec, data); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
	return rec
}

func storeFile(f Files, rec *hermes.File, data string) error {
	commit, _, err := f.Receive(rec, strings.NewReader(data), 1<<22)
	if err != nil {
		return err
	}
	return commit()
}

func readAll(t *testing.T, f Files, id string) string {
	t.Helper()
	r, _, err := f.Open(id)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return string(b)
}

// filesRoundTrip: bytes and record read back, across a restart and past
// a chunk boundary; a file open for reading stays readable when deleted;
// the newest upload lists first; a duplicate id is refused.
func filesRoundTrip(t *testing.T, b FilesBackend) {
	open := b.Storage(t)
	f := open(t, persistence.FilesOptions{})
	big := strings.Repeat("0123456789abcdef", (3<<20)/16+7) // over 3 MiB
	rec := putFile(t, f, "file-big", big)
	if rec.Bytes != int64(len(big)) {
		t.Fatalf("Bytes = %d, want %d", rec.Bytes, len(big))
	}
	later := &hermes.File{ID: "file-later", Created: time.Unix(1700000100, 0), Filename: "l.txt", Purpose: "assistants"}
	if err := storeFile(f, later, "later"); err != nil {
		t.Fatal(err)
	}
	if err := storeFile(f, &hermes.File{ID: "file-later"}, "again"); hermes.ErrorCode(err) != hermes.EConflict {
		t.Fatalf("a second upload under one id: %v, want conflict", err)
	}
	f.Close()
	f = open(t, persistence.FilesOptions{})
	got, err := f.File("file-later")
	if err != nil || got.Filename != "l.txt" || got.Purpose != "assistants" || got.Bytes != 5 {
		t.Fatalf("File = %+v, %v", got, err)
	}
	if list := f.List(); len(list) != 2 || list[0].ID != "file-later" || list[1].ID != "file-big" {
		t.Fatalf("List = %+v, want file-later then file-big", list)
	}
	if f.Total() != int64(len(big))+5 {
		t.Fatalf("Total = %d", f.Total())
	}
	r, _, err := f.Open("file-big")
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 10)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete("file-big"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(head)+string(rest) != big {
		t.Fatalf("a file deleted while open read back %d bytes (%v), want %d", len(head)+len(rest), err, len(big))
	}
	if _, err := f.File("file-big"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("deleted file: %v", err)
	}
	if err := f.Delete("file-big"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("second delete: %v", err)
	}
	if _, _, err := f.ReadFile("file-later", 4); hermes.ErrorCode(err) != hermes.EInvalid {
		t.Fatalf("ReadFile over its limit: %v", err)
	}
	if _, data, err := f.ReadFile("file-later", 5); err != nil || string(data) != "later" {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
}

// filesLRU: an upload that does not fit evicts the least recently used
// files (a read of the bytes is a use), and the order holds across a
// restart; a file larger than the store, or one discarded, changes
// nothing.
func filesLRU(t *testing.T, b FilesBackend) {
	open := b.Storage(t)
	// A clock a second apart per use: the directory store keeps the order
	// across restarts in modification times, which a fast test would tie.
	clk := newClock()
	opts := persistence.FilesOptions{MaxBytes: 30, Now: func() time.Time { clk.Add(time.Second); return clk.Now() }}
	f := open(t, opts)
	putFile(t, f, "file-a", strings.Repeat("a", 10))
	putFile(t, f, "file-b", strings.Repeat("b", 10))
	putFile(t, f, "file-c", strings.Repeat("c", 10))
	readAll(t, f, "file-a") // b is now the least recently used
	putFile(t, f, "file-d", strings.Repeat("d", 10))
	if _, err := f.File("file-b"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("b not evicted: %v", err)
	}
	readAll(t, f, "file-c") // order, most recent first: c, d, a
	f.Close()
	f = open(t, opts)
	putFile(t, f, "file-e", strings.Repeat("e", 10))
	if _, err := f.File("file-a"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("after reopen, a (least recently used) not evicted: %v", err)
	}
	for _, id := range []string{"file-c", "file-d", "file-e"} {
		if _, err := f.File(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	err := storeFile(f, &hermes.File{ID: "file-big"}, strings.Repeat("x", 31))
	if hermes.ErrorCode(err) != hermes.ETooLarge {
		t.Fatalf("over the cap: %v", err)
	}
	if f.Total() != 30 || len(f.List()) != 3 {
		t.Fatalf("a refused upload changed the store: total %d, %d files", f.Total(), len(f.List()))
	}
	_, discard, err := f.Receive(&hermes.File{ID: "file-f"}, strings.NewReader(strings.Repeat("f", 20)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	discard()
	if f.Total() != 30 || len(f.List()) != 3 {
		t.Fatalf("a discarded upload changed the store: total %d, %d files", f.Total(), len(f.List()))
	}
	// The id of a discarded upload is free again.
	putFile(t, f, "file-f", "f")
}

// filesHostile: ids that are not of the store's own form are not found,
// and are never stored.
func filesHostile(t *testing.T, b FilesBackend) {
	f := b.Storage(t)(t, persistence.FilesOptions{})
	for _, id := range []string{"", "file-", "../api_server", "file-../../api_server", "file-a/../../api_server",
		"file-a\x00", "file-a.data", "FILE-a", "file-" + strings.Repeat("a", 65), `file-..\x`, "file-%2e%2e",
		"file-' OR '1'='1", "file-a\xff"} {
		if _, err := f.File(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("File(%q): %v", id, err)
		}
		if _, _, err := f.Open(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("Open(%q): %v", id, err)
		}
		if err := f.Delete(id); hermes.ErrorCode(err) != hermes.ENotFound {
			t.Errorf("Delete(%q): %v", id, err)
		}
		if err := storeFile(f, &hermes.File{ID: id}, "x"); err == nil {
			t.Errorf("Put(%q) accepted", id)
		}
	}
	if len(f.List()) != 0 {
		t.Fatalf("hostile ids stored: %+v", f.List())
	}
}
