package postgres

import (
	"context"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/persistence/storetest"
)

// TestContract runs the store contract on the PostgreSQL store, each
// behaviour in a database of its own.
func TestContract(t *testing.T) {
	count := func(table string) func(*testing.T, storetest.Store) int {
		return func(t *testing.T, s storetest.Store) int {
			t.Helper()
			var n int
			if err := s.(*Store).pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	storetest.Run(t, storetest.Backend{
		Storage: func(t *testing.T) func(*testing.T, persistence.Options) storetest.Store {
			url := hermestest.Postgres(t)
			return func(t *testing.T, opts persistence.Options) storetest.Store {
				t.Helper()
				return openTest(t, url, opts)
			}
		},
		Items:              count("items"),
		IdempotencyRecords: count("idempotency"),
	})
}

// TestFilesContract runs the file store contract on the PostgreSQL file
// store.
func TestFilesContract(t *testing.T) {
	storetest.RunFiles(t, storetest.FilesBackend{
		Storage: func(t *testing.T) func(*testing.T, persistence.FilesOptions) storetest.Files {
			url := hermestest.Postgres(t)
			return func(t *testing.T, opts persistence.FilesOptions) storetest.Files {
				t.Helper()
				f, err := openTest(t, url, persistence.Options{}).Files(opts)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		},
	})
}
