package postgres

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// chunkSize is how many bytes of a file one row holds: no statement
// carries a whole upload, and a download holds one chunk at a time.
const chunkSize = 1 << 20

// filesLock is the advisory lock a file's commit holds while it evicts to
// make room: two nodes committing at once must not both count the same
// free space.
const filesLock int64 = 0x6865726d65730003 // "hermes", 3

// staleUpload is how old an upload that never committed must be before
// Files removes it: its node died mid-upload, or it is still being
// received by another node if younger.
const staleUpload = time.Hour

// Files is the Files API's store on PostgreSQL, shared by every node: the
// same contract as persistence.Files (ids checked before any query, a byte
// cap with least recently used files evicted, a file open for reading
// stays readable if deleted meanwhile).
type Files struct {
	pool *pgxpool.Pool
	max  int64
	now  func() time.Time
}

// Files opens the file store in the store's database, removing uploads
// that never committed.
func (s *Store) Files(opts persistence.FilesOptions) (*Files, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Files{pool: s.pool, max: opts.MaxBytes, now: opts.Now}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.pool.Exec(ctx, "DELETE FROM files WHERE NOT committed AND started < $1", f.now().Add(-staleUpload)); err != nil {
		return nil, readFailed(err)
	}
	return f, nil
}

// Close is a no-op: the pool is the Store's.
func (f *Files) Close() error { return nil }

func (f *Files) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), queryTimeout)
}

// Receive writes the bytes r yields, at most limit of them, as the chunks
// of an upload not yet committed, and sets rec.Bytes; more than limit
// bytes (or than the whole store holds) is ETooLarge. commit stores the
// file under rec as it is then, evicting the least recently used files
// until it fits; discard drops it.
func (f *Files) Receive(rec *hermes.File, r io.Reader, limit int64) (commit func() error, discard func(), err error) {
	if !persistence.ValidFileID(rec.ID) {
		return nil, nil, hermes.Errorf(hermes.EInternal, "invalid file id %q", rec.ID)
	}
	limit = min(limit, f.max)
	ctx, cancel := f.ctx()
	defer cancel()
	tag, err := f.pool.Exec(ctx, "INSERT INTO files (id, started) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", rec.ID, f.now())
	if err != nil {
		return nil, nil, readFailed(err)
	}
	if tag.RowsAffected() == 0 {
		return nil, nil, hermes.Errorf(hermes.EConflict, "file %s exists", rec.ID)
	}
	var once sync.Once
	discard = func() {
		once.Do(func() {
			ctx, cancel := f.ctx()
			defer cancel()
			_, _ = f.pool.Exec(ctx, "DELETE FROM files WHERE id = $1 AND NOT committed", rec.ID)
		})
	}
	n, err := f.receive(rec.ID, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = hermes.Errorf(hermes.ETooLarge, "The file exceeds the limit of %d bytes", limit)
	}
	if err != nil {
		discard()
		return nil, nil, err
	}
	rec.Bytes = n
	commit = func() error {
		var err error = hermes.Errorf(hermes.EInternal, "upload already stored or discarded")
		once.Do(func() {
			if err = f.commit(rec); err != nil {
				ctx, cancel := f.ctx()
				defer cancel()
				_, _ = f.pool.Exec(ctx, "DELETE FROM files WHERE id = $1 AND NOT committed", rec.ID)
			}
		})
		return err
	}
	return commit, discard, nil
}

// receive stores r's bytes as chunks of file id and returns their count.
func (f *Files) receive(id string, r io.Reader) (int64, error) {
	buf := make([]byte, chunkSize)
	var total int64
	for n := 0; ; n++ {
		got, err := io.ReadFull(r, buf)
		if got > 0 {
			ctx, cancel := f.ctx()
			_, werr := f.pool.Exec(ctx, "INSERT INTO file_chunks (file, n, data) VALUES ($1, $2, $3)", id, n, buf[:got])
			cancel()
			if werr != nil {
				return 0, readFailed(werr)
			}
			total += int64(got)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return total, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func (f *Files) commit(rec *hermes.File) error {
	data, err := persistence.EncodeRecord(rec)
	if err != nil {
		return err
	}
	ctx, cancel := f.ctx()
	defer cancel()
	return pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if err := lockWrites(ctx, tx, filesLock); err != nil {
			return err
		}
		var total int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(sum(bytes), 0) FROM files WHERE committed").Scan(&total); err != nil {
			return err
		}
		for total+rec.Bytes > f.max {
			var freed int64
			err := tx.QueryRow(ctx, `DELETE FROM files WHERE id = (SELECT id FROM files WHERE committed ORDER BY used LIMIT 1)
				RETURNING bytes`).Scan(&freed)
			if errors.Is(err, pgx.ErrNoRows) {
				break
			}
			if err != nil {
				return err
			}
			total -= freed
		}
		tag, err := tx.Exec(ctx, `UPDATE files SET record = $2, bytes = $3, committed = true, used = nextval('store_seq')
			WHERE id = $1 AND NOT committed`, rec.ID, data, rec.Bytes)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return hermes.Errorf(hermes.EInternal, "upload %s vanished before its commit", rec.ID)
		}
		return nil
	})
}

// File returns a file's record.
func (f *Files) File(id string) (*hermes.File, error) {
	if !persistence.ValidFileID(id) {
		return nil, persistence.FileNotFound(id)
	}
	ctx, cancel := f.ctx()
	defer cancel()
	var data []byte
	err := f.pool.QueryRow(ctx, "SELECT record FROM files WHERE id = $1 AND committed", id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, persistence.FileNotFound(id)
	}
	if err != nil {
		return nil, readFailed(err)
	}
	return persistence.DecodeFile(id, data)
}

// Open opens a file's bytes for reading and marks the file used. The
// reader reads in a snapshot of the database, so a file evicted or
// deleted meanwhile stays readable through it; it holds a connection
// until closed.
func (f *Files) Open(id string) (io.ReadCloser, *hermes.File, error) {
	if !persistence.ValidFileID(id) {
		return nil, nil, persistence.FileNotFound(id)
	}
	ctx, cancel := f.ctx()
	defer cancel()
	tx, err := f.pool.BeginTx(context.Background(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, readFailed(err)
	}
	var data []byte
	// The first query fixes the snapshot: the record and every chunk are
	// read as of now.
	err = tx.QueryRow(ctx, "SELECT record FROM files WHERE id = $1 AND committed", id).Scan(&data)
	if err != nil {
		_ = tx.Rollback(context.Background())
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil, persistence.FileNotFound(id)
		}
		return nil, nil, readFailed(err)
	}
	rec, err := persistence.DecodeFile(id, data)
	if err != nil {
		_ = tx.Rollback(context.Background())
		return nil, nil, err
	}
	// The use, outside the snapshot's read-only transaction.
	if _, err := f.pool.Exec(ctx, "UPDATE files SET used = nextval('store_seq') WHERE id = $1 AND committed", id); err != nil {
		_ = tx.Rollback(context.Background())
		return nil, nil, readFailed(err)
	}
	return &fileReader{tx: tx, id: id}, rec, nil
}

// fileReader reads a file's chunks in order within its snapshot.
type fileReader struct {
	tx   pgx.Tx
	id   string
	n    int
	buf  []byte
	done bool
}

func (r *fileReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		err := r.tx.QueryRow(ctx, "SELECT data FROM file_chunks WHERE file = $1 AND n = $2", r.id, r.n).Scan(&r.buf)
		cancel()
		if errors.Is(err, pgx.ErrNoRows) {
			r.done = true
			continue
		}
		if err != nil {
			return 0, readFailed(err)
		}
		r.n++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *fileReader) Close() error {
	return r.tx.Rollback(context.Background())
}

// ReadFile returns a file's record and bytes, at most limit of them (a
// larger file is an error), and marks the file used.
func (f *Files) ReadFile(id string, limit int64) (*hermes.File, []byte, error) {
	return persistence.ReadOpened(f.Open, id, limit)
}

// List returns every file's record, newest upload first.
func (f *Files) List() []hermes.File {
	ctx, cancel := f.ctx()
	defer cancel()
	rows, err := f.pool.Query(ctx, "SELECT id, record FROM files WHERE committed")
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []hermes.File
	for rows.Next() {
		var id string
		var data []byte
		if rows.Scan(&id, &data) != nil {
			return nil
		}
		if rec, err := persistence.DecodeFile(id, data); err == nil {
			out = append(out, *rec)
		}
	}
	persistence.SortFiles(out)
	return out
}

// Delete removes a file.
func (f *Files) Delete(id string) error {
	if !persistence.ValidFileID(id) {
		return persistence.FileNotFound(id)
	}
	ctx, cancel := f.ctx()
	defer cancel()
	tag, err := f.pool.Exec(ctx, "DELETE FROM files WHERE id = $1 AND committed", id)
	if err != nil {
		return readFailed(err)
	}
	if tag.RowsAffected() == 0 {
		return persistence.FileNotFound(id)
	}
	return nil
}

// Total returns the bytes of all files together.
func (f *Files) Total() int64 {
	ctx, cancel := f.ctx()
	defer cancel()
	var n int64
	_ = f.pool.QueryRow(ctx, "SELECT coalesce(sum(bytes), 0) FROM files WHERE committed").Scan(&n)
	return n
}
