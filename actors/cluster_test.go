package actors

import (
	"context"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/persistence/postgres"
	"github.com/hermesd/hermesd/tooling/llm"
)

// node is one runtime of a cluster test: two of them on one database are
// two nodes in one process.
type node struct {
	rt      *Runtime
	cluster *postgres.Cluster
	store   *postgres.Store
}

func newNode(t *testing.T, url, owner string, model llm.Model, ttl time.Duration) *node {
	t.Helper()
	store, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{store: store}
	n.cluster, err = postgres.NewCluster(context.Background(), store.Pool(), postgres.ClusterOptions{Owner: owner, TTL: ttl,
		OnCancel: func(id string) { n.rt.CancelFromPeer(id) }, OnFinished: func(id string) { n.rt.PeerFinished(id) },
		OnLost: func(id string) { n.rt.MarkLost(id) }})
	if err != nil {
		t.Fatal(err)
	}
	n.rt = New(Options{Agent: &Agent{Model: model}, Store: store, Cluster: n.cluster, MaxQueued: 4})
	t.Cleanup(func() {
		_ = n.rt.Shutdown(context.Background())
		n.cluster.Close()
		store.Close()
	})
	return n
}

func userTurn(id, conv, text string) *hermes.TurnRequest {
	return &hermes.TurnRequest{ResponseID: id, Conversation: conv, Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: text}}}
}

func seenTexts(msgs []hermes.Message) string {
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.Content)
	}
	return strings.Join(texts, "|")
}

func waitResult(t *testing.T, ch <-chan *hermes.TurnResult) *hermes.TurnResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(hermestest.Timeout):
		t.Fatal("turn did not finish")
	}
	return nil
}

// Two nodes' turns of one conversation: the second waits for the first's
// lease, then sees its answer; the first node's cached transcript is not
// trusted once the other node moved the conversation on.
func TestClusterTurnsSerializeAcrossNodes(t *testing.T) {
	url := hermestest.Postgres(t)
	ma := &gateModel{gate: make(chan struct{})}
	mb := &gateModel{}
	a := newNode(t, url, "a", ma, time.Minute)
	b := newNode(t, url, "b", mb, time.Minute)

	first, err := submit(t, a.rt, userTurn("resp_1", "c", "one"))
	if err != nil {
		t.Fatal(err)
	}
	hermestest.Eventually(t, "a's model call", func() bool { ma.mu.Lock(); defer ma.mu.Unlock(); return len(ma.seen) == 1 })
	second, err := submit(t, b.rt, userTurn("resp_2", "c", "two"))
	if err != nil {
		t.Fatal(err)
	}
	hermestest.Eventually(t, "b's turn queued for the lease", func() bool {
		var n int
		_ = a.store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM lease_waiters").Scan(&n)
		return n == 1
	})
	mb.mu.Lock()
	if len(mb.seen) != 0 {
		t.Fatal("b ran its turn while a held the conversation")
	}
	mb.mu.Unlock()
	close(ma.gate)
	if r := waitResult(t, first); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := waitResult(t, second); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := seenTexts(mb.seen[0]); got != "one|echo: one|two" {
		t.Fatalf("b's turn saw %q, want a's turn before its own", got)
	}
	// a cached its own turn; b moved the conversation on since.
	third, err := submit(t, a.rt, userTurn("resp_3", "c", "three"))
	if err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, third); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := seenTexts(ma.seen[1]); got != "one|echo: one|two|echo: two|three" {
		t.Fatalf("a's next turn saw %q: its cached transcript missed b's turn", got)
	}
	if st := b.cluster.Stats(); st.Waits != 1 || st.Held != 0 {
		t.Fatalf("b's cluster stats %+v: want one wait, nothing held", st)
	}
}

// A node whose lease was taken over while its turn ran (it stalled past
// the TTL) cannot store the turn: conversation_busy, and the conversation
// keeps the newer turn.
func TestClusterStaleTurnIsConversationBusy(t *testing.T) {
	url := hermestest.Postgres(t)
	ma := &gateModel{gate: make(chan struct{})}
	// A long TTL: a's renewal does not notice the loss before the commit,
	// so the fence alone must refuse it.
	a := newNode(t, url, "a", ma, time.Minute)
	b := newNode(t, url, "b", &gateModel{}, time.Minute)
	stale, err := submit(t, a.rt, userTurn("resp_stale", "c", "from a"))
	if err != nil {
		t.Fatal(err)
	}
	hermestest.Eventually(t, "a's model call", func() bool { ma.mu.Lock(); defer ma.mu.Unlock(); return len(ma.seen) == 1 })
	if _, err := a.store.Pool().Exec(context.Background(), "UPDATE leases SET expires = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	fresh, err := submit(t, b.rt, userTurn("resp_fresh", "c", "from b"))
	if err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, fresh); r.Err != nil {
		t.Fatal(r.Err)
	}
	close(ma.gate)
	r := waitResult(t, stale)
	if r.Err == nil || r.Err.Code != hermes.EConversationBusy || r.Stored {
		t.Fatalf("stale turn: %+v, want %s and nothing stored", r.Err, hermes.EConversationBusy)
	}
	conv, err := b.store.Conversation("c")
	if err != nil || conv.Latest != "resp_fresh" {
		t.Fatalf("conversation %+v, %v: want it at b's turn", conv, err)
	}
	if _, err := b.store.Response("resp_stale"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("the stale turn was stored: %v", err)
	}
}

// A background response whose node died is marked node_lost by the node
// that takes its conversation over.
func TestClusterMarksDeadNodesResponseLost(t *testing.T) {
	url := hermestest.Postgres(t)
	b := newNode(t, url, "b", &gateModel{}, time.Minute)
	rec := &hermes.StoredResponse{ID: "resp_dead", Status: hermes.StatusInProgress, Created: time.Now()}
	if err := b.store.Apply([]persistence.Op{persistence.PutResponse(rec)}); err != nil {
		t.Fatal(err)
	}
	// A dead node's lease on the conversation, producing resp_dead.
	if _, err := b.store.Pool().Exec(context.Background(),
		"INSERT INTO leases (key, owner, epoch, response, expires) VALUES ('conv:c', 'dead', nextval('lease_epoch'), 'resp_dead', now() - interval '1 second')"); err != nil {
		t.Fatal(err)
	}
	next, err := submit(t, b.rt, userTurn("resp_next", "c", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, next); r.Err != nil {
		t.Fatal(r.Err)
	}
	got, err := b.store.Response("resp_dead")
	if err != nil || got.Status != hermes.StatusFailed || got.ErrCode != hermes.ENodeLost {
		t.Fatalf("dead node's response %+v, %v: want failed %s", got, err, hermes.ENodeLost)
	}
}

// A cancel on one node of a background response running on another: the
// running node stops it and stores it cancelled, and the asking node
// hears of the end. Asked again once it ended, the cancel finds nothing
// under way at once.
func TestClusterCancelAcrossNodes(t *testing.T) {
	url := hermestest.Postgres(t)
	ma := &gateModel{gate: make(chan struct{})}
	a := newNode(t, url, "a", ma, time.Minute)
	b := newNode(t, url, "b", &gateModel{}, time.Minute)
	req := userTurn("resp_bg", "", "long job")
	req.Background = true
	res, err := submit(t, a.rt, req)
	if err != nil {
		t.Fatal(err)
	}
	hermestest.Eventually(t, "a's model call", func() bool { ma.mu.Lock(); defer ma.mu.Unlock(); return len(ma.seen) == 1 })
	done, ok := b.rt.Cancel("resp_bg")
	if !ok {
		t.Fatal("b found nothing to cancel")
	}
	select {
	case <-done:
	case <-time.After(hermestest.Timeout):
		t.Fatal("b did not hear of the end")
	}
	if r := waitResult(t, res); r.Err == nil || r.Err.Code != hermes.ECancelled {
		t.Fatalf("turn result %+v, want cancelled", r.Err)
	}
	rec, err := b.rt.Response("resp_bg")
	if err != nil || rec.Status != hermes.StatusCancelled {
		t.Fatalf("record %+v, %v: want cancelled", rec, err)
	}
	start := time.Now()
	if _, ok := b.rt.Cancel("resp_bg"); ok || time.Since(start) > time.Second {
		t.Fatalf("a second cancel: ok %v after %v, want nothing under way at once", ok, time.Since(start))
	}
}
