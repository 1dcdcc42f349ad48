package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// purgeBatch bounds how many expired idempotency entries one Apply removes,
// so a burst of expiries never makes a turn's commit slow.
const purgeBatch = 64

// OpKind says what an Op does.
type OpKind uint8

const (
	OpPutResponse OpKind = iota + 1
	OpDeleteResponse
	OpTouchResponse
	OpPutConversation
	OpDeleteConversation
	OpPutIdempotency
	OpUpdateConversation
	// OpFence checks a lease's epoch (Lease.Fence).
	OpFence
)

// Op is one write. Build it with PutResponse, DeleteResponse, TouchResponse,
// PutConversation, DeleteConversation or PutIdempotency, and commit many at
// once with Store.Apply.
type Op struct {
	kind OpKind
	id   string
	// A response is captured when the op is built: its encoded record
	// (without items), its encoded own items, the conversation it belongs
	// to and its parent; inherit is the transcript before its own items, in
	// case the parent is gone by the time the op is applied.
	rec      []byte
	node     []byte
	blobs    []blob // the images node references, kept apart
	parent   string
	inherit  []hermes.Message
	own      *hermes.StoredResponse
	splice   *hermes.Splice
	respConv string
	status   hermes.Status
	err      error // an encoding failure, reported by Apply
	conv     *Conversation
	idem     *IdemEntry
	update   func(*Conversation)
	epoch    int64 // a fence's lease epoch
}

// PutResponse inserts or replaces r and marks it most recently used. When
// r.Conversation is set, that conversation (created if needed) then points at
// r. Only r's own items are written, with a pointer to r.Parent, so the
// write does not grow with the chain. Should the parent have been deleted
// since r's turn read it, r keeps the rest of its Transcript inline instead,
// so its transcript stays whole; so does a response with no parent whose
// Transcript holds more than its own items (a compacted history). A
// response with a parent and a Splice (a compaction that kept the parent's
// most recent turns) writes the splice's head and where the kept turns
// start, not the kept turns.
//
// The record is encoded here, on the caller's goroutine, so the single
// writer spends its time writing; later changes to r's fields are not
// stored (its Transcript's elements must not be changed in place).
func PutResponse(r *hermes.StoredResponse) Op {
	op := Op{kind: OpPutResponse}
	if r == nil {
		return op
	}
	op.id, op.respConv, op.parent, op.status = r.ID, r.Conversation, r.Parent, r.Status
	bare := *r
	bare.Consumed, bare.Input, bare.Output, bare.Transcript = nil, nil, nil, nil
	if op.rec, op.err = encode(&bare); op.err != nil {
		return op
	}
	own := &hermes.StoredResponse{Consumed: r.Consumed, Input: r.Input, Output: r.Output}
	var inherit []hermes.Message
	if n := len(r.Consumed) + len(r.Input) + len(r.Output); len(r.Transcript) >= n {
		inherit = r.Transcript[:len(r.Transcript)-n]
	}
	op.own, op.inherit = own, inherit
	if op.parent == "" {
		// No parent but a history (a compacted base): keep it inline.
		op.node, op.blobs, op.err = encodeNode(newNode(inherit, own))
		return op
	}
	op.splice = r.Splice
	op.node, op.blobs, op.err = encodeNode(op.ownNode())
	return op
}

// ownNode lays out the items a response with a parent stores: its own,
// after the head of its splice when it has one (a compaction that kept
// its parent's last turns: the head only, and where in the parent's
// transcript the kept turns start).
func (o Op) ownNode() *node {
	if sp := o.splice; sp != nil && sp.Skip > 0 {
		n := newNode(sp.Head, o.own)
		n.Skip = sp.Skip
		return n
	}
	return newNode(nil, o.own)
}

// DeleteResponse removes the response id; a missing id is not an error.
func DeleteResponse(id string) Op { return Op{kind: OpDeleteResponse, id: id} }

// TouchResponse marks the response id most recently used, as continuing a
// chain from it does; a missing id is not an error (it may just have been
// evicted).
func TouchResponse(id string) Op { return Op{kind: OpTouchResponse, id: id} }

// PutConversation creates or replaces the conversation record c. A zero
// Created keeps the stored one (or takes now). A Latest that names no stored
// response, as when it was evicted after c was read, is repointed to the
// conversation's most recent stored response, or "".
func PutConversation(c *Conversation) Op {
	op := Op{kind: OpPutConversation, conv: c}
	if c != nil {
		op.id = c.ID
	}
	return op
}

// DeleteConversation removes the conversation record id. Its responses stay
// until evicted; their Conversation field is then only a name, and a new
// conversation of the same name does not fall back to them.
func DeleteConversation(id string) Op { return Op{kind: OpDeleteConversation, id: id} }

// UpdateConversation changes the stored conversation id in place, inside
// the write transaction: f sees the record as committed so far, so
// concurrent changes (a turn consuming pending items while a client adds
// more) cannot overwrite each other. A missing conversation is left alone.
func UpdateConversation(id string, f func(c *Conversation)) Op {
	return Op{kind: OpUpdateConversation, id: id, update: f}
}

// PutIdempotency stores e under key, replacing any entry. A zero e.Expires
// becomes now plus Options.IdempotencyTTL.
func PutIdempotency(key string, e *IdemEntry) Op {
	return Op{kind: OpPutIdempotency, id: key, idem: e}
}

// String names the op for error messages.
func (o Op) String() string {
	switch o.kind {
	case OpPutResponse:
		return fmt.Sprintf("put response %q", o.id)
	case OpDeleteResponse:
		return fmt.Sprintf("delete response %q", o.id)
	case OpTouchResponse:
		return fmt.Sprintf("touch response %q", o.id)
	case OpPutConversation:
		return fmt.Sprintf("put conversation %q", o.id)
	case OpDeleteConversation:
		return fmt.Sprintf("delete conversation %q", o.id)
	case OpPutIdempotency:
		return fmt.Sprintf("put idempotency %q", o.id)
	case OpUpdateConversation:
		return fmt.Sprintf("update conversation %q", o.id)
	case OpFence:
		return fmt.Sprintf("fence lease %q epoch %d", o.id, o.epoch)
	}
	return "zero op"
}

func (o Op) check() error {
	if o.kind == 0 {
		return hermes.Errorf(hermes.EInvalid, "zero Op; build ops with the constructors")
	}
	if o.err != nil {
		return &hermes.Error{Code: hermes.EInternal, Message: "cannot encode record", Cause: o.err}
	}
	if (o.kind == OpPutResponse && o.rec == nil) || (o.kind == OpPutConversation && o.conv == nil) ||
		(o.kind == OpPutIdempotency && o.idem == nil) || (o.kind == OpUpdateConversation && o.update == nil) {
		return hermes.Errorf(hermes.EInvalid, "nil record")
	}
	if err := checkID("id", o.id); err != nil {
		return err
	}
	switch o.kind {
	case OpPutResponse:
		if o.parent == o.id {
			return hermes.Errorf(hermes.EInvalid, "response %q cannot continue itself", o.id)
		}
		if err := checkName("parent", o.parent); err != nil {
			return err
		}
		return checkName("conversation", o.respConv)
	case OpPutConversation:
		return checkName("latest", o.conv.Latest)
	}
	return nil
}

func checkID(what, id string) error {
	if id == "" {
		return hermes.Errorf(hermes.EInvalid, "empty %s", what)
	}
	return checkName(what, id)
}

// checkName refuses names no store can keep as given: longer than
// maxIDLen, or not UTF-8 text without NUL bytes (records are JSON, which
// would rewrite the bytes and leave a record naming another id, and
// PostgreSQL's text holds neither).
func checkName(what, s string) error {
	if len(s) > maxIDLen {
		return hermes.Errorf(hermes.EInvalid, "%s longer than %d bytes", what, maxIDLen)
	}
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return hermes.Errorf(hermes.EInvalid, "%s %q is not UTF-8 text without NUL bytes", what, s)
	}
	return nil
}

// Apply commits ops in order in one transaction (one fsync), then evicts
// least recently used responses beyond the capacity and purges a bounded
// number of expired idempotency entries. If any op fails nothing is written,
// and the error names the op.
func (s *Store) Apply(ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	for i, op := range ops {
		if err := op.check(); err != nil {
			return OpError(i, len(ops), op, err)
		}
	}
	now := s.opts.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		w := newWriter(tx, now, s.opts)
		for i, op := range ops {
			if err := w.apply(op); err != nil {
				return OpError(i, len(ops), op, err)
			}
		}
		if err := w.evict(); err != nil {
			return wrapInternal("evicting responses", err)
		}
		if err := w.evictConversations(); err != nil {
			return wrapInternal("evicting conversations", err)
		}
		if err := w.purgeIdempotency(); err != nil {
			return wrapInternal("purging idempotency entries", err)
		}
		if err := w.boundIdempotency(); err != nil {
			return wrapInternal("bounding idempotency entries", err)
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
	return wrapInternal("commit", err)
}

// OpError is the error of ops[i] of n failing with err: err's code, and a
// message naming the op.
func OpError(i, n int, op Op, err error) error {
	code, msg, cause, param := hermes.EInternal, err.Error(), error(err), "" // a bbolt error: its text is the useful part
	var he *hermes.Error
	if errors.As(err, &he) {
		code, msg, cause, param = he.Code, he.Message, he.Cause, he.Param
	}
	return &hermes.Error{
		Code:    code,
		Param:   param,
		Message: fmt.Sprintf("store apply: op %d of %d (%s): %s", i+1, n, op, msg),
		Cause:   cause,
	}
}

func wrapInternal(what string, err error) error {
	return &hermes.Error{Code: hermes.EInternal, Message: "store apply: " + what + " failed", Cause: err}
}

// writer carries one Apply's transaction.
type writer struct {
	now   time.Time
	opts  Options
	meta  *bolt.Bucket
	resp  *bolt.Bucket
	rmeta *bolt.Bucket
	lru   *bolt.Bucket
	convs *bolt.Bucket
	cidx  *bolt.Bucket
	idem  *bolt.Bucket
	idemX *bolt.Bucket
	items *bolt.Bucket
	refs  *bolt.Bucket
	// blobs, blobRefs and itemBlobs keep images apart (blobs.go).
	blobs     *bolt.Bucket
	blobRefs  *bolt.Bucket
	itemBlobs *bolt.Bucket
	// convLRU and convSeq order the conversations; convN counts them and
	// idemN, idemB the idempotency entries and their bytes (bounds.go).
	convLRU *bolt.Bucket
	convSeq *bolt.Bucket
	convN   counter
	idemN   counter
	idemB   counter
	count   uint64
	dirty   bool // count changed
}

func newWriter(tx *bolt.Tx, now time.Time, opts Options) *writer {
	w := &writer{
		now:   now,
		opts:  opts,
		meta:  tx.Bucket(bucketMeta),
		resp:  tx.Bucket(bucketResponses),
		rmeta: tx.Bucket(bucketRespMeta),
		lru:   tx.Bucket(bucketLRU),
		convs: tx.Bucket(bucketConvs),
		cidx:  tx.Bucket(bucketConvIndex),
		idem:  tx.Bucket(bucketIdem),
		idemX: tx.Bucket(bucketIdemExp),
		items: tx.Bucket(bucketItems),
		refs:  tx.Bucket(bucketItemRefs),

		blobs:     tx.Bucket(bucketBlobs),
		blobRefs:  tx.Bucket(bucketBlobRefs),
		itemBlobs: tx.Bucket(bucketItemBlobs),

		convLRU: tx.Bucket(bucketConvLRU),
		convSeq: tx.Bucket(bucketConvSeq),
	}
	// These trees grow at their end: the lru by sequence, the others by
	// response id, which sorts by time (httpfront.NewID). bbolt's default
	// split leaves pages half empty, right for random inserts; appended
	// keys never come back to fill them, so every commit would rewrite
	// twice the pages it needs. (bbolt forgets FillPercent with the
	// transaction, so it is set on every one.)
	for _, b := range []*bolt.Bucket{w.resp, w.rmeta, w.lru, w.items, w.refs} {
		b.FillPercent = 0.9
	}
	w.count = readCount(w.meta)
	w.convN = loadCounter(w.meta, keyConvCount)
	w.idemN = loadCounter(w.meta, keyIdemCount)
	w.idemB = loadCounter(w.meta, keyIdemBytes)
	return w
}

func (w *writer) apply(op Op) error {
	switch op.kind {
	case OpPutResponse:
		return w.putResponse(op)
	case OpDeleteResponse:
		return w.deleteResponse(op.id)
	case OpTouchResponse:
		return w.touch(op.id)
	case OpPutConversation:
		return w.putConversation(op.conv)
	case OpDeleteConversation:
		return w.deleteConversation(op.id)
	case OpPutIdempotency:
		return w.putIdempotency(op.id, op.idem)
	case OpUpdateConversation:
		return w.updateConversation(op.id, op.update)
	case OpFence:
		return nil // one process owns a bbolt file: no other node can hold a lease
	}
	return hermes.Errorf(hermes.EInvalid, "unknown op")
}

func (w *writer) finish() error {
	for _, c := range []*counter{&w.convN, &w.idemN, &w.idemB} {
		if err := c.save(w.meta); err != nil {
			return err
		}
	}
	if !w.dirty {
		return nil
	}
	return w.meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, w.count))
}

// respMeta is the bookkeeping kept beside each response so that touch,
// delete and eviction never decode the (large) record.
type respMeta struct {
	lru  uint64 // key in the lru bucket
	idx  uint64 // sequence in the conversation index; 0 when conv is ""
	conv string
}

func (m respMeta) encode() []byte {
	b := make([]byte, 16, 16+len(m.conv))
	binary.BigEndian.PutUint64(b, m.lru)
	binary.BigEndian.PutUint64(b[8:], m.idx)
	return append(b, m.conv...)
}

func (w *writer) respMeta(id string) (respMeta, bool) {
	v := w.rmeta.Get([]byte(id))
	if len(v) < 16 {
		return respMeta{}, false
	}
	return respMeta{
		lru:  binary.BigEndian.Uint64(v),
		idx:  binary.BigEndian.Uint64(v[8:]),
		conv: string(v[16:]),
	}, true
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// convPrefix starts every index key of one conversation. The length comes
// first so that no conversation's prefix is a prefix of another's.
func convPrefix(conv string) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(conv)+8), uint16(len(conv)))
	return append(b, conv...)
}

func convKey(conv string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(convPrefix(conv), seq)
}

func (w *writer) putResponse(op Op) error {
	id, conv := op.id, op.respConv
	m, exists := w.respMeta(id)
	if err := w.putItems(op, !exists); err != nil {
		return err
	}
	if exists {
		if err := w.lru.Delete(seqKey(m.lru)); err != nil {
			return err
		}
		if m.conv != conv && m.conv != "" {
			if err := w.unlinkFromConversation(m.conv, m.idx, id); err != nil {
				return err
			}
		}
	} else {
		w.count++
		w.dirty = true
	}
	seq, err := w.lru.NextSequence()
	if err != nil {
		return err
	}
	nm := respMeta{lru: seq, conv: conv}
	if exists && m.conv == conv {
		nm.idx = m.idx
	}
	if err := w.lru.Put(seqKey(seq), []byte(id)); err != nil {
		return err
	}
	if conv != "" && nm.idx == 0 {
		if nm.idx, err = w.cidx.NextSequence(); err != nil {
			return err
		}
		if err := w.cidx.Put(convKey(conv, nm.idx), []byte(id)); err != nil {
			return err
		}
	}
	if err := w.rmeta.Put([]byte(id), nm.encode()); err != nil {
		return err
	}
	if err := w.resp.Put([]byte(id), op.rec); err != nil {
		return err
	}
	if conv == "" {
		return nil
	}
	c := w.conversation(conv)
	if c == nil {
		c = &Conversation{ID: conv, Created: w.now}
	}
	c.Latest = id
	if err := w.saveConversation(c); err != nil {
		return err
	}
	return w.touchConversation(conv)
}

func (w *writer) deleteResponse(id string) error {
	m, ok := w.respMeta(id)
	if !ok {
		// No bookkeeping: delete a stray record if there is one.
		return w.resp.Delete([]byte(id))
	}
	if err := w.lru.Delete(seqKey(m.lru)); err != nil {
		return err
	}
	if err := w.rmeta.Delete([]byte(id)); err != nil {
		return err
	}
	if err := w.resp.Delete([]byte(id)); err != nil {
		return err
	}
	if err := w.release(id); err != nil {
		return err
	}
	if w.count > 0 {
		w.count--
		w.dirty = true
	}
	if m.conv == "" {
		return nil
	}
	return w.unlinkFromConversation(m.conv, m.idx, id)
}

// unlinkFromConversation drops response id from conv's index and, when conv
// pointed at it, repoints conv at its most recent remaining response so the
// pointer never dangles.
func (w *writer) unlinkFromConversation(conv string, idx uint64, id string) error {
	if err := w.cidx.Delete(convKey(conv, idx)); err != nil {
		return err
	}
	c := w.conversation(conv)
	if c == nil || c.Latest != id {
		return nil
	}
	c.Latest = w.latest(conv)
	return w.saveConversation(c)
}

// latest returns the most recently added response of conv still stored, or
// "". Responses of one conversation form one chain, each continuing the one
// before, so this is the nearest surviving ancestor in r.Previous order,
// found in O(log n) even when the chain has gaps.
func (w *writer) latest(conv string) string {
	prefix := convPrefix(conv)
	end := append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	c := w.cidx.Cursor()
	var v []byte
	k, _ := c.Seek(end)
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
		return ""
	}
	return string(v)
}

func (w *writer) touch(id string) error {
	m, ok := w.respMeta(id)
	if !ok {
		return nil
	}
	if err := w.lru.Delete(seqKey(m.lru)); err != nil {
		return err
	}
	seq, err := w.lru.NextSequence()
	if err != nil {
		return err
	}
	m.lru = seq
	if err := w.lru.Put(seqKey(seq), []byte(id)); err != nil {
		return err
	}
	return w.rmeta.Put([]byte(id), m.encode())
}

// conversation returns the stored record of id, or nil. A record that no
// longer decodes counts as missing here: it is unreadable anyway, and
// failing would block every later commit that touches it (eviction
// included), so writes replace it instead.
func (w *writer) conversation(id string) *Conversation {
	v := w.convs.Get([]byte(id))
	if v == nil {
		return nil
	}
	c, err := decodeConversation(id, v)
	if err != nil {
		return nil
	}
	return c
}

func (w *writer) saveConversation(c *Conversation) error {
	rec, err := encode(c)
	if err != nil {
		return err
	}
	return w.convs.Put([]byte(c.ID), rec)
}

func (w *writer) putConversation(in *Conversation) error {
	c := *in
	if c.Created.IsZero() {
		c.Created = w.now
		if old := w.conversation(c.ID); old != nil && !old.Created.IsZero() {
			c.Created = old.Created
		}
	}
	if c.Latest != "" {
		m, ok := w.respMeta(c.Latest)
		switch {
		case !ok:
			c.Latest = w.latest(c.ID)
		case m.conv != c.ID:
			// Eviction repoints only the response's own conversation, so
			// pointing elsewhere could dangle later.
			return hermes.Errorf(hermes.EInvalid, "latest response %q belongs to conversation %q", c.Latest, m.conv)
		}
	}
	if err := CheckPending(&c, w.opts.MaxPendingBytes); err != nil {
		return err
	}
	if err := w.saveConversation(&c); err != nil {
		return err
	}
	return w.touchConversation(c.ID)
}

func (w *writer) updateConversation(id string, f func(*Conversation)) error {
	c := w.conversation(id)
	if c == nil {
		return nil
	}
	f(c)
	c.ID = id // the key is not f's to change
	return w.putConversation(c)
}

func (w *writer) deleteConversation(id string) error {
	if err := w.convs.Delete([]byte(id)); err != nil {
		return err
	}
	if err := w.forgetConversation(id); err != nil {
		return err
	}
	// Forget which responses belonged to it, so a new conversation of the
	// same name starts fresh instead of falling back to them.
	prefix := convPrefix(id)
	var keys [][]byte
	var resps []string
	c := w.cidx.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+8 {
			continue
		}
		keys = append(keys, append([]byte(nil), k...))
		resps = append(resps, string(v))
	}
	for i, k := range keys {
		if err := w.cidx.Delete(k); err != nil {
			return err
		}
		if m, ok := w.respMeta(resps[i]); ok && m.conv == id {
			m.conv, m.idx = "", 0
			if err := w.rmeta.Put([]byte(resps[i]), m.encode()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Idempotency values are the expiry (8 bytes, Unix nanoseconds) followed by
// the record, so replacing and purging never decode JSON.
func expiryKey(t time.Time, key string) []byte {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return append(seqKey(uint64(n)), key...)
}

func (w *writer) putIdempotency(key string, in *IdemEntry) error {
	e := *in
	if e.Expires.IsZero() {
		e.Expires = w.now.Add(w.opts.IdempotencyTTL)
	}
	if old := w.idem.Get([]byte(key)); old != nil {
		if len(old) >= 8 {
			oldKey := append(append([]byte(nil), old[:8]...), key...)
			if err := w.idemX.Delete(oldKey); err != nil {
				return err
			}
		}
		w.idemN.add(-1)
		w.idemB.add(-int64(len(key) + len(old)))
	}
	rec, err := encode(&e)
	if err != nil {
		return err
	}
	xk := expiryKey(e.Expires, key)
	if err := w.idemX.Put(xk, nil); err != nil {
		return err
	}
	v := append(append([]byte(nil), xk[:8]...), rec...)
	w.idemN.add(1)
	w.idemB.add(int64(len(key) + len(v)))
	return w.idem.Put([]byte(key), v)
}

func (w *writer) purgeIdempotency() error {
	now := uint64(max(w.now.UnixNano(), 0))
	var expired [][]byte
	c := w.idemX.Cursor()
	for k, _ := c.First(); k != nil && len(expired) < purgeBatch; k, _ = c.Next() {
		if len(k) < 8 || binary.BigEndian.Uint64(k) > now {
			break
		}
		expired = append(expired, append([]byte(nil), k...))
	}
	for _, k := range expired {
		if err := w.dropIdempotency(k, false); err != nil {
			return err
		}
	}
	return nil
}

// evict removes least recently used responses until the count fits the
// capacity. Each victim is one O(log n) lookup of the lru bucket's first key.
func (w *writer) evict() error {
	return evictLRU(w.lru, func() bool { return w.count > uint64(w.opts.Capacity) },
		func() { w.count, w.dirty = 0, true },
		func(id string, seq uint64) bool { m, ok := w.respMeta(id); return ok && m.lru == seq },
		w.deleteResponse)
}

// evictLRU deletes the first entries of an order bucket (seq → id) while
// over says the bound is passed. An entry whose id no longer carries that
// seq (current says) is stray and only dropped, so the loop always makes
// progress; an empty order with over still true means the count is wrong,
// and reset corrects it (the order is trusted).
func evictLRU(order *bolt.Bucket, over func() bool, reset func(), current func(id string, seq uint64) bool, drop func(id string) error) error {
	for over() {
		k, v := order.Cursor().First()
		if k == nil {
			reset()
			return nil
		}
		id := string(v)
		if !current(id, binary.BigEndian.Uint64(k)) {
			if err := order.Delete(append([]byte(nil), k...)); err != nil {
				return err
			}
			continue
		}
		if err := drop(id); err != nil {
			return err
		}
	}
	return nil
}

// readRefs returns the reference count and parent of the items of id.
func readRefs(b *bolt.Bucket, id string) (refs uint32, parent string, ok bool) {
	v := b.Get([]byte(id))
	if len(v) < 4 {
		return 0, "", false
	}
	return binary.BigEndian.Uint32(v), string(v[4:]), true
}

func (w *writer) putRefs(id string, refs uint32, parent string) error {
	v := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(parent)), refs)
	return w.refs.Put([]byte(id), append(v, parent...))
}

// putItems writes the items of op's response and counts its references:
// one for its address when addressed is true (it is being added, not
// replaced), one on its parent from it.
func (w *writer) putItems(op Op, addressed bool) error {
	id, parent, data, blobs := op.id, op.parent, op.node, op.blobs
	if parent != "" && w.items.Get([]byte(parent)) == nil {
		// The parent went while this turn ran: keep the history inline.
		rec, b, err := encodeNode(newNode(op.inherit, op.own))
		if err != nil {
			return err
		}
		parent, data, blobs = "", rec, b
	}
	refs, oldParent, exists := readRefs(w.refs, id)
	if exists && parent != oldParent && parent != "" && w.descends(parent, id) {
		return hermes.Errorf(hermes.EInvalid, "response %q cannot continue its own descendant %q", id, parent)
	}
	if !exists || parent != oldParent {
		// Retain the new parent before releasing the old: they may share
		// ancestors that must not be freed in between.
		if parent != "" {
			if err := w.retain(parent); err != nil {
				return err
			}
		}
		if exists && oldParent != "" {
			if err := w.release(oldParent); err != nil {
				return err
			}
		}
	}
	if addressed {
		refs++
	}
	if err := w.putRefs(id, refs, parent); err != nil {
		return err
	}
	if err := w.putBlobs(id, blobs); err != nil {
		return err
	}
	return w.items.Put([]byte(id), data)
}

// descends reports whether id's ancestry reaches anc. It only runs when a
// stored response is replaced under a new parent, which would otherwise be
// able to tie a chain into a loop.
func (w *writer) descends(id, anc string) bool {
	seen := make(map[string]bool)
	for cur := id; cur != "" && !seen[cur]; {
		if cur == anc {
			return true
		}
		seen[cur] = true
		_, cur, _ = readRefs(w.refs, cur)
	}
	return false
}

func (w *writer) retain(id string) error {
	refs, parent, _ := readRefs(w.refs, id)
	return w.putRefs(id, refs+1, parent)
}

// release drops one reference to the items of id. Items nobody references
// any more are deleted, and so, in turn, is the reference they held on
// their parent: items no retained response can reach go in the same
// transaction as the eviction that orphaned them. Each response's items
// are deleted once, so the cost is amortised O(1) per response however
// long the chain.
func (w *writer) release(id string) error {
	for id != "" {
		refs, parent, ok := readRefs(w.refs, id)
		if !ok {
			return nil // already gone (a stray record)
		}
		if refs > 1 {
			return w.putRefs(id, refs-1, parent)
		}
		if err := w.refs.Delete([]byte(id)); err != nil {
			return err
		}
		if err := w.items.Delete([]byte(id)); err != nil {
			return err
		}
		if err := w.dropBlobs(id); err != nil {
			return err
		}
		id = parent
	}
	return nil
}
