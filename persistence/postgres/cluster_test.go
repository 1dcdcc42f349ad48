package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
)

// testPool is the pool of a store opened on a new database.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return openTest(t, hermestest.Postgres(t), Options{}).Pool()
}

// testCluster joins the cluster on pool as owner with a short TTL.
func testCluster(t *testing.T, pool *pgxpool.Pool, owner string, ttl time.Duration, opts ...func(*ClusterOptions)) *Cluster {
	t.Helper()
	o := ClusterOptions{Owner: owner, TTL: ttl}
	for _, f := range opts {
		f(&o)
	}
	c, err := NewCluster(context.Background(), pool, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type acquired struct {
	lease *persistence.Lease
	err   error
	at    time.Time
}

func acquireAsync(c *Cluster, key, resp string, queue int) chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		l, err := c.Acquire(context.Background(), key, resp, queue)
		ch <- acquired{lease: l, err: err, at: time.Now()}
	}()
	return ch
}

func waitAcquired(t *testing.T, ch chan acquired) acquired {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatal(a.err)
		}
		return a
	case <-time.After(hermestest.Timeout):
		t.Fatal("lease not acquired in time")
	}
	return acquired{}
}

// waitQueued waits until n turns wait for key in the database.
func waitQueued(t *testing.T, pool *pgxpool.Pool, key string, n int) {
	t.Helper()
	hermestest.Eventually(t, "waiters queued", func() bool {
		var got int
		_ = pool.QueryRow(context.Background(), "SELECT count(*) FROM lease_waiters WHERE key = $1", key).Scan(&got)
		return got == n
	})
}

func TestLeaseReleaseWakesWaitersInArrivalOrder(t *testing.T) {
	pool := testPool(t)
	// A long TTL: only a notification can wake the waiters in time.
	a := testCluster(t, pool, "a", time.Minute)
	b := testCluster(t, pool, "b", time.Minute)
	c := testCluster(t, pool, "c", time.Minute)
	first, err := a.Acquire(context.Background(), "conv:x", "resp_1", 8)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, cl := range []*Cluster{b, c, a} {
		ch := acquireAsync(cl, "conv:x", "", 8)
		waitQueued(t, pool, "conv:x", i+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := waitAcquired(t, ch)
			mu.Lock()
			order = append(order, cl.opts.Owner)
			mu.Unlock()
			got.lease.Release()
		}()
	}
	start := time.Now()
	first.Release()
	wg.Wait()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("waiters took %v: not woken by notifications", d)
	}
	if len(order) != 3 || order[0] != "b" || order[1] != "c" || order[2] != "a" {
		t.Fatalf("lease order %v, want [b c a] (arrival order)", order)
	}
	if st := b.Stats(); st.Waits != 1 {
		t.Fatalf("b waits = %d, want 1", st.Waits)
	}
}

func TestLeaseQueueCap(t *testing.T) {
	pool := testPool(t)
	a := testCluster(t, pool, "a", time.Minute)
	b := testCluster(t, pool, "b", time.Minute)
	held, err := a.Acquire(context.Background(), "k", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	ch := acquireAsync(b, "k", "", 1)
	waitQueued(t, pool, "k", 1)
	_, err = b.Acquire(context.Background(), "k", "", 1)
	if hermes.ErrorCode(err) != hermes.ERateLimited {
		t.Fatalf("second waiter: %v, want %s", err, hermes.ERateLimited)
	}
	held.Release()
	waitAcquired(t, ch).lease.Release()
}

func TestLeaseWaitEndsWithContext(t *testing.T) {
	pool := testPool(t)
	a := testCluster(t, pool, "a", time.Minute)
	held, err := a.Acquire(context.Background(), "k", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { _, err := a.Acquire(ctx, "k", "", 4); done <- err }()
	waitQueued(t, pool, "k", 1)
	cause := hermes.Errorf(hermes.ECancelled, "stop")
	cancel(cause)
	if err := <-done; err != cause {
		t.Fatalf("Acquire = %v, want the context's cause", err)
	}
	waitQueued(t, pool, "k", 0) // its place is given up, not left to expire
}

// A turn whose context ends while its look at the lease is in flight
// leaves nothing behind, whenever it ends: not a place in the queue (the
// turns behind it would wait for its expiry) nor the lease (every other
// turn would). The statement is no longer cut short by the context: what
// it took is given back. Cancelled at 60 moments across the look's round
// trip, against a held lease and a free one.
func TestLeaseCancelledInFlightLeavesNothing(t *testing.T) {
	pool := testPool(t)
	a := testCluster(t, pool, "a", time.Minute)
	b := testCluster(t, pool, "b", time.Minute)
	held, err := a.Acquire(context.Background(), "busy", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	var rows int
	for i := range 60 {
		after := time.Duration(i%30) * 100 * time.Microsecond
		for _, key := range []string{"busy", "free"} {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(after, cancel)
			l, err := b.Acquire(ctx, key, "resp_b", 4)
			cancel()
			if err == nil {
				l.Release() // taken before the cancel: given back by its holder
			}
			if err := pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM lease_waiters) + (SELECT count(*) FROM leases WHERE key = 'free')").Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != 0 {
				t.Fatalf("cancelled after %v on %s: %d rows left behind (Acquire said %v)", after, key, rows, err)
			}
		}
	}
}

// A holder that stops renewing (a dead node) loses the lease at its
// expiry: the waiter takes it then, told which response the dead holder
// left unfinished, and the old epoch's writes are fenced off.
func TestLeaseExpiryFencesTheDeadHolder(t *testing.T) {
	pool := testPool(t)
	const ttl = time.Second
	dead := testCluster(t, pool, "dead", ttl)
	swept := make(chan string, 1)
	b := testCluster(t, pool, "b", ttl, func(o *ClusterOptions) { o.OnLost = func(id string) { swept <- id } })
	old, err := dead.Acquire(context.Background(), "conv:y", "resp_dead", 4)
	if err != nil {
		t.Fatal(err)
	}
	dead.Close() // stops renewing; the row stays
	start := time.Now()
	got := waitAcquired(t, acquireAsync(b, "conv:y", "resp_b", 4))
	took := got.at.Sub(start)
	if took > ttl+2*time.Second {
		t.Fatalf("took over after %v, want within TTL %v + 2s", took, ttl)
	}
	lease := got.lease
	// Whoever comes first reports the dead holder's response: the taker
	// (Orphan) or the sweeper (OnLost).
	orphan := lease.Orphan
	if orphan == "" {
		select {
		case orphan = <-swept:
		case <-time.After(hermestest.Timeout):
		}
	}
	if orphan != "resp_dead" {
		t.Fatalf("orphan %q, want resp_dead", orphan)
	}
	if lease.Epoch <= old.Epoch {
		t.Fatalf("epoch %d not above the dead holder's %d", lease.Epoch, old.Epoch)
	}
	fence := func(epoch int64) error {
		return pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
			return CheckFence(context.Background(), tx, "conv:y", epoch)
		})
	}
	if err := fence(old.Epoch); hermes.ErrorCode(err) != hermes.EConversationBusy {
		t.Fatalf("old epoch's write: %v, want %s", err, hermes.EConversationBusy)
	}
	if err := fence(lease.Epoch); err != nil {
		t.Fatalf("holder's write: %v", err)
	}
	t.Logf("lease taken over %v after its holder stopped (TTL %v)", took, ttl)
	lease.Release()
}

// A holder that stalled past its lease learns of the loss at its next
// renewal: Lost closes, so its turn stops.
func TestLeaseLostOnRenewal(t *testing.T) {
	pool := testPool(t)
	const ttl = 600 * time.Millisecond
	a := testCluster(t, pool, "a", ttl)
	b := testCluster(t, pool, "b", ttl)
	la, err := a.Acquire(context.Background(), "k", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	// As if a stalled for longer than the TTL: its lease expired and b
	// took it.
	if _, err := pool.Exec(context.Background(), "UPDATE leases SET expires = now() - interval '1 second' WHERE key = 'k'"); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Acquire(context.Background(), "k", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Release()
	select {
	case <-la.Lost():
	case <-time.After(hermestest.Timeout):
		t.Fatal("holder not told its lease was lost")
	}
	if st := a.Stats(); st.Losses != 1 {
		t.Fatalf("losses = %d, want 1", st.Losses)
	}
	select {
	case <-lb.Lost():
		t.Fatal("the new holder's lease was marked lost")
	default:
	}
	la.Release() // must not release b's lease
	var owner string
	if err := pool.QueryRow(context.Background(), "SELECT owner FROM leases WHERE key = 'k'").Scan(&owner); err != nil || owner != "b" {
		t.Fatalf("lease owner %q (%v), want b", owner, err)
	}
}

// The sweeper of any node deletes a dead node's lease that nobody waits
// for and reports the response it left unfinished.
func TestLeaseSweepReportsOrphans(t *testing.T) {
	pool := testPool(t)
	const ttl = 500 * time.Millisecond
	lost := make(chan string, 4)
	dead := testCluster(t, pool, "dead", ttl)
	testCluster(t, pool, "b", ttl, func(o *ClusterOptions) { o.OnLost = func(id string) { lost <- id } })
	if _, err := dead.Acquire(context.Background(), "k", "resp_orphan", 4); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	select {
	case id := <-lost:
		if id != "resp_orphan" {
			t.Fatalf("lost %q, want resp_orphan", id)
		}
	case <-time.After(hermestest.Timeout):
		t.Fatal("orphan not reported")
	}
}

func TestClusterCancelReachesOtherNodes(t *testing.T) {
	pool := testPool(t)
	got := make(chan string, 1)
	a := testCluster(t, pool, "a", time.Minute)
	testCluster(t, pool, "b", time.Minute, func(o *ClusterOptions) { o.OnCancel = func(id string) { got <- id } })
	if err := a.Cancel("resp_123"); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "resp_123" {
			t.Fatalf("cancel of %q", id)
		}
	case <-time.After(hermestest.Timeout):
		t.Fatal("cancel not delivered")
	}
}

// The first node's key is everyone's, whatever key the later ones offer.
func TestSharedKeyIsTheFirstOffered(t *testing.T) {
	url := hermestest.Postgres(t)
	a, b := openTest(t, url, Options{}), openTest(t, url, Options{})
	ka, err := a.SharedKey(context.Background(), "seal", []byte("key of node a"))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.SharedKey(context.Background(), "seal", []byte("key of node b"))
	if err != nil {
		t.Fatal(err)
	}
	if string(ka) != "key of node a" || string(kb) != "key of node a" {
		t.Fatalf("keys %q and %q, want node a's for both", ka, kb)
	}
}

// A write fenced by a lease another node has since taken fails whole
// with conversation_busy: none of its ops land. The holder's write lands.
func TestApplyFencedByLease(t *testing.T) {
	s := openTest(t, hermestest.Postgres(t), Options{})
	a := testCluster(t, s.Pool(), "a", time.Minute)
	b := testCluster(t, s.Pool(), "b", time.Minute)
	old, err := a.Acquire(context.Background(), "conv:f", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	// a stalls past its lease; b takes the conversation over.
	if _, err := s.Pool().Exec(context.Background(), "UPDATE leases SET expires = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	cur, err := b.Acquire(context.Background(), "conv:f", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	stale := &hermes.StoredResponse{ID: "resp_stale", Conversation: "f", Status: hermes.StatusCompleted,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "stale"}}}
	err = s.Apply([]persistence.Op{old.Fence(), persistence.PutResponse(stale)})
	if hermes.ErrorCode(err) != hermes.EConversationBusy {
		t.Fatalf("stale holder's write: %v, want %s", err, hermes.EConversationBusy)
	}
	if _, err := s.Response("resp_stale"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("the stale write landed: %v", err)
	}
	fresh := &hermes.StoredResponse{ID: "resp_fresh", Conversation: "f", Status: hermes.StatusCompleted,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "fresh"}}}
	if err := s.Apply([]persistence.Op{cur.Fence(), persistence.PutResponse(fresh)}); err != nil {
		t.Fatalf("holder's write: %v", err)
	}
	conv, err := s.Conversation("f")
	if err != nil || conv.Latest != "resp_fresh" {
		t.Fatalf("conversation %+v, %v: want it at resp_fresh", conv, err)
	}
	cur.Release()
	// Released, the lease fences nothing any more: a late write with it fails.
	if err := s.Apply([]persistence.Op{cur.Fence(), persistence.PutResponse(fresh)}); hermes.ErrorCode(err) != hermes.EConversationBusy {
		t.Fatalf("write after release: %v", err)
	}
}

// A holder whose lease was taken over learns it at release at the latest
// (its renewal may not have come yet): the loss is counted once.
func TestLeaseLossCountedAtRelease(t *testing.T) {
	pool := testPool(t)
	a := testCluster(t, pool, "a", time.Minute)
	b := testCluster(t, pool, "b", time.Minute)
	la, err := a.Acquire(context.Background(), "k", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), "UPDATE leases SET expires = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Acquire(context.Background(), "k", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	la.Release()
	la.Release()
	if st := a.Stats(); st.Losses != 1 {
		t.Fatalf("losses = %d, want 1", st.Losses)
	}
	select {
	case <-la.Lost():
	default:
		t.Fatal("the lost lease is not marked lost")
	}
	lb.Release()
	if st := b.Stats(); st.Losses != 0 {
		t.Fatalf("b's losses = %d, want 0", st.Losses)
	}
}

// Lease keys carry client-chosen conversation names: quotes, SQL, NOTIFY
// look-alikes, non-ASCII and the longest name a request may give are
// keys like any other, and their waiters are woken by their own
// notifications (md5 payloads), not another key's.
func TestLeaseHostileKeys(t *testing.T) {
	pool := testPool(t)
	a := testCluster(t, pool, "a", time.Minute)
	b := testCluster(t, pool, "b", time.Minute)
	for _, key := range []string{
		"conv:'; DROP TABLE leases; --",
		`conv:"quoted" \ back\slash`,
		"conv:NOTIFY lease_free, 'x'",
		"conv:会話 🙂",
		"conv:" + strings.Repeat("n", 256),
		"resp-chain:resp_" + strings.Repeat("0", 250),
	} {
		held, err := a.Acquire(context.Background(), key, "resp_x", 4)
		if err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		ch := acquireAsync(b, key, "", 4)
		waitQueued(t, pool, key, 1)
		held.Release()
		got := waitAcquired(t, ch)
		if got.lease.Key != key {
			t.Fatalf("lease key %q, want %q", got.lease.Key, key)
		}
		got.lease.Release()
	}
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM leases").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d leases left (%v), want none", n, err)
	}
}

// A node dies with a queued response stored before its turn took a lease
// or a queue place, and an in_progress one whose turn takes none: no
// lease row names either, yet the other nodes' sweep reports both once
// the dead node's row expires. A live node's unfinished response and a
// dead node's finished one are never reported.
func TestNodeSweepReportsUnfinishedResponsesWithoutLease(t *testing.T) {
	url := hermestest.Postgres(t)
	deadStore, liveStore := openTest(t, url, Options{}), openTest(t, url, Options{})
	const ttl = 500 * time.Millisecond
	lost := make(chan string, 64)
	dead := testCluster(t, deadStore.Pool(), "dead/1", ttl)
	testCluster(t, liveStore.Pool(), "live/1", ttl, func(o *ClusterOptions) { o.OnLost = func(id string) { lost <- id } })
	deadStore.SetOwner("dead/1")
	liveStore.SetOwner("live/1")
	put := func(s *Store, id string, status hermes.Status) {
		t.Helper()
		rec := &hermes.StoredResponse{ID: id, Status: status,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: id}}}
		if err := s.Apply([]persistence.Op{persistence.PutResponse(rec)}); err != nil {
			t.Fatal(err)
		}
	}
	put(deadStore, "resp_queued", hermes.StatusQueued)
	put(deadStore, "resp_running", hermes.StatusInProgress)
	put(deadStore, "resp_done", hermes.StatusCompleted)
	put(liveStore, "resp_alive", hermes.StatusQueued)
	killed := time.Now()
	dead.Close() // stops renewing, as a SIGKILLed node does
	// Until marked failed, a dead node's response is reported by every
	// sweep: seeing each twice means a whole sweep ran after the first
	// report, and it did not report the others either.
	seen := map[string]int{}
	deadline := time.After(hermestest.Timeout)
	for seen["resp_queued"] < 2 || seen["resp_running"] < 2 {
		select {
		case id := <-lost:
			if id != "resp_queued" && id != "resp_running" {
				t.Fatalf("sweep reported %q: only the dead node's unfinished responses may be", id)
			}
			if seen[id] == 0 {
				if d := time.Since(killed); d > 3*ttl+ttl/3+time.Second {
					t.Fatalf("%s reported %v after the node stopped, want within 2 TTL + TTL/3", id, d)
				}
			}
			seen[id]++
		case <-deadline:
			t.Fatalf("dead node's unfinished responses not reported (seen %v)", seen)
		}
	}
}

// A node dies while its turn waits in a conversation's queue behind a
// live holder: the sweep deletes the expired queue place and reports the
// response it names, while the live holder keeps its lease.
func TestLeaseSweepReportsDeadWaiters(t *testing.T) {
	pool := testPool(t)
	const ttl = 500 * time.Millisecond
	lost := make(chan string, 4)
	holder := testCluster(t, pool, "holder", ttl, func(o *ClusterOptions) { o.OnLost = func(id string) { lost <- id } })
	dead := testCluster(t, pool, "dead", ttl)
	held, err := holder.Acquire(context.Background(), "k", "resp_holder", 4)
	if err != nil {
		t.Fatal(err)
	}
	l, ticket, err := dead.Enqueue(context.Background(), "k", "resp_waiting", 4)
	if err != nil || l != nil || ticket <= 0 {
		t.Fatalf("enqueue behind the holder: lease %v ticket %d err %v, want a ticket", l, ticket, err)
	}
	dead.Close()
	select {
	case id := <-lost:
		if id != "resp_waiting" {
			t.Fatalf("lost %q, want resp_waiting", id)
		}
	case <-time.After(hermestest.Timeout):
		t.Fatal("dead waiter's response not reported")
	}
	var waiters int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM lease_waiters WHERE key = 'k'").Scan(&waiters); err != nil || waiters != 0 {
		t.Fatalf("waiters left: %d, %v", waiters, err)
	}
	var epoch int64
	if err := pool.QueryRow(context.Background(), "SELECT epoch FROM leases WHERE key = 'k' AND owner = 'holder'").Scan(&epoch); err != nil || epoch != held.Epoch {
		t.Fatalf("the live holder's lease: epoch %d, %v, want %d", epoch, err, held.Epoch)
	}
	held.Release()
}

// A fence held by a write's transaction must not block its holder's
// renewal — a share lock did, and a renewal batch and a write batch
// fencing several leases in another order deadlocked (PostgreSQL broke the
// cycle after its 1 s deadlock_timeout, stalling every node's writes) —
// while it still blocks a takeover (a new epoch) and a release or sweep
// (a delete) until the write commits.
func TestFenceBlocksTakeoverNotRenewal(t *testing.T) {
	pool := testPool(t)
	a := testCluster(t, pool, "a", 10*time.Second)
	lease, err := a.Acquire(context.Background(), "conv:f", "resp_f", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release()
	ctx := context.Background()
	fenced, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fenced.Rollback(ctx)
	if err := CheckFence(ctx, fenced, "conv:f", lease.Epoch); err != nil {
		t.Fatal(err)
	}
	// try runs q in a transaction that gives up waiting for a row lock
	// after 300 ms: nil, or the lock timeout.
	try := func(q string) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '300ms'"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, q, "conv:f")
			return err
		})
	}
	lockTimeout := func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "55P03"
	}
	if err := try("UPDATE leases SET expires = now() + interval '10 seconds' WHERE key = $1"); err != nil {
		t.Fatalf("renewal under a fence: %v, want it to pass", err)
	}
	if err := try("UPDATE leases SET epoch = nextval('lease_epoch') WHERE key = $1"); !lockTimeout(err) {
		t.Fatalf("takeover under a fence: %v, want it to wait for the write (lock timeout)", err)
	}
	if err := try("DELETE FROM leases WHERE key = $1"); !lockTimeout(err) {
		t.Fatalf("delete under a fence: %v, want it to wait for the write (lock timeout)", err)
	}
}
