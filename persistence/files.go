package persistence

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
)

// Files is the store of files uploaded through the Files API: one
// directory ($HERMES_HOME/files, mode 0700) holding, per file, its bytes
// (<id>.data) and its record (<id>.json), both mode 0600. Names on disk are
// made from the id alone, which is checked before any filesystem call and
// opened through an os.Root of the directory, so neither a client's file
// name nor a crafted id can reach another path.
//
// The files together are held under a byte cap; an upload that does not
// fit evicts the least recently used files first (an upload or a read of a
// file's bytes uses it). The order survives restarts as the modification
// time of each record.
type Files struct {
	root *os.Root
	dir  string
	max  int64
	now  func() time.Time

	mu    sync.Mutex // guards index, order and total, and the renames and removals that change them
	index map[string]*list.Element
	order *list.List // of *hermes.File, most recently used at the front
	total int64
}

// FilesOptions tune the file store.
type FilesOptions struct {
	// MaxBytes caps the bytes of all files together
	// (API_SERVER_MAX_FILE_BYTES); default 1 GiB.
	MaxBytes int64
	Now      func() time.Time
}

// OpenFiles opens (creating it if needed) the file store in dir. Leftovers
// of uploads a crash cut short are removed.
func OpenFiles(dir string, opts FilesOptions) (*Files, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The files are the users' documents: this user alone reads them,
	// whatever mode an older directory was made with.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	f := &Files{root: root, dir: dir, max: opts.MaxBytes, now: opts.Now, index: make(map[string]*list.Element), order: list.New()}
	if err := f.load(); err != nil {
		root.Close()
		return nil, err
	}
	return f, nil
}

// Close releases the directory.
func (f *Files) Close() error { return f.root.Close() }

// Dir returns the directory the store lives in.
func (f *Files) Dir() string { return f.dir }

// ValidFileID reports whether id has the form of a file id this store
// makes: "file-" and 1 to 64 letters, digits, '-' or '_'. Nothing else is
// ever turned into a name on disk.
func ValidFileID(id string) bool {
	rest, ok := strings.CutPrefix(id, "file-")
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func fileNotFound(id string) error {
	return &hermes.Error{Code: hermes.ENotFound, Param: "file_id", Message: "No such File object: " + clip(id, 80)}
}

// clip shortens what a client sent before it is echoed in a message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

type loaded struct {
	file *hermes.File
	used time.Time
}

// load reads every record, drops records whose bytes are missing or of the
// wrong size and bytes without a record (an upload or a delete a crash cut
// short), and rebuilds the use order.
func (f *Files) load() error {
	entries, err := fs.ReadDir(f.root.FS(), ".")
	if err != nil {
		return err
	}
	var recs []loaded
	data := make(map[string]int64)
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			_ = f.root.Remove(name)
		case strings.HasSuffix(name, ".data"):
			if info, err := e.Info(); err == nil && e.Type().IsRegular() {
				data[strings.TrimSuffix(name, ".data")] = info.Size()
			}
		}
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		var rec hermes.File
		b, err := f.root.ReadFile(e.Name())
		info, ierr := e.Info()
		size, have := data[id]
		if err != nil || ierr != nil || !ValidFileID(id) || json.Unmarshal(b, &rec) != nil || rec.ID != id || !have || size != rec.Bytes {
			_ = f.root.Remove(e.Name())
			continue
		}
		delete(data, id)
		recs = append(recs, loaded{file: &rec, used: info.ModTime()})
	}
	for id := range data {
		_ = f.root.Remove(id + ".data")
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].used.After(recs[j].used) })
	for _, r := range recs {
		f.index[r.file.ID] = f.order.PushBack(r.file)
		f.total += r.file.Bytes
	}
	return nil
}

// Receive writes the bytes r yields, at most limit of them, to a
// temporary file and sets rec.Bytes; more than limit bytes is ETooLarge,
// and so is a file larger than the whole store. Nothing is stored until
// commit is called: it stores the file under rec as it is then (so fields
// known only later, such as an upload's purpose, can still be set),
// evicting the least recently used files until it fits. discard drops an
// upload not committed; it is a no-op after commit.
func (f *Files) Receive(rec *hermes.File, r io.Reader, limit int64) (commit func() error, discard func(), err error) {
	if !ValidFileID(rec.ID) {
		return nil, nil, hermes.Errorf(hermes.EInternal, "invalid file id %q", rec.ID)
	}
	limit = min(limit, f.max)
	tmp, w, err := f.createTemp()
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	discard = func() { once.Do(func() { _ = f.root.Remove(tmp) }) }
	n, err := io.Copy(w, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = hermes.Errorf(hermes.ETooLarge, "The file exceeds the limit of %d bytes", limit)
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		discard()
		return nil, nil, err
	}
	rec.Bytes = n
	commit = func() error {
		var err error = hermes.Errorf(hermes.EInternal, "upload already stored or discarded")
		once.Do(func() { err = f.commit(rec, tmp) })
		return err
	}
	return commit, discard, nil
}

func (f *Files) commit(rec *hermes.File, tmp string) error {
	meta, _ := json.Marshal(rec)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.index[rec.ID]; ok {
		_ = f.root.Remove(tmp)
		return hermes.Errorf(hermes.EConflict, "file %s exists", rec.ID)
	}
	for f.total+rec.Bytes > f.max && f.order.Len() > 0 {
		f.evictLocked(f.order.Back().Value.(*hermes.File).ID)
	}
	if err := f.root.Rename(tmp, rec.ID+".data"); err != nil {
		_ = f.root.Remove(tmp)
		return err
	}
	if err := f.writeRecord(rec.ID, meta); err != nil {
		_ = f.root.Remove(rec.ID + ".data")
		return err
	}
	f.index[rec.ID] = f.order.PushFront(rec)
	f.total += rec.Bytes
	return nil
}

// createTemp creates a fresh temporary file in the directory, mode 0600.
func (f *Files) createTemp() (string, *os.File, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	name := ".tmp-" + hex.EncodeToString(b[:])
	w, err := f.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	return name, w, err
}

// writeRecord writes a record through a temporary file and a rename, so a
// crash leaves the old record or the new one, never half of one.
func (f *Files) writeRecord(id string, meta []byte) error {
	tmp, w, err := f.createTemp()
	if err != nil {
		return err
	}
	_, err = w.Write(meta)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.root.Rename(tmp, id+".json")
	}
	if err != nil {
		_ = f.root.Remove(tmp)
	}
	return err
}

// evictLocked removes a file, record first, so a crash between the two
// removals leaves bytes without a record, which load deletes.
func (f *Files) evictLocked(id string) {
	el := f.index[id]
	if el == nil {
		return
	}
	rec := f.order.Remove(el).(*hermes.File)
	delete(f.index, id)
	f.total -= rec.Bytes
	_ = f.root.Remove(id + ".json")
	_ = f.root.Remove(id + ".data")
}

// File returns a file's record.
func (f *Files) File(id string) (*hermes.File, error) {
	if !ValidFileID(id) {
		return nil, fileNotFound(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	el := f.index[id]
	if el == nil {
		return nil, fileNotFound(id)
	}
	rec := *el.Value.(*hermes.File)
	return &rec, nil
}

// Open opens a file's bytes for reading and marks the file used. The
// caller closes the returned file; a file evicted or deleted meanwhile
// stays readable through it.
func (f *Files) Open(id string) (io.ReadCloser, *hermes.File, error) {
	if !ValidFileID(id) {
		return nil, nil, fileNotFound(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	el := f.index[id]
	if el == nil {
		return nil, nil, fileNotFound(id)
	}
	r, err := f.root.Open(id + ".data")
	if err != nil {
		return nil, nil, err
	}
	f.order.MoveToFront(el)
	now := f.now()
	_ = f.root.Chtimes(id+".json", now, now) // the use order, for the next start
	rec := *el.Value.(*hermes.File)
	return r, &rec, nil
}

// ReadFile returns a file's record and bytes, at most limit of them (a
// larger file is ETooLarge), and marks the file used.
func (f *Files) ReadFile(id string, limit int64) (*hermes.File, []byte, error) {
	return ReadOpened(f.Open, id, limit)
}

// ReadOpened is ReadFile for any file store, given its Open.
func ReadOpened(open func(id string) (io.ReadCloser, *hermes.File, error), id string, limit int64) (*hermes.File, []byte, error) {
	r, rec, err := open(id)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	if rec.Bytes > limit {
		return nil, nil, &hermes.Error{Code: hermes.EInvalid, Param: "file_id",
			Message: "File " + id + " has " + strconv.FormatInt(rec.Bytes, 10) + " bytes; at most " + strconv.FormatInt(limit, 10) + " can be read into a request"}
	}
	b, err := io.ReadAll(io.LimitReader(r, limit))
	return rec, b, err
}

// List returns every file's record, newest upload first.
func (f *Files) List() []hermes.File {
	f.mu.Lock()
	out := make([]hermes.File, 0, len(f.index))
	for el := f.order.Front(); el != nil; el = el.Next() {
		out = append(out, *el.Value.(*hermes.File))
	}
	f.mu.Unlock()
	SortFiles(out)
	return out
}

// SortFiles orders files as List returns them: newest upload first.
func SortFiles(out []hermes.File) {
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
}

// Delete removes a file.
func (f *Files) Delete(id string) error {
	if !ValidFileID(id) {
		return fileNotFound(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.index[id] == nil {
		return fileNotFound(id)
	}
	f.evictLocked(id)
	return nil
}

// Total returns the bytes of all files together.
func (f *Files) Total() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}
