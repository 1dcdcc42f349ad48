package actors

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/tooling/llm"
)

// faultyStore is a real store whose Apply panics on any op naming "boom"
// (a corrupted page) and holds any op naming "slow" until released.
type faultyStore struct {
	*persistence.Store
	slowStarted chan struct{}
	release     chan struct{}
	releaseOnce sync.Once
}

func (s *faultyStore) unblock() { s.releaseOnce.Do(func() { close(s.release) }) }

func (s *faultyStore) Apply(ops []persistence.Op) error {
	for _, op := range ops {
		switch name := op.String(); {
		case strings.Contains(name, "boom"):
			panic("corrupted page")
		case strings.Contains(name, "slow"):
			s.slowStarted <- struct{}{}
			<-s.release
		}
	}
	return s.Store.Apply(ops)
}

func newFaultyRuntime(t *testing.T, model llm.Model, opts Options) (*Runtime, *faultyStore, *hermestest.SyncBuffer) {
	t.Helper()
	st, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	fs := &faultyStore{Store: st, slowStarted: make(chan struct{}, 4), release: make(chan struct{})}
	logs := &hermestest.SyncBuffer{}
	opts.Agent = &Agent{Model: model}
	opts.Store = fs
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	rt := New(opts)
	t.Cleanup(func() {
		fs.unblock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Shutdown(ctx)
		st.Close()
	})
	return rt, fs, logs
}

func rec(id string) *hermes.StoredResponse {
	return &hermes.StoredResponse{ID: id, Status: hermes.StatusCompleted, Created: time.Now(),
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}}
}

// saveAsync writes r through the writer and returns its answer channel.
func saveAsync(rt *Runtime, r *hermes.StoredResponse) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- rt.Save(r) }()
	return ch
}

// A panic inside the store (a corrupted page) fails the write that caused
// it with store_error, not its neighbours in the batch, is logged at error
// with the stack, and the writer keeps serving. Before, the supervisor
// restarted the actor, dropped every pending write, and their callers
// waited for ever.
func TestStorePanicFailsWriteAndWriterKeepsServing(t *testing.T) {
	rt, fs, logs := newFaultyRuntime(t, &gateModel{}, Options{})
	// Hold the writer in one write so the next two land in one batch.
	slow := saveAsync(rt, rec("resp_slow"))
	<-fs.slowStarted
	boom := saveAsync(rt, rec("resp_boom"))
	good := saveAsync(rt, rec("resp_good"))
	hermestest.Eventually(t, "both writes queued behind the held one", func() bool { return rt.writes.Load() == 3 })
	fs.unblock()
	if err := within(t, slow, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := within(t, boom, 5*time.Second); hermes.ErrorCode(err) != hermes.EStore {
		t.Fatalf("write that panicked: %v, want store_error", err)
	}
	if err := within(t, good, 5*time.Second); err != nil {
		t.Fatalf("its neighbour in the batch: %v", err)
	}
	if _, err := rt.Response("resp_good"); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, `"level":"ERROR","msg":"store write panicked"`) || !strings.Contains(out, "goroutine ") {
		t.Fatalf("no error log with a stack:\n%s", out)
	}
	// A turn whose record panics the store: the client is told store_error
	// and the record is failed.
	ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_boom2", Store: true,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := within(t, ch, 5*time.Second)
	if r.Err == nil || r.Err.Code != hermes.EStore || r.Record.Status != hermes.StatusFailed || r.Stored {
		t.Fatalf("turn on a panicking store: %+v %+v", r.Err, r.Record.Status)
	}
	if err := rt.Save(rec("resp_after")); err != nil {
		t.Fatalf("the writer stopped serving after the panic: %v", err)
	}
}

// A write the store never confirms fails after CommitTimeout with
// store_error; shutdown with a wedged writer ends when its context does
// and says so.
func TestCommitHasDeadline(t *testing.T) {
	rt, fs, _ := newFaultyRuntime(t, &gateModel{}, Options{CommitTimeout: 200 * time.Millisecond})
	start := time.Now()
	err := rt.Save(rec("resp_slow"))
	if hermes.ErrorCode(err) != hermes.EStore || time.Since(start) > 5*time.Second {
		t.Fatalf("wedged write: %v after %v, want store_error after about 200ms", err, time.Since(start))
	}
	<-fs.slowStarted
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = rt.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "store writer did not stop") || time.Since(start) > 3*time.Second {
		t.Fatalf("shutdown with a wedged writer: %v after %v", err, time.Since(start))
	}
}

// After shutdown has stopped the writer, a write is an error at once, not
// a caller waiting for ever on a dead actor.
func TestWritesAfterShutdownFail(t *testing.T) {
	rt := newRuntime(t, &gateModel{}, Options{})
	if err := rt.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := within(t, saveAsync(rt, rec("resp_late")), 5*time.Second)
	if hermes.ErrorCode(err) != hermes.EUnavailable {
		t.Fatalf("write after shutdown: %v, want unavailable", err)
	}
	if err := rt.CreateConversation(&hermes.Conversation{ID: "conv_late", Created: time.Now()}); hermes.ErrorCode(err) != hermes.EUnavailable {
		t.Fatalf("conversation write after shutdown: %v, want unavailable", err)
	}
}

// stuckModel never answers and ignores its context, as an upstream client
// stuck in a read would.
type stuckModel struct {
	started chan struct{}
	release chan struct{}
}

func (m *stuckModel) Stream(ctx context.Context, req llm.Request, onDelta func(string)) (llm.Response, error) {
	m.started <- struct{}{}
	<-m.release
	return llm.Response{}, ctx.Err()
}

// Shutdown is bounded by its context whatever the turns do: a turn that
// honours cancellation is cut shortly before the end and stores its final
// record; one that ignores it is abandoned at the end. Either way the
// error names the turn.
func TestShutdownIsBoundedAndSaysWhatItCut(t *testing.T) {
	t.Run("cancelled", func(t *testing.T) {
		rt := newRuntime(t, &gateModel{gate: make(chan struct{})}, Options{})
		ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_long", Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}})
		if err != nil {
			t.Fatal(err)
		}
		waitRunning(t, rt, 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err = rt.Shutdown(ctx)
		if err == nil || !strings.Contains(err.Error(), "cancelled 1 turns") || !strings.Contains(err.Error(), "resp_long") {
			t.Fatalf("shutdown: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("shutdown took %v with a 1s grace", d)
		}
		r := within(t, ch, 5*time.Second)
		if r.Err == nil || r.Err.Code != hermes.EUnavailable || !r.Stored || r.Record.Status != hermes.StatusIncomplete {
			t.Fatalf("cut turn: %+v stored=%v", r.Err, r.Stored)
		}
	})
	t.Run("stuck tool", func(t *testing.T) {
		release, started := make(chan struct{}), make(chan struct{}, 1)
		defer close(release)
		stuck := &testTool{name: "stuck", run: func(context.Context) string { started <- struct{}{}; <-release; return "{}" }}
		rt := newToolRuntime(t, Options{}, &Agent{}, stuck)
		if _, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_tool", Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "/tool stuck {}"}}}); err != nil {
			t.Fatal(err)
		}
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		err := rt.Shutdown(ctx)
		if err == nil || !strings.Contains(err.Error(), "cancelled 1 turns") || !strings.Contains(err.Error(), "resp_tool") ||
			!strings.Contains(err.Error(), "abandoned tool calls still running: stuck (call_1)") {
			t.Fatalf("shutdown: %v", err)
		}
	})
	t.Run("abandoned", func(t *testing.T) {
		m := &stuckModel{started: make(chan struct{}, 1), release: make(chan struct{})}
		defer close(m.release)
		rt := newRuntime(t, m, Options{})
		if _, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_stuck", Store: true,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}}); err != nil {
			t.Fatal(err)
		}
		<-m.started
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := rt.Shutdown(ctx)
		if err == nil || !strings.Contains(err.Error(), "abandoned 1 turns") || !strings.Contains(err.Error(), "resp_stuck") {
			t.Fatalf("shutdown: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("shutdown took %v with a 500ms grace", d)
		}
	})
}

// waitRunning waits until n turns are running.
func waitRunning(t *testing.T, rt *Runtime, n int64) {
	t.Helper()
	hermestest.Eventually(t, fmt.Sprintf("%d turns running", n), func() bool { return rt.Stats().Running == n })
}

// TestBatchObservedBeforeReply: a write is counted (the store commit
// histogram of /metrics) before its caller hears it is stored. Before, the
// count came after the reply, and a client reading /metrics right after its
// answer could miss its own write.
func TestBatchObservedBeforeReply(t *testing.T) {
	var observed atomic.Int64
	rt := newRuntime(t, llm.NewOffline(), Options{OnBatch: func(int, time.Duration, error) {
		// Yield first, so a reply sent before this observation would be
		// seen by its caller before the count moves.
		for range 10 {
			runtime.Gosched()
		}
		observed.Add(1)
	}})
	for i := range 50 {
		if err := rt.Save(rec(fmt.Sprintf("resp_%d", i))); err != nil {
			t.Fatal(err)
		}
		if n := observed.Load(); n < int64(i+1) {
			t.Fatalf("write %d answered with %d batches observed", i+1, n)
		}
	}
}
