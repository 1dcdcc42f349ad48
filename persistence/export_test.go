package persistence

import bolt "go.etcd.io/bbolt"

// Counts of what the store keeps, for the contract suite (storetest),
// which runs in package persistence_test.

func ItemRecords(s *Store) (int, error) { return bucketKeys(s, bucketItems) }

func IdempotencyRecords(s *Store) (int, error) { return bucketKeys(s, bucketIdem) }

func bucketKeys(s *Store, bucket []byte) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil })
	return n, err
}
