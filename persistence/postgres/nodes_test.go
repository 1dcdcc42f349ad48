package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
)

// checkLayout verifies what every write must leave, whichever node made
// it: the counters match the rows, and every item row is reachable from
// an addressable response (unreachable items were deleted in the same
// transaction as the eviction that orphaned them).
func checkLayout(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	var counted, responses, convCounted, convs, orphans int
	err := s.pool.QueryRow(ctx, `SELECT
			(SELECT responses FROM store_counts), (SELECT count(*) FROM responses),
			(SELECT conversations FROM store_counts), (SELECT count(*) FROM conversations),
			(WITH RECURSIVE reach (id) AS (
				SELECT id FROM responses
				UNION SELECT i.parent FROM items i JOIN reach r ON i.id = r.id WHERE i.parent IS NOT NULL
			) SELECT count(*) FROM items WHERE id NOT IN (SELECT id FROM reach))`).
		Scan(&counted, &responses, &convCounted, &convs, &orphans)
	if err != nil {
		t.Fatal(err)
	}
	if counted != responses || convCounted != convs || orphans != 0 {
		t.Fatalf("counted %d responses for %d rows, %d conversations for %d rows; %d unreachable item rows", counted, responses, convCounted, convs, orphans)
	}
}

// TestNodesShareOneStore: three stores on one database, as three nodes,
// write at once — chains that continue each other's responses, turns of
// shared conversations, a cap small enough that every batch evicts. Every
// write commits or fails whole; afterwards the cap holds, no conversation
// points at a missing response, every kept response's transcript is
// whole, and no unreachable items are left.
func TestNodesShareOneStore(t *testing.T) {
	url := hermestest.Postgres(t)
	const nodes, rounds, capacity = 3, 30, 40
	stores := make([]*Store, nodes)
	for i := range stores {
		stores[i] = openTest(t, url, Options{Capacity: capacity, MaxConversations: 5})
	}
	var mu sync.Mutex // guards written and heads
	written := make(map[string]*hermes.StoredResponse)
	heads := make([]*hermes.StoredResponse, 6) // chains any node may continue
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for n, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				var ops []persistence.Op
				var mine []*hermes.StoredResponse
				mu.Lock()
				for c := range 2 {
					slot := (n*2 + c + r) % len(heads)
					parent := heads[slot]
					rec := &hermes.StoredResponse{ID: fmt.Sprintf("n%d-r%02d-c%d", n, r, c), Status: hermes.StatusCompleted,
						Conversation: fmt.Sprintf("conv-%d", slot), Input: []hermes.Message{{Role: hermes.RoleUser, Content: fmt.Sprintf("q %d %d %d", n, r, c)}},
						Output: []hermes.Message{{Role: hermes.RoleAssistant, Content: fmt.Sprintf("a %d %d %d", n, r, c)}}}
					if parent != nil {
						rec.Parent, rec.Previous = parent.ID, parent.ID
						rec.Transcript = append(rec.Transcript, parent.Transcript...)
						ops = append(ops, persistence.TouchResponse(parent.ID))
					}
					rec.Transcript = append(append(rec.Transcript, rec.Input...), rec.Output...)
					ops = append(ops, persistence.PutResponse(rec))
					heads[slot] = rec
					mine = append(mine, rec)
				}
				mu.Unlock()
				if err := s.Apply(ops); err != nil {
					errs <- fmt.Errorf("node %d round %d: %w", n, r, err)
					return
				}
				mu.Lock()
				for _, rec := range mine {
					written[rec.ID] = rec
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := stores[0]
	if n := s.Len(); n != capacity {
		t.Fatalf("Len = %d, want the cap %d", n, capacity)
	}
	kept := 0
	for id, rec := range written {
		got, err := s.Transcript(id)
		if hermes.ErrorCode(err) == hermes.ENotFound {
			continue
		}
		if _, rerr := s.Response(id); rerr == nil {
			kept++
		}
		if err != nil || !reflect.DeepEqual(got, rec.Transcript) {
			t.Fatalf("Transcript(%s): %d items, %v; want %d", id, len(got), err, len(rec.Transcript))
		}
	}
	if kept != capacity {
		t.Fatalf("%d written responses addressable, want %d", kept, capacity)
	}
	for slot := range heads {
		c, err := s.Conversation(fmt.Sprintf("conv-%d", slot))
		if hermes.ErrorCode(err) == hermes.ENotFound {
			continue // evicted beyond MaxConversations
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Latest != "" {
			if _, err := s.Response(c.Latest); err != nil {
				t.Fatalf("conversation %s points at %s: %v", c.ID, c.Latest, err)
			}
		}
	}
	checkLayout(t, s)
}

// TestFrozenWriterReleasesTheLock: a node frozen in the middle of an
// Apply, holding the write lock, does not stop the other nodes' writes
// for longer than stalledWriter: the database ends its session, its
// transaction is rolled back, and its next statement fails.
func TestFrozenWriterReleasesTheLock(t *testing.T) {
	old := stalledWriter
	stalledWriter = 300 * time.Millisecond
	t.Cleanup(func() { stalledWriter = old })
	url := hermestest.Postgres(t)
	frozen, other := openTest(t, url, Options{}), openTest(t, url, Options{})
	ctx := context.Background()
	tx, err := frozen.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := lockWrites(ctx, tx, writeLock); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO items (id, data) VALUES ('from-the-frozen-node', '\\x01')"); err != nil {
		t.Fatal(err)
	}
	// The frozen node sends nothing more; the other node writes.
	start := time.Now()
	if err := other.Apply([]persistence.Op{persistence.PutResponse(&hermes.StoredResponse{ID: "r1", Status: hermes.StatusCompleted})}); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	t.Logf("the other node's Apply waited %v for the frozen writer's lock", waited.Round(time.Millisecond))
	if waited > 10*stalledWriter+2*time.Second {
		t.Fatalf("the other node waited %v", waited)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the frozen node's transaction lives on after its session was ended")
	}
	if _, err := other.Transcript("from-the-frozen-node"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("the frozen node's uncommitted write is visible: %v", err)
	}
}

// TestDatabaseGoneIsUnavailable: when the database goes away under a
// running node, reads and writes fail as unavailable (503 with a
// Retry-After, for clients to retry through a restart or a failover), not
// as a server fault, within the connect timeout.
func TestDatabaseGoneIsUnavailable(t *testing.T) {
	srv := hermestest.OwnPostgres(t)
	s := openTest(t, srv.URL("postgres"), Options{})
	put := persistence.PutResponse(&hermes.StoredResponse{ID: "r1", Status: hermes.StatusCompleted})
	if err := s.Apply([]persistence.Op{put}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	for name, err := range map[string]error{
		"Apply":        s.Apply([]persistence.Op{put}),
		"Response":     func() error { _, err := s.Response("r1"); return err }(),
		"Transcript":   func() error { _, err := s.Transcript("r1"); return err }(),
		"Conversation": func() error { _, err := s.Conversation("c"); return err }(),
	} {
		var he *hermes.Error
		if !errors.As(err, &he) || he.Code != hermes.EUnavailable || he.RetryAfter <= 0 {
			t.Errorf("%s with the database gone: %v, want unavailable with a Retry-After", name, err)
		}
	}
	if d := time.Since(start); d > 2*ConnectTimeout {
		t.Errorf("failing took %v", d)
	}
}

// TestQueuedWriteFailureNamesItsOp: writes are pipelined with the next
// read, so a write refused by the database surfaces while a later op runs;
// the error still names the op that made the write, and nothing of the
// Apply is stored.
func TestQueuedWriteFailureNamesItsOp(t *testing.T) {
	s := openTest(t, hermestest.Postgres(t), Options{})
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
		CREATE TRIGGER refuse_boom BEFORE INSERT ON items FOR EACH ROW WHEN (NEW.id = 'boom') EXECUTE FUNCTION refuse_boom()`); err != nil {
		t.Fatal(err)
	}
	put := func(id, parent string) persistence.Op {
		return persistence.PutResponse(&hermes.StoredResponse{ID: id, Parent: parent, Status: hermes.StatusCompleted})
	}
	err := s.Apply([]persistence.Op{put("a", ""), put("boom", "a"), put("c", "a")})
	if err == nil || !strings.Contains(err.Error(), `op 2 of 3 (put response "boom")`) || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("Apply = %v; want the failure named as op 2", err)
	}
	if _, err := s.Response("a"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("a failed Apply stored a: %v", err)
	}
}
