package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// Store is the PostgreSQL store. Its methods are safe for concurrent use,
// by any number of nodes on one database.
type Store struct {
	pool *pgxpool.Pool
	opts persistence.Options
	// owner is the cluster owner (SetOwner) named by every response
	// record this store writes; "" outside cluster mode.
	owner atomic.Pointer[string]
}

// SetOwner names this node's process (the cluster's Owner) in every
// response record the store writes from now on, so a queued or
// in_progress one is failed by the other nodes' sweep once this process
// stops renewing its node row. Call it before serving.
func (s *Store) SetOwner(owner string) { s.owner.Store(&owner) }

func (s *Store) ownerName() string {
	if o := s.owner.Load(); o != nil {
		return *o
	}
	return ""
}

// Options tune a Store: the bounds are the bbolt store's
// (persistence.Options; LockTimeout and NoSync do not apply).
type Options = persistence.Options

// DefaultMaxConns is the connection pool's size unless the URL sets
// pool_max_conns.
const DefaultMaxConns = 20

// ConnectTimeout bounds how long Open waits for the database.
const ConnectTimeout = 10 * time.Second

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), checks that it answers, and migrates its schema. A database
// that cannot be reached or whose schema is newer than this binary's is an
// EUnavailable error whose message says which, in one line, without the
// password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the string, password included.
		return nil, &hermes.Error{Code: hermes.EInvalid, Message: "database URL does not parse"}
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgx's default (4 on two cores) is too few: a file being
		// downloaded holds a connection for its snapshot, and turns,
		// leases and reads of every kind share the pool.
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, unreachable(where, err)
	}
	pctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, unreachable(where, err)
	}
	if _, err := migrate(pctx, pool); err != nil {
		pool.Close()
		var he *hermes.Error
		if errors.As(err, &he) {
			return nil, err
		}
		return nil, &hermes.Error{Code: hermes.EUnavailable, Message: fmt.Sprintf("database %s: cannot migrate the schema: %s", where, oneLine(err)), Cause: err}
	}
	return &Store{pool: pool, opts: opts}, nil
}

func unreachable(where string, err error) error {
	return &hermes.Error{Code: hermes.EUnavailable, Message: fmt.Sprintf("database %s is unreachable: %s", where, oneLine(err)), Cause: err}
}

// oneLine is the gist of a pgx error: PostgreSQL's own message when there
// is one, without the connection string pgx may put in front.
func oneLine(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && errors.Unwrap(ce) != nil {
		err = errors.Unwrap(ce)
	}
	return redact(err.Error())
}

// redact hides any password a message carries in a URL.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// Pool is the connection pool, for what shares the database with the
// store (leases, notifications).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
