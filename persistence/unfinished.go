package persistence

import (
	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// Unfinished returns the ids of stored responses whose status is queued or
// in_progress. At start nothing runs them any more: they were left by a
// process that stopped before finishing them. Only each record's status is
// decoded; a record that does not decode is skipped (reading it reports
// the damage).
func (s *Store) Unfinished() ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketResponses).ForEach(func(k, v []byte) error {
			var r struct {
				Status hermes.Status `json:"status"`
			}
			if decode("response", string(k), v, &r) == nil &&
				(r.Status == hermes.StatusQueued || r.Status == hermes.StatusInProgress) {
				ids = append(ids, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, &hermes.Error{Code: hermes.EInternal, Message: "store read failed", Cause: err}
	}
	return ids, nil
}
