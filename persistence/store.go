package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	hermes "github.com/hermesd/hermesd"
)

// schemaVersion is the layout of buckets and keys this code reads and writes.
// A file written by a newer hermesd is refused rather than misread; an older
// one is migrated on open (migrate.go).
//
//  1. every response record carries its whole transcript.
//  2. a response's own items live apart from its record, with a pointer to
//     its parent and a reference count (items, item_refs).
//  3. images in items are kept once by content (blobs, blob_refs,
//     item_blobs); a node's parts then hold references an older hermesd
//     would read as images without data.
const schemaVersion = 3

// maxIDLen bounds response ids, conversation ids and idempotency keys: bbolt
// refuses keys over 32 KiB, and the conversation index stores the length in
// two bytes.
const maxIDLen = 4096

// Buckets. Sequence numbers are big-endian so bbolt's byte order is their
// numeric order and the oldest entry is the first key.
var (
	bucketMeta      = []byte("meta")
	bucketResponses = []byte("responses")     // id → record
	bucketRespMeta  = []byte("response_meta") // id → lru seq, index seq, conversation
	bucketLRU       = []byte("lru")           // lru seq → id; first key is the eviction victim
	bucketConvs     = []byte("conversations") // id → record
	bucketConvIndex = []byte("conversation_responses")
	bucketIdem      = []byte("idempotency")        // key → record
	bucketIdemExp   = []byte("idempotency_expiry") // expiry + key → nil; first key expires first
	// A response's items outlive its address while a retained descendant
	// needs them: item_refs counts the response's own address plus its
	// children, and the items go when the count reaches zero.
	bucketItems    = []byte("items")     // response id → its own items (node record)
	bucketItemRefs = []byte("item_refs") // response id → refs (4 bytes) + parent id

	allBuckets = append([][]byte{bucketMeta, bucketResponses, bucketRespMeta, bucketLRU,
		bucketConvs, bucketConvIndex, bucketIdem, bucketIdemExp, bucketItems, bucketItemRefs,
		bucketBlobs, bucketBlobRefs, bucketItemBlobs}, boundsBuckets...)

	keySchema = []byte("schema")
	keyCount  = []byte("responses")
)

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// Capacity is how many responses are kept before the least recently used
	// are evicted (API_SERVER_MAX_STORED_RESPONSES). Default 100.
	Capacity int
	// LockTimeout is how long Open waits for another process to release
	// the file. Default 2s.
	LockTimeout time.Duration
	// IdempotencyTTL is how long an idempotency entry without its own
	// expiry replays. Default 5m.
	IdempotencyTTL time.Duration
	// Now is the clock; tests inject one. Default time.Now.
	Now func() time.Time
	// NoSync skips fsync on commit. For tests and benchmarks only: a crash
	// can then lose or corrupt committed data.
	NoSync bool
	// MaxConversations is how many conversations are kept before the least
	// recently used are deleted with their pending items
	// (API_SERVER_MAX_CONVERSATIONS). Default 10,000.
	MaxConversations int
	// MaxPendingBytes bounds the items added to one conversation and not yet
	// used by a turn (API_SERVER_MAX_PENDING_BYTES). Default 1 MiB.
	MaxPendingBytes int
	// MaxIdempotencyEntries and MaxIdempotencyBytes bound the idempotency
	// entries kept (API_SERVER_IDEMPOTENCY_MAX_ENTRIES, _MAX_BYTES); the
	// oldest go first. Defaults 10,000 and 64 MiB.
	MaxIdempotencyEntries int
	MaxIdempotencyBytes   int
}

// WithDefaults returns o with its zero values replaced by the defaults.
func (o Options) WithDefaults() Options {
	if o.Capacity <= 0 {
		o.Capacity = 100
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxConversations <= 0 {
		o.MaxConversations = 10_000
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = 1 << 20
	}
	if o.MaxIdempotencyEntries <= 0 {
		o.MaxIdempotencyEntries = 10_000
	}
	if o.MaxIdempotencyBytes <= 0 {
		o.MaxIdempotencyBytes = 64 << 20
	}
	return o
}

// Store is the bbolt store. Apply is its only write path; the read methods
// are safe for any number of concurrent callers.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
}

// Conversation is the conversation record (hermes.Conversation).
type Conversation = hermes.Conversation

// IdemEntry is the idempotency record (hermes.IdempotencyEntry). A zero
// Expires becomes now plus Options.IdempotencyTTL when it is applied.
type IdemEntry = hermes.IdempotencyEntry

// Stats describes the store for metrics.
type Stats struct {
	Responses int   // stored responses
	FileBytes int64 // size of the database file
}

// Open opens or creates the store at path with file mode 0600. A file held
// by another process past opts.LockTimeout gives an EUnavailable error; a
// file written by a newer schema is refused.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		NoSync:  opts.NoSync,
		// The hashmap freelist stays fast as eviction frees pages all
		// over the file.
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &hermes.Error{Code: hermes.EUnavailable,
				Message: fmt.Sprintf("store %s is locked by another process", path), Cause: err}
		}
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("cannot open store %s", path), Cause: err}
	}
	s := &Store{db: db, path: path, opts: opts}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// init tightens the file mode of a file created by someone else (it holds
// every conversation), then creates the buckets and checks the schema.
func (s *Store) init() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return &hermes.Error{Code: hermes.EInternal, Message: fmt.Sprintf("cannot stat store %s", s.path), Cause: err}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(s.path, 0o600); err != nil {
			return &hermes.Error{Code: hermes.EInternal,
				Message: fmt.Sprintf("store %s is readable by others and cannot be made private", s.path), Cause: err}
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return &hermes.Error{Code: hermes.EInternal,
					Message: fmt.Sprintf("cannot create bucket %s in store %s", name, s.path), Cause: err}
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keySchema)
		if v == nil {
			if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion)); err != nil {
				return err
			}
			return backfillBounds(tx)
		}
		if len(v) != 4 {
			return &hermes.Error{Code: hermes.EInternal,
				Message: fmt.Sprintf("store %s has a corrupt schema version", s.path)}
		}
		got := binary.BigEndian.Uint32(v)
		if got == 1 {
			// In the same transaction as the version bump: a crash
			// mid-migration leaves the schema-1 file as it was.
			if err := migrateSchema1(tx); err != nil {
				return &hermes.Error{Code: hermes.EInternal,
					Message: fmt.Sprintf("cannot migrate store %s from schema 1", s.path), Cause: err}
			}
		}
		if got == 1 || got == 2 {
			// Schema 3 only adds the image buckets (created above):
			// schema-2 nodes keep their images inline, which still reads.
			if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion)); err != nil {
				return err
			}
		} else if got != schemaVersion {
			return &hermes.Error{Code: hermes.EUnavailable,
				Message: fmt.Sprintf("store %s has schema version %d; this hermesd reads version %d (use a newer hermesd or another file)",
					s.path, got, schemaVersion)}
		}
		// Files written before the bounds existed get their order and
		// totals once.
		if err := backfillBounds(tx); err != nil {
			return &hermes.Error{Code: hermes.EInternal,
				Message: fmt.Sprintf("cannot index store %s", s.path), Cause: err}
		}
		return nil
	})
}

// Close releases the file. Reads and Apply after Close fail.
func (s *Store) Close() error { return s.db.Close() }

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Response returns the stored response id with its own items (Consumed,
// Input, Output), or an ENotFound error. Its Transcript is not filled in:
// that is Transcript's job.
func (s *Store) Response(id string) (*hermes.StoredResponse, error) { return s.response(id, true) }

// ResponseHead returns the stored response id without its items: what
// continuing it needs (its chain, its parent), without decoding a turn's
// possibly large tool outputs.
func (s *Store) ResponseHead(id string) (*hermes.StoredResponse, error) { return s.response(id, false) }

func (s *Store) response(id string, withItems bool) (*hermes.StoredResponse, error) {
	var data, node []byte
	var parent string
	blobs := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketResponses).Get([]byte(id))
		if v == nil {
			return nil
		}
		data = bytes.Clone(v)
		if withItems {
			node = bytes.Clone(tx.Bucket(bucketItems).Get([]byte(id)))
			readBlobs(tx, id, blobs)
		}
		_, parent, _ = readRefs(tx.Bucket(bucketItemRefs), id)
		return nil
	})
	if err != nil {
		return nil, &hermes.Error{Code: hermes.EInternal, Message: "store read failed", Cause: err}
	}
	if data == nil {
		return nil, hermes.Errorf(hermes.ENotFound, "response %q not found", id)
	}
	r, err := decodeResponse(id, data)
	if err != nil {
		return nil, err
	}
	r.Parent = parent
	if !withItems {
		return r, nil
	}
	if node == nil {
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored response %q is corrupt: its items are missing", id)}
	}
	n, err := decodeNode(id, node)
	if err != nil {
		return nil, err
	}
	if err := joinImages(id, n, blobs, map[string]string{}); err != nil {
		return nil, err
	}
	r.Consumed, r.Input, r.Output = n.consumed(), n.input(), n.output()
	return r, nil
}

// Transcript returns the whole transcript of response id: its ancestors'
// items in order, then its own. It reads one small record per ancestor
// (bbolt reads are memory-mapped) and copies them out of the read
// transaction before decoding, so a long walk never holds back a writer's
// remap. It works for any response whose items are kept, addressed or not;
// an unknown id is an ENotFound error.
func (s *Store) Transcript(id string) ([]hermes.Message, error) {
	type link struct {
		id   string
		data []byte
	}
	var chain []link
	var corrupt error
	blobs := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		items, refs := tx.Bucket(bucketItems), tx.Bucket(bucketItemRefs)
		seen := make(map[string]bool)
		for cur := id; cur != ""; {
			if seen[cur] {
				corrupt = &hermes.Error{Code: hermes.EInternal,
					Message: fmt.Sprintf("stored transcript of %q is corrupt: response %q is its own ancestor", id, cur)}
				return nil
			}
			seen[cur] = true
			v := items.Get([]byte(cur))
			if v == nil {
				if cur != id {
					corrupt = &hermes.Error{Code: hermes.EInternal,
						Message: fmt.Sprintf("stored transcript of %q is corrupt: the items of its ancestor %q are missing", id, cur)}
				}
				return nil
			}
			chain = append(chain, link{cur, bytes.Clone(v)})
			readBlobs(tx, cur, blobs)
			_, cur, _ = readRefs(refs, cur)
		}
		return nil
	})
	if err != nil {
		return nil, &hermes.Error{Code: hermes.EInternal, Message: "store read failed", Cause: err}
	}
	if corrupt != nil {
		return nil, corrupt
	}
	if len(chain) == 0 {
		return nil, hermes.Errorf(hermes.ENotFound, "response %q not found", id)
	}
	var out []hermes.Message
	urls := map[string]string{}
	for i := len(chain) - 1; i >= 0; i-- {
		n, err := decodeNode(chain[i].id, chain[i].data)
		if err != nil {
			return nil, err
		}
		if err := joinImages(chain[i].id, n, blobs, urls); err != nil {
			return nil, err
		}
		if out, err = appendNode(out, chain[i].id, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Conversation returns the conversation id, or an ENotFound error.
func (s *Store) Conversation(id string) (*Conversation, error) {
	data, err := s.get(bucketConvs, id)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, hermes.Errorf(hermes.ENotFound, "conversation %q not found", id)
	}
	return decodeConversation(id, data)
}

// Idempotency returns the entry for key; ok is false when there is none or
// it has expired (expired entries are purged by later Apply calls).
func (s *Store) Idempotency(key string) (e *IdemEntry, ok bool, err error) {
	data, err := s.get(bucketIdem, key)
	if err != nil || data == nil {
		return nil, false, err
	}
	if len(data) < 8 {
		return nil, false, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored idempotency entry %q is corrupt: short record", key)}
	}
	var ent IdemEntry
	if err := decode("idempotency entry", key, data[8:], &ent); err != nil {
		return nil, false, err
	}
	if !s.opts.Now().Before(ent.Expires) {
		return nil, false, nil
	}
	return &ent, true, nil
}

// get copies the value out of a read transaction: bbolt's bytes live in the
// memory map only while the transaction is open, and decoding outside keeps
// read transactions short so they do not hold back remapping.
func (s *Store) get(bucket []byte, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucket).Get([]byte(key)))
		return nil
	})
	if err != nil {
		return nil, &hermes.Error{Code: hermes.EInternal, Message: "store read failed", Cause: err}
	}
	return out, nil
}

// Len returns the number of stored responses, 0 when the store is closed.
func (s *Store) Len() int {
	st, _ := s.Stats()
	return st.Responses
}

// Stats returns the response count and file size.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.db.View(func(tx *bolt.Tx) error {
		st.Responses = int(readCount(tx.Bucket(bucketMeta)))
		st.FileBytes = tx.Size()
		return nil
	})
	if err != nil {
		return Stats{}, &hermes.Error{Code: hermes.EInternal, Message: "store read failed", Cause: err}
	}
	return st, nil
}

func readCount(meta *bolt.Bucket) uint64 {
	if v := meta.Get(keyCount); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
