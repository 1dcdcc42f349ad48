package persistence

import (
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// Unfinished finds the records left queued or in_progress, and only those;
// a record that does not decode is skipped, not fatal.
func TestUnfinished(t *testing.T) {
	s := newStore(t, Options{})
	var ops []Op
	for _, st := range []hermes.Status{hermes.StatusQueued, hermes.StatusInProgress, hermes.StatusCompleted,
		hermes.StatusFailed, hermes.StatusCancelled, hermes.StatusIncomplete} {
		ops = append(ops, PutResponse(&hermes.StoredResponse{ID: "resp_" + string(st), Status: st, Created: time.Now(),
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}}))
	}
	if err := s.Apply(ops); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketResponses).Put([]byte("resp_damaged"), []byte{formatVersion, '{'})
	}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.Unfinished()
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"resp_in_progress", "resp_queued"}) {
		t.Fatalf("Unfinished() = %q, %v", ids, err)
	}
}
