package postgres

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

var tmpSeq atomic.Int64

// testPool: TEMPORARY until hermestest.Postgres lands.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	admin, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:54329/postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), tmpSeq.Add(1))
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:54329/"+name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b, _ := os.ReadFile("migrations/0002_leases.sql")
	if _, err := pool.Exec(context.Background(), string(b)); err != nil {
		t.Fatal(err)
	}
	return pool
}
