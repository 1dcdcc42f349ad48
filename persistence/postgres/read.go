package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// queryTimeout bounds every call: the store's methods take no context, and
// a database gone silent must fail a request, not hang it.
const queryTimeout = 30 * time.Second

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), queryTimeout)
}

func readFailed(err error) error { return storeError("store read failed", err) }

// storeError is a failed statement as hermesd reports it: a database that
// cannot be reached or is going away (refused, reset, timed out, shutting
// down) is EUnavailable with a Retry-After, so clients retry through a
// restart or failover rather than take it for a server fault; anything
// else is EInternal.
func storeError(what string, err error) error {
	e := &hermes.Error{Code: hermes.EInternal, Message: what + ": " + oneLine(err), Cause: err}
	if unreachableErr(err) {
		e.Code, e.RetryAfter = hermes.EUnavailable, time.Second
	}
	return e
}

func unreachableErr(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exceptions; 57P01-57P03: the server is
		// shutting down or not yet accepting connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// storable reports whether s can be a key: PostgreSQL's text holds valid
// UTF-8 without NUL bytes, while ids, names and keys come from clients.
// What cannot be stored cannot be found either.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Response returns the stored response id with its own items, or an
// ENotFound error. Its Transcript is not filled in.
func (s *Store) Response(id string) (*hermes.StoredResponse, error) { return s.response(id, true) }

// ResponseHead returns the stored response id without its items.
func (s *Store) ResponseHead(id string) (*hermes.StoredResponse, error) {
	return s.response(id, false)
}

func (s *Store) response(id string, withItems bool) (*hermes.StoredResponse, error) {
	if !storable(id) {
		return nil, hermes.Errorf(hermes.ENotFound, "response %q not found", id)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	q := "SELECT r.record, i.parent, NULL::bytea FROM responses r JOIN items i ON i.id = r.id WHERE r.id = $1"
	if withItems {
		q = "SELECT r.record, i.parent, i.data FROM responses r JOIN items i ON i.id = r.id WHERE r.id = $1"
	}
	var rec, data []byte
	var parent *string
	err := s.pool.QueryRow(ctx, q, id).Scan(&rec, &parent, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, hermes.Errorf(hermes.ENotFound, "response %q not found", id)
	}
	if err != nil {
		return nil, readFailed(err)
	}
	r, err := persistence.DecodeResponse(id, rec)
	if err != nil {
		return nil, err
	}
	r.Parent = deref(parent) // where its items point now, whatever the record said
	if withItems {
		if err := persistence.FillItems(r, data); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// maxDepth bounds a transcript's walk: writes never make a loop, and this
// keeps a damaged table from making one endless.
const maxDepth = 1 << 20

// Transcript returns the whole transcript of response id, addressed or
// not: its ancestors' items in order, then its own, read in one statement
// (one snapshot) walking the parents.
func (s *Store) Transcript(id string) ([]hermes.Message, error) {
	if !storable(id) {
		return nil, hermes.Errorf(hermes.ENotFound, "response %q not found", id)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE chain (id, parent, data, depth) AS (
			SELECT id, parent, data, 0 FROM items WHERE id = $1
			UNION ALL
			SELECT i.id, i.parent, i.data, c.depth + 1 FROM items i JOIN chain c ON i.id = c.parent WHERE c.depth < $2
		) SELECT id, parent, data FROM chain ORDER BY depth DESC`, id, maxDepth)
	if err != nil {
		return nil, readFailed(err)
	}
	type link struct {
		id     string
		parent *string
		data   []byte
	}
	var chain []link
	for rows.Next() {
		var l link
		if err := rows.Scan(&l.id, &l.parent, &l.data); err != nil {
			rows.Close()
			return nil, readFailed(err)
		}
		chain = append(chain, l)
	}
	if err := rows.Err(); err != nil {
		return nil, readFailed(err)
	}
	if len(chain) == 0 {
		return nil, hermes.Errorf(hermes.ENotFound, "response %q not found", id)
	}
	if p := chain[0].parent; p != nil {
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored transcript of %q is corrupt: the items of its ancestor %q are missing or loop", id, *p)}
	}
	var out []hermes.Message
	for _, l := range chain {
		if out, err = persistence.AppendItems(out, l.id, l.data); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Conversation returns the conversation id, or an ENotFound error.
func (s *Store) Conversation(id string) (*persistence.Conversation, error) {
	if !storable(id) {
		return nil, hermes.Errorf(hermes.ENotFound, "conversation %q not found", id)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	var rec []byte
	err := s.pool.QueryRow(ctx, "SELECT record FROM conversations WHERE id = $1", id).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, hermes.Errorf(hermes.ENotFound, "conversation %q not found", id)
	}
	if err != nil {
		return nil, readFailed(err)
	}
	return persistence.DecodeConversation(id, rec)
}

// Idempotency returns the entry for key; ok is false when there is none or
// it has expired (later Apply calls purge it).
func (s *Store) Idempotency(key string) (e *persistence.IdemEntry, ok bool, err error) {
	if !storable(key) {
		return nil, false, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	var rec []byte
	err = s.pool.QueryRow(ctx, "SELECT record FROM idempotency WHERE key = $1", key).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, readFailed(err)
	}
	e, err = persistence.DecodeIdempotency(key, rec)
	if err != nil {
		return nil, false, err
	}
	if !s.opts.Now().Before(e.Expires) {
		return nil, false, nil
	}
	return e, true, nil
}

// Len returns the number of stored responses, 0 when the database cannot
// say.
func (s *Store) Len() int {
	ctx, cancel := s.ctx()
	defer cancel()
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT responses FROM store_counts").Scan(&n); err != nil {
		return 0
	}
	return n
}

// Unfinished returns the ids of stored responses whose status is queued
// or in_progress. In cluster mode another node may be running them: the
// caller decides which are really orphaned.
func (s *Store) Unfinished() ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT id FROM responses WHERE status IN ('queued', 'in_progress') ORDER BY id")
	if err != nil {
		return nil, readFailed(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, readFailed(err)
	}
	return ids, nil
}
