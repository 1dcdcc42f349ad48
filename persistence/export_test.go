package persistence

import bolt "go.etcd.io/bbolt"

// Counts of what the store keeps, for the contract suite (storetest),
// which runs in package persistence_test. ItemRecords also verifies the
// items' reference counts, so every count the suite takes checks them.

func ItemRecords(s *Store) (int, error) { return itemRecords(s) }

func IdempotencyRecords(s *Store) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketIdem).Stats().KeyN; return nil })
	return n, err
}
