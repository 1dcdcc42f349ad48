package persistence

import (
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestAppendedPagesStayFull: responses whose ids sort by time (as
// httpfront issues them) are appended at the end of the trees keyed by
// id, and a page split there leaves the old page nearly full, not half
// empty as bbolt's default split does: half-empty pages would double the
// pages each commit rewrites and the file's size.
func TestAppendedPagesStayFull(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{Capacity: 2000, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	prev := ""
	for i := range 100 {
		ops := make([]Op, 0, 2*30)
		for j := range 30 {
			r := benchResponse(fmt.Sprintf("resp_%012x%024x", i*30+j, j))
			r.Parent, r.Previous = prev, prev
			if prev != "" {
				ops = append(ops, TouchResponse(prev))
			}
			ops = append(ops, PutResponse(r))
			prev = r.ID
		}
		if err := s.Apply(ops); err != nil {
			t.Fatal(err)
		}
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketResponses, bucketRespMeta, bucketLRU, bucketItemRefs} {
			st := tx.Bucket(name).Stats()
			if st.LeafPageN < 4 {
				t.Fatalf("bucket %s has %d leaf pages: too few to tell", name, st.LeafPageN)
			}
			fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
			t.Logf("bucket %s: %d leaf pages, %.0f%% full", name, st.LeafPageN, 100*fill)
			if fill < 0.8 {
				t.Errorf("bucket %s: leaf pages %.0f%% full after appends in key order (want ≥ 80%%)", name, 100*fill)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
