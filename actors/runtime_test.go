package actors

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/tooling/llm"
)

// gateModel answers with the last user text, after its gate opens; it
// records every prompt it sees.
type gateModel struct {
	gate chan struct{}
	mu   sync.Mutex
	seen [][]hermes.Message
}

func (m *gateModel) Stream(ctx context.Context, req llm.Request, onDelta func(string)) (llm.Response, error) {
	m.mu.Lock()
	m.seen = append(m.seen, req.Messages)
	m.mu.Unlock()
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return llm.Response{}, &hermes.Error{Code: hermes.ECancelled, Message: "cancelled"}
		}
	}
	last := req.Messages[len(req.Messages)-1].Content
	if strings.Contains(last, "panic") {
		panic("model exploded")
	}
	onDelta("echo: " + last)
	return llm.Response{Text: "echo: " + last, Finish: hermes.FinishStop, Usage: hermes.Usage{PromptTokens: 1, CompletionTokens: 1}}, nil
}

func newRuntime(t *testing.T, model llm.Model, opts Options) *Runtime {
	t.Helper()
	store, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	opts.Agent = &Agent{Model: model}
	opts.Store = store
	rt := New(opts)
	t.Cleanup(func() {
		_ = rt.Shutdown(context.Background())
		store.Close()
	})
	return rt
}

// submit starts a turn and returns its result channel.
func submit(t *testing.T, rt *Runtime, req *hermes.TurnRequest) (<-chan *hermes.TurnResult, error) {
	t.Helper()
	events := make(chan hermes.Event, 64)
	req.Events, req.Ctx = events, context.Background()
	if req.Created.IsZero() {
		req.Created = time.Now()
	}
	if err := rt.Submit(req); err != nil {
		return nil, err
	}
	out := make(chan *hermes.TurnResult, 1)
	go func() {
		for ev := range events {
			if ev.Kind == hermes.EventDone {
				out <- ev.Result
				return
			}
		}
	}()
	return out, nil
}

func TestSameConversationSerializesInOrder(t *testing.T) {
	m := &gateModel{gate: make(chan struct{})}
	rt := newRuntime(t, m, Options{MaxQueued: 4})
	first, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_1", Conversation: "c", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "one"}}})
	if err != nil {
		t.Fatal(err)
	}
	second, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_2", Conversation: "c", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "two"}}})
	if err != nil {
		t.Fatal(err)
	}
	close(m.gate)
	r1, r2 := <-first, <-second
	if r1.Err != nil || r2.Err != nil {
		t.Fatal(r1.Err, r2.Err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.seen) != 2 {
		t.Fatalf("%d model calls", len(m.seen))
	}
	var texts []string
	for _, msg := range m.seen[1] {
		texts = append(texts, msg.Content)
	}
	if got := strings.Join(texts, "|"); got != "one|echo: one|two" {
		t.Fatalf("second turn saw %q, want the first turn's answer before its input", got)
	}
}

func TestQueueOverflowIsRateLimited(t *testing.T) {
	m := &gateModel{gate: make(chan struct{})}
	rt := newRuntime(t, m, Options{MaxQueued: 1})
	var results []<-chan *hermes.TurnResult
	for i := 0; i < 2; i++ {
		ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_q" + string(rune('a'+i)), Conversation: "busy", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, ch)
	}
	_, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_qz", Conversation: "busy", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}})
	var he *hermes.Error
	if !errors.As(err, &he) || he.Code != hermes.ERateLimited || he.RetryAfter == 0 {
		t.Fatalf("third turn: %v, want rate limited", err)
	}
	// Another conversation is not held up by the busy one.
	other, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_o", Conversation: "other", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "y"}}})
	if err != nil {
		t.Fatal(err)
	}
	close(m.gate)
	for _, ch := range append(results, other) {
		if r := <-ch; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if s := rt.Stats(); s.Admitted != 0 {
		t.Fatalf("admitted %d after all turns ended", s.Admitted)
	}
}

// A turn no actor takes in time is refused, and stays refused: it neither
// runs later nor keeps its place.
func TestAdmissionTimeoutRefusesOnce(t *testing.T) {
	rt := newRuntime(t, &gateModel{}, Options{AdmitTimeout: 50 * time.Millisecond})
	if err := rt.root.StopFuture(rt.dispatcher).Wait(); err != nil {
		t.Fatal(err)
	}
	_, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_lost", Conversation: "c", Store: true,
		Input: []hermes.Message{{Role: hermes.RoleUser, Content: "x"}}})
	if hermes.ErrorCode(err) != hermes.EUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if s := rt.Stats(); s.Admitted != 0 {
		t.Fatalf("a refused turn kept its place: %+v", s)
	}
}

func TestPanicFailsTurnAndActorKeepsServing(t *testing.T) {
	rt := newRuntime(t, &gateModel{}, Options{})
	ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_p1", Conversation: "p", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "panic now"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r.Err == nil || r.Err.Code != hermes.EInternal || strings.Contains(r.Err.Message, "exploded") {
		t.Fatalf("panic turn: %+v", r.Err)
	}
	ch, err = submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_p2", Conversation: "p", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "fine"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r.Err != nil || r.Text != "echo: fine" {
		t.Fatalf("after panic: %+v %q", r.Err, r.Text)
	}
}

func TestIdleActorsPassivateAndReload(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rt := newRuntime(t, &gateModel{}, Options{IdleActor: time.Hour, Now: clock})
	for i, name := range []string{"a", "b", "c"} {
		ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_i" + itoa(i), Conversation: name, Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "hi " + name}}})
		if err != nil {
			t.Fatal(err)
		}
		<-ch
	}
	if n := rt.Stats().Actors; n != 3 {
		t.Fatalf("%d actors, want 3", n)
	}
	// An actor reports idle just after its turn's last event, so ask until
	// every one has reported and been stopped.
	hermestest.Eventually(t, "every actor passivated", func() bool {
		if rt.Stats().Actors == 0 {
			return true
		}
		mu.Lock()
		now = now.Add(2 * time.Hour)
		mu.Unlock()
		rt.root.Send(rt.dispatcher, passivate{})
		return false
	})
	// The conversation continues from the store.
	ch, err := submit(t, rt, &hermes.TurnRequest{ResponseID: "resp_i9", Conversation: "a", Store: true, Input: []hermes.Message{{Role: hermes.RoleUser, Content: "again"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.Err != nil || len(r.Record.Transcript) != 4 {
		t.Fatalf("after reload: %+v transcript %d", r.Err, len(r.Record.Transcript))
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func BenchmarkTurnThroughActors(b *testing.B) {
	store, err := persistence.Open(b.TempDir()+"/db", persistence.Options{Capacity: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rt := New(Options{Agent: &Agent{Model: llm.NewOffline()}, Store: store, MaxTurns: 1 << 20, MaxQueued: 1 << 10})
	defer rt.Shutdown(context.Background())
	var n sync.Mutex
	id := 0
	b.ReportAllocs()
	b.SetParallelism(32) // many conversations at once, as a server sees them: commits group
	b.RunParallel(func(pb *testing.PB) {
		events := make(chan hermes.Event, 64)
		for pb.Next() {
			n.Lock()
			id++
			rid := "resp_b" + string(rune(id))
			conv := "bench" + string(rune(id%64))
			n.Unlock()
			req := &hermes.TurnRequest{ResponseID: rid, Conversation: conv, Store: true, Events: events, Ctx: context.Background(),
				Input: []hermes.Message{{Role: hermes.RoleUser, Content: "hello"}}}
			if err := rt.Submit(req); err != nil {
				b.Fatal(err)
			}
			for ev := range events {
				if ev.Kind == hermes.EventDone {
					if ev.Result.Err != nil {
						b.Fatal(ev.Result.Err)
					}
					break
				}
			}
		}
	})
}

// BenchmarkIdleConversationMemory reports the heap an idle conversation
// actor keeps (bytes/actor): b.N named conversations each run one turn and
// stay alive, idle.
func BenchmarkIdleConversationMemory(b *testing.B) {
	store, err := persistence.Open(b.TempDir()+"/db", persistence.Options{NoSync: true, Capacity: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rt := New(Options{Agent: &Agent{Model: llm.NewOffline()}, Store: store, MaxTurns: 1 << 20})
	defer rt.Shutdown(context.Background())
	events := make(chan hermes.Event, 1)
	turn := func(i int) {
		req := &hermes.TurnRequest{ResponseID: "resp_m" + strconv.Itoa(i), Conversation: "idle" + strconv.Itoa(i), Store: true,
			Events: events, Ctx: context.Background(), Input: []hermes.Message{{Role: hermes.RoleUser, Content: "hi"}}}
		if err := rt.Submit(req); err != nil {
			b.Fatal(err)
		}
		<-events
	}
	for i := 0; i < 100; i++ { // warm up: first-use allocations are not per actor
		turn(-1 - i)
	}
	before := heapInUse()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		turn(i)
	}
	b.StopTimer()
	after := heapInUse()
	if n := rt.Stats().Actors; n < int64(b.N) {
		b.Fatalf("%d actors alive, want %d", n, b.N)
	}
	b.ReportMetric(float64(after-before)/float64(b.N), "bytes/actor")
}

// 10,000 idle conversations passivate, and the memory they held returns.
func TestTenThousandIdleConversationsPassivate(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 turns")
	}
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store, err := persistence.Open(t.TempDir()+"/db", persistence.Options{NoSync: true, Capacity: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rt := New(Options{Agent: &Agent{Model: llm.NewOffline()}, Store: store, MaxTurns: 1 << 20, IdleActor: time.Hour, Now: clock})
	defer rt.Shutdown(context.Background())
	const n = 10000
	base := heapInUse()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			events := make(chan hermes.Event, 1)
			for i := w; i < n; i += 8 {
				req := &hermes.TurnRequest{ResponseID: "resp_p" + strconv.Itoa(i), Conversation: "idle-" + strconv.Itoa(i), Store: true,
					Events: events, Ctx: context.Background(), Input: []hermes.Message{{Role: hermes.RoleUser, Content: "hi"}}}
				if err := rt.Submit(req); err != nil {
					t.Error(err)
					return
				}
				<-events
			}
		}()
	}
	wg.Wait()
	if got := rt.Stats().Actors; got != n {
		t.Fatalf("%d actors alive, want %d", got, n)
	}
	peak := heapInUse()
	// Polling: passivation has no completion signal.
	hermestest.Eventually(t, "every actor passivated", func() bool {
		if rt.Stats().Actors == 0 {
			return true
		}
		mu.Lock()
		now = now.Add(2 * time.Hour)
		mu.Unlock()
		rt.root.Send(rt.dispatcher, passivate{})
		return false
	})
	after := heapInUse()
	t.Logf("heap: %d KB before, %d KB with %d idle actors, %d KB after passivation", base>>10, peak>>10, n, after>>10)
	// What stays is map capacity: Go maps never shrink, and the actor
	// system's process registry keeps its buckets (about 240 bytes per
	// conversation at the peak, a fixed cost, not a leak). Most of the
	// growth (the actors, their mailboxes, their state) must return.
	if grown := peak - base; after > base+grown/2 {
		t.Fatalf("memory did not return: %d KB before, %d KB at peak, %d KB after", base>>10, peak>>10, after>>10)
	}
}

// heapInUse returns the live heap after garbage is collected.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
