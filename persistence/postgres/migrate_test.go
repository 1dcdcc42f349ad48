package postgres

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
)

func openTest(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConcurrentOpenMigratesOnce starts several stores on one empty
// database at once, as nodes starting together do: the schema is made
// once, every Open succeeds, and each migration is recorded once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	url := hermestest.Postgres(t)
	const nodes = 4
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	stores := make([]*Store, nodes)
	start := make(chan struct{})
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(context.Background(), url, Options{})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	rows, err := stores[0].pool.Query(context.Background(), "SELECT version FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != SchemaVersion() || versions[0] != 1 || versions[len(versions)-1] != SchemaVersion() {
		t.Fatalf("schema_version rows %v, want 1…%d once each", versions, SchemaVersion())
	}
	// A later start applies nothing.
	applied, err := migrate(context.Background(), stores[0].pool)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %v, %v; want nothing", applied, err)
	}
}

// TestOpenRefusesNewerSchema: a database migrated by a newer hermesd is
// refused with one line naming both versions, and left as it was.
func TestOpenRefusesNewerSchema(t *testing.T) {
	url := hermestest.Postgres(t)
	s := openTest(t, url, Options{})
	newer := SchemaVersion() + 1
	if _, err := s.pool.Exec(context.Background(), "INSERT INTO schema_version (version, name) VALUES ($1, 'from_the_future')", newer); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), url, Options{})
	var he *hermes.Error
	if !errors.As(err, &he) || he.Code != hermes.EUnavailable {
		t.Fatalf("Open on a newer schema: %v, want EUnavailable", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "newer") {
		t.Fatalf("message %q: want one line saying the schema is newer", msg)
	}
	var n int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_version WHERE version = $1", newer).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the newer version row: %d, %v", n, err)
	}
}

// TestOpenUnreachable: nothing listens at the URL's port; Open fails
// within its connect timeout with one line, and the password in the URL
// appears nowhere.
func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Open(context.Background(), "postgres://hermes:s3cretpw@"+addr+"/hermes?sslmode=disable", Options{})
	var he *hermes.Error
	if !errors.As(err, &he) || he.Code != hermes.EUnavailable {
		t.Fatalf("Open of a closed port: %v, want EUnavailable", err)
	}
	if msg := he.Message; strings.Contains(msg, "s3cretpw") || strings.Contains(msg, "\n") || !strings.Contains(msg, "unreachable") {
		t.Fatalf("message %q: want one line, 'unreachable', no password", msg)
	}
	_, err = Open(context.Background(), "postgres://hermes:s3cretpw@[::1/x", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("a URL that does not parse: %v; want an error without the password", err)
	}
}

// TestMigrationFileNames: the migration list refuses gaps, repeats and
// names without a four-digit version, so a misnamed file cannot be
// skipped silently.
func TestMigrationFileNames(t *testing.T) {
	if _, err := migrations(); err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":     {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"repeat":  {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"noname":  {"m/0001.sql": {}},
		"short":   {"m/1_a.sql": {}},
		"not sql": {"m/0001_a.txt": {}},
	} {
		if _, err := parseMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPoolSize: the pool holds 20 connections unless the URL says
// otherwise (pgx's default, 4 here, is too few once downloads hold
// connections).
func TestPoolSize(t *testing.T) {
	url := hermestest.Postgres(t)
	if got := openTest(t, url, Options{}).pool.Config().MaxConns; got != DefaultMaxConns {
		t.Fatalf("MaxConns = %d, want %d", got, DefaultMaxConns)
	}
	if got := openTest(t, url+"&pool_max_conns=7", Options{}).pool.Config().MaxConns; got != 7 {
		t.Fatalf("MaxConns with pool_max_conns=7 = %d", got)
	}
}
