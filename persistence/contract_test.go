package persistence_test

import (
	"path/filepath"
	"testing"

	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/persistence/storetest"
)

// TestContract runs the store contract on the bbolt store.
func TestContract(t *testing.T) {
	count := func(f func(*persistence.Store) (int, error)) func(*testing.T, storetest.Store) int {
		return func(t *testing.T, s storetest.Store) int {
			t.Helper()
			n, err := f(s.(*persistence.Store))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	storetest.Run(t, storetest.Backend{
		Storage: func(t *testing.T) func(*testing.T, persistence.Options) storetest.Store {
			path := filepath.Join(t.TempDir(), "api_server.db")
			return func(t *testing.T, opts persistence.Options) storetest.Store {
				t.Helper()
				opts.NoSync = true
				s, err := persistence.Open(path, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		},
		Items:              count(persistence.ItemRecords),
		IdempotencyRecords: count(persistence.IdempotencyRecords),
	})
}

// TestFilesContract runs the file store contract on the directory store.
func TestFilesContract(t *testing.T) {
	storetest.RunFiles(t, storetest.FilesBackend{
		Storage: func(t *testing.T) func(*testing.T, persistence.FilesOptions) storetest.Files {
			dir := filepath.Join(t.TempDir(), "files")
			return func(t *testing.T, opts persistence.FilesOptions) storetest.Files {
				t.Helper()
				f, err := persistence.OpenFiles(dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return f
			}
		},
	})
}

// BenchmarkContract runs the shared store benchmarks on the bbolt store,
// fsync on (compare with persistence/postgres's).
func BenchmarkContract(b *testing.B) {
	storetest.Bench(b, func(b *testing.B, opts persistence.Options) storetest.Store {
		s, err := persistence.Open(filepath.Join(b.TempDir(), "bench.db"), opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
