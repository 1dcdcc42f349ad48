package persistence

import (
	"encoding/binary"
	"reflect"

	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// schema1Response is a response record as schema 1 stored it: with the
// whole transcript it continued.
type schema1Response struct {
	hermes.StoredResponse
	Transcript []hermes.Message `json:"transcript"`
}

// migrateSchema1 moves every response's items out of its record into the
// items bucket. A response whose previous response is stored and whose
// transcript is that one's plus its own items points at it, so migrated
// chains share their prefix as new ones do; any other keeps its history
// inline, exactly the items it carried before. Records that do not decode
// are left as they are: they were unreadable before and stay so.
func migrateSchema1(tx *bolt.Tx) error {
	resp, items, refs := tx.Bucket(bucketResponses), tx.Bucket(bucketItems), tx.Bucket(bucketItemRefs)
	old := make(map[string]*schema1Response)
	var order []string
	err := resp.ForEach(func(k, v []byte) error {
		var r schema1Response
		if decode("response", string(k), v, &r) == nil && r.ID == string(k) {
			old[r.ID] = &r
			order = append(order, r.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	children := make(map[string]uint32)
	parents := make(map[string]string)
	for _, id := range order {
		r := old[id]
		own := len(r.Input) + len(r.Output)
		if p := old[r.Previous]; p != nil && r.Previous != id && len(p.Transcript) > 0 &&
			len(p.Transcript)+own == len(r.Transcript) &&
			reflect.DeepEqual(p.Transcript[len(p.Transcript)-1], r.Transcript[len(p.Transcript)-1]) {
			parents[id] = r.Previous
			children[r.Previous]++
		}
	}
	for _, id := range order {
		r := old[id]
		var inherited []hermes.Message
		own := len(r.Input) + len(r.Output)
		if parents[id] == "" && len(r.Transcript) >= own {
			inherited = r.Transcript[:len(r.Transcript)-own]
		}
		bare := r.StoredResponse
		bare.Parent = parents[id]
		rec, err := encode(&bare)
		if err != nil {
			return err
		}
		n, err := encode(newNode(inherited, &hermes.StoredResponse{Input: r.Input, Output: r.Output}))
		if err != nil {
			return err
		}
		if err := resp.Put([]byte(id), rec); err != nil {
			return err
		}
		if err := items.Put([]byte(id), n); err != nil {
			return err
		}
		// One reference for its address, one from each child.
		ref := binary.BigEndian.AppendUint32(nil, 1+children[id])
		if err := refs.Put([]byte(id), append(ref, parents[id]...)); err != nil {
			return err
		}
	}
	return nil
}
