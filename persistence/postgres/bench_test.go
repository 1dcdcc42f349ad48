package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/persistence/storetest"
)

// BenchmarkContract runs the shared store benchmarks on PostgreSQL with
// fsync on, on this machine's loopback (compare with persistence's).
func BenchmarkContract(b *testing.B) {
	server := hermestest.DurablePostgres(b)
	n := 0
	storetest.Bench(b, func(b *testing.B, opts persistence.Options) storetest.Store {
		// A database per benchmark, made through the server's own.
		admin, err := Open(context.Background(), server, persistence.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n++
		name := fmt.Sprintf("bench%d", n)
		if _, err := admin.pool.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
			b.Fatal(err)
		}
		admin.Close()
		s, err := Open(context.Background(), server[:len(server)-len("postgres?sslmode=disable")]+name+"?sslmode=disable", opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
