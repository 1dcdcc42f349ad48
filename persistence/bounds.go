package persistence

import (
	"encoding/binary"
	"fmt"

	"github.com/goccy/go-json"
	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// Growth bounds beside the response LRU (issue 10.9): conversations by
// count, least recently used dropped first with their pending items; one
// conversation's pending items by bytes; idempotency entries by count and
// bytes, oldest dropped first. Without them a client can grow the file
// without limit: 3,300 conversations with 100 KB of items grew it by
// 221 MB, 5,000 idempotency keys by 102 MB.
var (
	bucketConvLRU = []byte("conversation_lru") // lru seq → conversation id; first key is the victim
	bucketConvSeq = []byte("conversation_seq") // conversation id → its lru seq

	keyConvCount  = []byte("conversations")
	keyIdemCount  = []byte("idempotency_entries")
	keyIdemBytes  = []byte("idempotency_bytes")
	boundsBuckets = [][]byte{bucketConvLRU, bucketConvSeq}
)

// counter is a uint64 kept in the meta bucket, written back once per Apply
// when it changed.
type counter struct {
	key   []byte
	n     uint64
	dirty bool
}

func loadCounter(meta *bolt.Bucket, key []byte) counter {
	c := counter{key: key}
	if v := meta.Get(key); len(v) == 8 {
		c.n = binary.BigEndian.Uint64(v)
	}
	return c
}

func (c *counter) add(d int64) {
	c.n = uint64(max(int64(c.n)+d, 0))
	c.dirty = true
}

func (c *counter) save(meta *bolt.Bucket) error {
	if !c.dirty {
		return nil
	}
	return meta.Put(c.key, binary.BigEndian.AppendUint64(nil, c.n))
}

// touchConversation makes id the most recently used conversation, adding
// it to the order if it is new there.
func (w *writer) touchConversation(id string) error {
	if old := w.convSeq.Get([]byte(id)); len(old) == 8 {
		if err := w.convLRU.Delete(old); err != nil {
			return err
		}
	} else {
		w.convN.add(1)
	}
	seq, err := w.convLRU.NextSequence()
	if err != nil {
		return err
	}
	if err := w.convLRU.Put(seqKey(seq), []byte(id)); err != nil {
		return err
	}
	return w.convSeq.Put([]byte(id), seqKey(seq))
}

// forgetConversation takes id out of the order (its record is being
// deleted).
func (w *writer) forgetConversation(id string) error {
	old := w.convSeq.Get([]byte(id))
	if len(old) != 8 {
		return nil
	}
	if err := w.convLRU.Delete(old); err != nil {
		return err
	}
	if err := w.convSeq.Delete([]byte(id)); err != nil {
		return err
	}
	w.convN.add(-1)
	return nil
}

// evictConversations deletes the least recently used conversations beyond
// Options.MaxConversations, with their pending items. Their responses stay
// until the response LRU evicts them, as after DeleteConversation.
func (w *writer) evictConversations() error {
	return evictLRU(w.convLRU, func() bool { return w.convN.n > uint64(w.opts.MaxConversations) },
		func() { w.convN.n, w.convN.dirty = 0, true },
		func(id string, seq uint64) bool {
			s := w.convSeq.Get([]byte(id))
			return len(s) == 8 && binary.BigEndian.Uint64(s) == seq
		},
		w.deleteConversation)
}

// CheckPending refuses a conversation whose pending items exceed max
// bytes (Options.MaxPendingBytes): they are stored in its record,
// rewritten by every change to it, and go to the model with the next turn.
func CheckPending(c *Conversation, max int) error {
	if len(c.Pending) == 0 {
		return nil
	}
	b, err := json.Marshal(c.Pending)
	if err != nil {
		return err
	}
	if len(b) > max {
		return hermes.InvalidParam("items", "conversation %q would hold %d bytes of items not yet used by a turn; at most %d are kept (API_SERVER_MAX_PENDING_BYTES): run a turn to use them first",
			c.ID, len(b), max)
	}
	return nil
}

// dropIdempotency deletes the entry of expiry key xk when it is still the
// entry's current expiry (or, with force, in any case), keeping the count
// and byte totals.
func (w *writer) dropIdempotency(xk []byte, force bool) error {
	if err := w.idemX.Delete(xk); err != nil || len(xk) < 8 {
		return err // a key too short to name an entry is only dropped
	}
	key := xk[8:]
	v := w.idem.Get(key)
	if v == nil {
		return nil
	}
	// The entry may have been replaced with a later expiry since.
	if !force && len(v) >= 8 && binary.BigEndian.Uint64(v) != binary.BigEndian.Uint64(xk) {
		return nil
	}
	w.idemN.add(-1)
	w.idemB.add(-int64(len(key) + len(v)))
	return w.idem.Delete(key)
}

// boundIdempotency drops the entries expiring first until the count and the
// bytes fit Options.MaxIdempotencyEntries and MaxIdempotencyBytes. Every
// entry lives as long, so these are the oldest.
func (w *writer) boundIdempotency() error {
	for w.idemN.n > uint64(w.opts.MaxIdempotencyEntries) || w.idemB.n > uint64(w.opts.MaxIdempotencyBytes) {
		k, _ := w.idemX.Cursor().First()
		if k == nil {
			w.idemN.n, w.idemB.n, w.idemN.dirty, w.idemB.dirty = 0, 0, true, true
			return nil
		}
		if err := w.dropIdempotency(append([]byte(nil), k...), true); err != nil {
			return err
		}
	}
	return nil
}

// backfillBounds builds the conversation order and the idempotency totals
// of a file written before they existed, once, on open.
func backfillBounds(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyConvCount) == nil {
		lru, seqs := tx.Bucket(bucketConvLRU), tx.Bucket(bucketConvSeq)
		var n uint64
		err := tx.Bucket(bucketConvs).ForEach(func(k, _ []byte) error {
			seq, err := lru.NextSequence()
			if err != nil {
				return err
			}
			n++
			if err := lru.Put(seqKey(seq), k); err != nil {
				return err
			}
			return seqs.Put(k, seqKey(seq))
		})
		if err != nil {
			return fmt.Errorf("conversation order: %w", err)
		}
		if err := meta.Put(keyConvCount, binary.BigEndian.AppendUint64(nil, n)); err != nil {
			return err
		}
	}
	if meta.Get(keyIdemCount) == nil {
		var n, size uint64
		err := tx.Bucket(bucketIdem).ForEach(func(k, v []byte) error {
			n++
			size += uint64(len(k) + len(v))
			return nil
		})
		if err != nil {
			return err
		}
		if err := meta.Put(keyIdemCount, binary.BigEndian.AppendUint64(nil, n)); err != nil {
			return err
		}
		return meta.Put(keyIdemBytes, binary.BigEndian.AppendUint64(nil, size))
	}
	return nil
}
