package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// writeLock is the advisory lock every Apply holds for its transaction.
// Writes are serialised across nodes as the bbolt store's single writer
// serialises them in one process: the response and conversation caps are
// global, and an eviction must never free items that another node's turn
// is linking its new response to. Each node's persistence actor already
// groups its turns into one Apply, so the lock is taken once per batch.
const writeLock int64 = 0x6865726d65730002 // "hermes", 2

// stalledWriter is how long the database lets a transaction holding a
// write lock sit idle before it ends the session: a node frozen (SIGSTOP,
// a VM paused) in the middle of an Apply would otherwise stop every
// node's writes for as long as it stays frozen. An Apply never waits on
// its client between statements for anywhere near this long.
var stalledWriter = 5 * time.Second

// lockWrites takes the advisory lock key for tx, and makes the database
// end the session if tx then idles past stalledWriter.
func lockWrites(ctx context.Context, tx pgx.Tx, key int64) error {
	_, err := tx.Exec(ctx, "SELECT set_config('idle_in_transaction_session_timeout', $2, true), pg_advisory_xact_lock($1)",
		key, strconv.FormatInt(stalledWriter.Milliseconds(), 10))
	return err
}

// purgeBatch bounds how many expired idempotency entries one Apply
// removes, as in the bbolt store.
const purgeBatch = 64

// Apply commits ops in order in one transaction, then evicts the least
// recently used responses beyond the capacity (with the items no retained
// response reaches), the least recently used conversations beyond their
// cap, and expired and surplus idempotency entries. It returns once the
// transaction is committed; if any op fails nothing is written, and the
// error names the op.
func (s *Store) Apply(ops []persistence.Op) error {
	if len(ops) == 0 {
		return nil
	}
	specs := make([]persistence.OpSpec, len(ops))
	for i, op := range ops {
		sp, err := op.Spec()
		if err != nil {
			return persistence.OpError(i, len(ops), op, err)
		}
		specs[i] = sp
	}
	ctx, cancel := s.ctx()
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w, err := newWriter(ctx, tx, s.opts)
		if err != nil {
			return err
		}
		w.owner = s.ownerName()
		for i, sp := range specs {
			w.op = i
			if err := w.apply(sp); err != nil {
				i = w.culprit(i, err)
				return persistence.OpError(i, len(ops), ops[i], err)
			}
		}
		return w.finish()
	})
	if err == nil {
		return nil
	}
	var he *hermes.Error
	if errors.As(err, &he) {
		return he
	}
	return storeError("store apply failed", err)
}

// counts is the store_counts row.
type counts struct {
	responses, conversations, idemEntries, idemBytes int64
}

// writer carries one Apply's transaction.
type writer struct {
	ctx  context.Context
	tx   pgx.Tx
	opts persistence.Options
	now  time.Time
	n    counts
	// batch holds writes whose results nothing reads; they go to the
	// database with the next read, in one round trip (pipelined), since
	// every statement of the transaction costs a round trip otherwise.
	// owners says which op queued each, so a failure names the right op;
	// op is the one being applied.
	batch  pgx.Batch
	owners []int
	// owner is the node process the response records name (Store.SetOwner).
	owner string
	op    int
}

// queuedError is a queued write's failure: owner is the op that queued it.
type queuedError struct {
	owner int
	err   error
}

func (e *queuedError) Error() string { return e.err.Error() }
func (e *queuedError) Unwrap() error { return e.err }

// culprit is the op to blame for err, which op i's apply returned.
func (w *writer) culprit(i int, err error) int {
	var qe *queuedError
	if errors.As(err, &qe) {
		return qe.owner
	}
	return i
}

// queue adds a write whose result nothing needs.
func (w *writer) queue(sql string, args ...any) {
	w.batch.Queue(sql, args...)
	w.owners = append(w.owners, w.op)
}

// send sends the queued writes followed by read (when not empty) and
// returns the results, with the writes' already taken; the caller reads
// the read's and closes them.
func (w *writer) send(read string, args []any) (pgx.BatchResults, error) {
	b, owners := w.batch, w.owners
	w.batch, w.owners = pgx.Batch{}, nil
	if read != "" {
		b.Queue(read, args...)
	}
	br := w.tx.SendBatch(w.ctx, &b)
	for _, owner := range owners {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, &queuedError{owner: owner, err: err}
		}
	}
	return br, nil
}

// flush sends the queued writes.
func (w *writer) flush() error {
	if w.batch.Len() == 0 {
		return nil
	}
	br, err := w.send("", nil)
	if err != nil {
		return err
	}
	return br.Close()
}

// row runs a read of one row after the queued writes, in one round trip,
// and scans it into dest (pgx.ErrNoRows when there is none).
func (w *writer) row(sql string, args []any, dest ...any) error {
	if w.batch.Len() == 0 {
		return w.tx.QueryRow(w.ctx, sql, args...).Scan(dest...)
	}
	br, err := w.send(sql, args)
	if err != nil {
		return err
	}
	err = br.QueryRow().Scan(dest...)
	if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
		err = cerr
	}
	return err
}

// rows runs a read of many rows after the queued writes.
func (w *writer) rows(sql string, args ...any) (pgx.Rows, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	return w.tx.Query(w.ctx, sql, args...)
}

func newWriter(ctx context.Context, tx pgx.Tx, opts persistence.Options) (*writer, error) {
	if err := lockWrites(ctx, tx, writeLock); err != nil {
		return nil, err
	}
	w := &writer{ctx: ctx, tx: tx, opts: opts, now: opts.Now()}
	err := tx.QueryRow(ctx, "SELECT responses, conversations, idempotency_entries, idempotency_bytes FROM store_counts").
		Scan(&w.n.responses, &w.n.conversations, &w.n.idemEntries, &w.n.idemBytes)
	return w, err
}

// exec runs a write whose count of rows is needed, after the queued ones.
func (w *writer) exec(sql string, args ...any) (int64, error) {
	if err := w.flush(); err != nil {
		return 0, err
	}
	tag, err := w.tx.Exec(w.ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (w *writer) apply(sp persistence.OpSpec) error {
	switch sp.Kind {
	case persistence.OpPutResponse:
		return w.putResponse(sp)
	case persistence.OpDeleteResponse:
		return w.deleteResponse(sp.ID)
	case persistence.OpTouchResponse:
		w.queue("UPDATE responses SET used = nextval('store_seq') WHERE id = $1", sp.ID)
		return nil
	case persistence.OpPutConversation:
		return w.putConversation(sp.Conv)
	case persistence.OpDeleteConversation:
		return w.deleteConversation(sp.ID)
	case persistence.OpPutIdempotency:
		return w.putIdempotency(sp.ID, sp.Idem)
	case persistence.OpUpdateConversation:
		return w.updateConversation(sp.ID, sp.Update)
	case persistence.OpFence:
		if err := w.flush(); err != nil {
			return err
		}
		return CheckFence(w.ctx, w.tx, sp.ID, sp.Epoch)
	}
	return hermes.Errorf(hermes.EInvalid, "unknown op")
}

func (w *writer) finish() error {
	if err := w.evictResponses(); err != nil {
		return fmt.Errorf("evicting responses: %w", err)
	}
	if err := w.evictConversations(); err != nil {
		return fmt.Errorf("evicting conversations: %w", err)
	}
	if err := w.purgeIdempotency(); err != nil {
		return fmt.Errorf("purging idempotency entries: %w", err)
	}
	if err := w.boundIdempotency(); err != nil {
		return fmt.Errorf("bounding idempotency entries: %w", err)
	}
	w.queue("UPDATE store_counts SET responses = $1, conversations = $2, idempotency_entries = $3, idempotency_bytes = $4",
		w.n.responses, w.n.conversations, w.n.idemEntries, w.n.idemBytes)
	return w.flush()
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (w *writer) putResponse(sp persistence.OpSpec) error {
	// What the write depends on, in one round trip: whether the parent's
	// items are there, whether this response's items and address are,
	// its items' parent and its conversation.
	var st existing
	if err := w.row(`SELECT
			EXISTS (SELECT 1 FROM items WHERE id = $2),
			EXISTS (SELECT 1 FROM items WHERE id = $1), (SELECT parent FROM items WHERE id = $1),
			EXISTS (SELECT 1 FROM responses WHERE id = $1), (SELECT conversation FROM responses WHERE id = $1)`,
		[]any{sp.ID, sp.Parent}, &st.parentItems, &st.items, &st.itemsParent, &st.addressed, &st.conversation); err != nil {
		return err
	}
	if err := w.putItems(sp, st); err != nil {
		return err
	}
	exists, oldConv := st.addressed, st.conversation
	conv := sp.Conversation
	seq := "NULL"
	switch {
	case exists && deref(oldConv) == conv:
		seq = "conversation_seq" // keeps its place in its conversation
	case conv != "":
		seq = "nextval('store_seq')"
	}
	if exists {
		w.queue(`UPDATE responses SET record = $2, status = $3, conversation = $4, owner = $5,
			conversation_seq = `+seq+`, used = nextval('store_seq') WHERE id = $1`,
			sp.ID, sp.Record, string(sp.Status), nullable(conv), w.owner)
		if old := deref(oldConv); old != conv && old != "" {
			if err := w.unlink(old, sp.ID); err != nil {
				return err
			}
		}
	} else {
		w.queue(`INSERT INTO responses (id, record, status, conversation, owner, conversation_seq, used)
			VALUES ($1, $2, $3, $4, $5, `+seq+`, nextval('store_seq'))`,
			sp.ID, sp.Record, string(sp.Status), nullable(conv), w.owner)
		w.n.responses++
	}
	if conv == "" {
		return nil
	}
	c, err := w.conversation(conv)
	if err != nil {
		return err
	}
	if c == nil {
		c = &persistence.Conversation{ID: conv, Created: w.now}
	}
	c.Latest = sp.ID
	return w.saveConversation(c, true)
}

// existing is what a response's write finds stored before it.
type existing struct {
	parentItems  bool    // the parent's items are kept
	items        bool    // the response's own items are
	itemsParent  *string // and point at this parent
	addressed    bool    // the response is addressable
	conversation *string // in this conversation
}

// putItems writes the response's own items under its id, pointing at its
// parent's; when the parent's items went while its turn ran, the history
// it was given is kept inline instead. A response replaced under a new
// parent releases the old one, and may not become its own ancestor.
func (w *writer) putItems(sp persistence.OpSpec, st existing) error {
	parent, data := sp.Parent, sp.Items
	if parent != "" && !st.parentItems {
		var err error
		if data, err = sp.InlineItems(); err != nil {
			return err
		}
		parent = ""
	}
	oldParent, exists := deref(st.itemsParent), st.items
	if exists && parent != oldParent && parent != "" {
		var loops bool
		if err := w.row(`WITH RECURSIVE up (id, parent, depth) AS (
				SELECT id, parent, 0 FROM items WHERE id = $1
				UNION ALL
				SELECT i.id, i.parent, u.depth + 1 FROM items i JOIN up u ON i.id = u.parent WHERE u.depth < $3
			) SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)`, []any{parent, sp.ID, maxDepth}, &loops); err != nil {
			return err
		}
		if loops {
			return hermes.Errorf(hermes.EInvalid, "response %q cannot continue its own descendant %q", sp.ID, parent)
		}
	}
	w.queue(`INSERT INTO items (id, parent, data) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET parent = excluded.parent, data = excluded.data`,
		sp.ID, nullable(parent), data)
	if exists && oldParent != "" && oldParent != parent {
		return w.release(oldParent)
	}
	return nil
}

// release deletes the items of id if no response is addressed by id and
// no items continue them, then does the same for its parent, and so on up
// the chain: items no retained response can reach go in the same
// transaction as the eviction that orphaned them. Each response's items
// are deleted once, so the cost is amortised O(1) per response.
func (w *writer) release(id string) error {
	for id != "" {
		var parent *string
		err := w.row(`DELETE FROM items WHERE id = $1
			AND NOT EXISTS (SELECT 1 FROM responses WHERE id = $1)
			AND NOT EXISTS (SELECT 1 FROM items WHERE parent = $1)
			RETURNING parent`, []any{id}, &parent)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		id = deref(parent)
	}
	return nil
}

func (w *writer) deleteResponse(id string) error {
	var conv *string
	err := w.row("DELETE FROM responses WHERE id = $1 RETURNING conversation", []any{id}, &conv)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	w.n.responses = max(w.n.responses-1, 0)
	if err := w.release(id); err != nil {
		return err
	}
	if conv == nil {
		return nil
	}
	return w.unlink(*conv, id)
}

// unlink repoints conv, when it pointed at response id (no longer its),
// at its most recent remaining response, so the pointer never dangles.
func (w *writer) unlink(conv, id string) error {
	c, err := w.conversation(conv)
	if err != nil || c == nil || c.Latest != id {
		return err
	}
	if c.Latest, err = w.latest(conv); err != nil {
		return err
	}
	return w.saveConversation(c, false)
}

// latest returns the most recently added response of conv still stored,
// or "".
func (w *writer) latest(conv string) (string, error) {
	var id string
	err := w.row(`SELECT id FROM responses WHERE conversation = $1
		ORDER BY conversation_seq DESC LIMIT 1`, []any{conv}, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// conversation returns the stored record of id, or nil. A record that no
// longer decodes counts as missing, as in the bbolt store: writes replace
// it rather than fail on it for ever.
func (w *writer) conversation(id string) (*persistence.Conversation, error) {
	var rec []byte
	err := w.row("SELECT record FROM conversations WHERE id = $1", []any{id}, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := persistence.DecodeConversation(id, rec)
	if err != nil {
		return nil, nil
	}
	return c, nil
}

// saveConversation writes c; touch makes it the most recently used.
func (w *writer) saveConversation(c *persistence.Conversation, touch bool) error {
	rec, err := persistence.EncodeRecord(c)
	if err != nil {
		return err
	}
	if !touch {
		w.queue("UPDATE conversations SET record = $2 WHERE id = $1", c.ID, rec)
		return nil
	}
	var inserted bool
	if err := w.row(`INSERT INTO conversations (id, record, used) VALUES ($1, $2, nextval('store_seq'))
		ON CONFLICT (id) DO UPDATE SET record = excluded.record, used = excluded.used
		RETURNING xmax = 0`, []any{c.ID, rec}, &inserted); err != nil {
		return err
	}
	if inserted {
		w.n.conversations++
	}
	return nil
}

func (w *writer) putConversation(in *persistence.Conversation) error {
	c := *in
	if c.Created.IsZero() {
		c.Created = w.now
		old, err := w.conversation(c.ID)
		if err != nil {
			return err
		}
		if old != nil && !old.Created.IsZero() {
			c.Created = old.Created
		}
	}
	if c.Latest != "" {
		var owner *string
		err := w.row("SELECT conversation FROM responses WHERE id = $1", []any{c.Latest}, &owner)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if c.Latest, err = w.latest(c.ID); err != nil {
				return err
			}
		case err != nil:
			return err
		case deref(owner) != c.ID:
			// Eviction repoints only the response's own conversation, so
			// pointing elsewhere could dangle later.
			return hermes.Errorf(hermes.EInvalid, "latest response %q belongs to conversation %q", c.Latest, deref(owner))
		}
	}
	if err := persistence.CheckPending(&c, w.opts.MaxPendingBytes); err != nil {
		return err
	}
	return w.saveConversation(&c, true)
}

func (w *writer) updateConversation(id string, f func(*persistence.Conversation)) error {
	c, err := w.conversation(id)
	if err != nil || c == nil {
		return err
	}
	f(c)
	c.ID = id // the key is not f's to change
	return w.putConversation(c)
}

func (w *writer) deleteConversation(id string) error {
	n, err := w.exec("DELETE FROM conversations WHERE id = $1", id)
	if err != nil {
		return err
	}
	w.n.conversations = max(w.n.conversations-n, 0)
	// Forget which responses belonged to it, so a new conversation of the
	// same name starts fresh instead of falling back to them.
	w.queue("UPDATE responses SET conversation = NULL, conversation_seq = NULL WHERE conversation = $1", id)
	return nil
}

func (w *writer) putIdempotency(key string, in *persistence.IdemEntry) error {
	e := *in
	if e.Expires.IsZero() {
		e.Expires = w.now.Add(w.opts.IdempotencyTTL)
	}
	rec, err := persistence.EncodeRecord(&e)
	if err != nil {
		return err
	}
	size := int64(len(key) + 8 + len(rec)) // as the bbolt store counts it
	var old int64
	err = w.row("SELECT bytes FROM idempotency WHERE key = $1", []any{key}, &old)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		w.n.idemEntries++
	case err != nil:
		return err
	default:
		w.n.idemBytes -= old
	}
	w.n.idemBytes += size
	w.queue(`INSERT INTO idempotency (key, record, expires, bytes) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET record = excluded.record, expires = excluded.expires, bytes = excluded.bytes`,
		key, rec, e.Expires, size)
	return nil
}

// dropIdempotency deletes the entries the query selects (by key) and
// takes them off the totals; it returns how many went.
func (w *writer) dropIdempotency(selectKeys string, args ...any) (int64, error) {
	rows, err := w.rows("DELETE FROM idempotency WHERE key IN ("+selectKeys+") RETURNING bytes", args...)
	if err != nil {
		return 0, err
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, err
	}
	for _, b := range sizes {
		w.n.idemEntries--
		w.n.idemBytes -= b
	}
	w.n.idemEntries, w.n.idemBytes = max(w.n.idemEntries, 0), max(w.n.idemBytes, 0)
	return int64(len(sizes)), nil
}

func (w *writer) purgeIdempotency() error {
	_, err := w.dropIdempotency("SELECT key FROM idempotency WHERE expires <= $1 ORDER BY expires LIMIT $2", w.now, purgeBatch)
	return err
}

// boundIdempotency drops the entries expiring first until the count and
// the bytes fit. Every entry lives as long, so these are the oldest.
func (w *writer) boundIdempotency() error {
	for w.n.idemEntries > int64(w.opts.MaxIdempotencyEntries) || w.n.idemBytes > int64(w.opts.MaxIdempotencyBytes) {
		excess := max(w.n.idemEntries-int64(w.opts.MaxIdempotencyEntries), 1)
		n, err := w.dropIdempotency("SELECT key FROM idempotency ORDER BY expires, key LIMIT $1", excess)
		if err != nil {
			return err
		}
		if n == 0 { // the totals were wrong: nothing is left
			w.n.idemEntries, w.n.idemBytes = 0, 0
		}
	}
	return nil
}

// evictResponses deletes the least recently used responses beyond the
// capacity.
func (w *writer) evictResponses() error {
	return w.evictLRU("responses", &w.n.responses, w.opts.Capacity, w.deleteResponse)
}

// evictConversations deletes the least recently used conversations beyond
// Options.MaxConversations, with their pending items; their responses stay
// until the response cap evicts them.
func (w *writer) evictConversations() error {
	return w.evictLRU("conversations", &w.n.conversations, w.opts.MaxConversations, w.deleteConversation)
}

// evictLRU drops the rows of table (one of this file's own names, never a
// client's) least recently used first while *count is over limit. No row
// left with the count still over means the count was wrong: it is reset.
func (w *writer) evictLRU(table string, count *int64, limit int, drop func(id string) error) error {
	for *count > int64(limit) {
		rows, err := w.rows("SELECT id FROM "+table+" ORDER BY used LIMIT $1", *count-int64(limit))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			*count = 0
			return nil
		}
		for _, id := range ids {
			if err := drop(id); err != nil {
				return err
			}
		}
	}
	return nil
}
