package actors

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/llm"
)

// blobTool returns an 8 KB result, as a file read or a build log would.
type blobTool struct{ out string }

func (t blobTool) Spec() hermes.ToolSpec                    { return hermes.ToolSpec{Name: "blob"} }
func (blobTool) Emoji() string                              { return "" }
func (blobTool) Label([]byte) string                        { return "blob" }
func (t blobTool) Run(context.Context, tooling.Call) string { return t.out }

// toolThenAnswer calls blob once per user turn, then answers: every turn
// adds a call, an 8 KB result and an answer to the transcript. It counts
// the messages it was given, so a test can check the history was whole.
type toolThenAnswer struct {
	lastLen   int
	firstUser string
}

func (m *toolThenAnswer) Stream(_ context.Context, req llm.Request, _ func(string)) (llm.Response, error) {
	m.lastLen, m.firstUser = len(req.Messages), ""
	for _, msg := range req.Messages {
		if msg.Role == hermes.RoleUser {
			m.firstUser = msg.Content
			break
		}
	}
	if last := req.Messages[len(req.Messages)-1]; last.Role == hermes.RoleUser {
		return llm.Response{ToolCalls: []hermes.ToolCall{{ID: "call_" + last.Content, Name: "blob", Arguments: "{}"}}}, nil
	}
	return llm.Response{Text: "done", Finish: hermes.FinishStop}, nil
}

// writtenBytes is what this process has handed to write(2) so far
// (/proc/self/io wchar): the store's pages, meta pages and freelist.
func writtenBytes(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Skip("no /proc/self/io: cannot count bytes written")
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("wchar: ")); ok {
			n, _ := strconv.ParseInt(string(v), 10, 64)
			return n
		}
	}
	tb.Skip("no wchar in /proc/self/io")
	return 0
}

// longChain runs turns turns of one previous_response_id chain, each
// adding an 8 KB tool output, and returns each turn's latency and bytes
// written. The store starts full (100 other responses, the default
// capacity), as on a server that has been running, so every turn evicts
// one: the first turns are not flattered by an empty store.
//
// window, when not 0, is the model's context window: compaction is on, as
// in hermesd (whose default is 128k), and the model must still see the
// chain's first user message on every call; with 0 it must see the whole
// chain.
func longChain(tb testing.TB, turns int, noSync bool, window int) (lat []time.Duration, written []int64, cpu []time.Duration) {
	store, err := persistence.Open(tb.TempDir()+"/db", persistence.Options{NoSync: noSync, Capacity: 100})
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	var fill []persistence.Op
	for i := range 100 {
		fill = append(fill, persistence.PutResponse(&hermes.StoredResponse{ID: "resp_other" + strconv.Itoa(i), Status: hermes.StatusCompleted,
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: "hello"}}, Output: []hermes.Message{{Role: hermes.RoleAssistant, Content: "hi"}}}))
	}
	if err := store.Apply(fill); err != nil {
		tb.Fatal(err)
	}
	m := &summarisingChain{} // summarises when compaction asks
	reg := tooling.NewRegistry([]tooling.Tool{blobTool{out: strings.Repeat("x", 8<<10)}}, nil)
	agent := &Agent{Model: m, Tools: reg}
	if window > 0 {
		agent.Window = llm.NewWindow(window)
	}
	rt := New(Options{Agent: agent, Store: store})
	defer rt.Shutdown(context.Background())
	events := make(chan hermes.Event, 64)
	prev := ""
	for i := range turns {
		id := "resp_" + strconv.Itoa(i)
		req := &hermes.TurnRequest{ResponseID: id, Previous: prev, Store: true, Events: events, Ctx: context.Background(),
			Input: []hermes.Message{{Role: hermes.RoleUser, Content: strconv.Itoa(i)}}}
		w0, t0, c0 := writtenBytes(tb), time.Now(), hermestest.CPUTime()
		if err := rt.Submit(req); err != nil {
			tb.Fatal(err)
		}
		for ev := range events {
			if ev.Kind == hermes.EventDone {
				if ev.Result.Err != nil || !ev.Result.Stored {
					tb.Fatalf("turn %d: %v", i, ev.Result.Err)
				}
				break
			}
		}
		lat, cpu = append(lat, time.Since(t0)), append(cpu, hermestest.CPUTime()-c0)
		written = append(written, writtenBytes(tb)-w0)
		switch want := 4*i + 1; {
		case window > 0:
			if m.firstUser != "0" {
				tb.Fatalf("turn %d: the model's last call began with user message %q, want the chain's first", i, m.firstUser)
			}
		case m.lastLen != want+2:
			// The model saw the whole chain: 4 items a turn before this
			// one's input.
			tb.Fatalf("turn %d: the model's last call had %d messages, want %d", i, m.lastLen, want+2)
		}
		prev = id
	}
	return lat, written, cpu
}

func meanOf[T time.Duration | int64](xs []T) float64 {
	var s float64
	for _, x := range xs {
		s += float64(x)
	}
	return s / float64(len(xs))
}

// TestLongChainConstantWrites: turn 300 of a chain with 8 KB tool outputs
// writes no more than turn 1 does (within 1.2×), and the history the model
// sees is whole all along (checked in longChain). Schema 1 wrote the whole
// transcript every turn: turn 300 wrote 300 times as much.
func TestLongChainConstantWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("300 turns")
	}
	_, written, _ := longChain(t, 300, true, 0)
	first, last := meanOf(written[:50]), meanOf(written[len(written)-50:])
	t.Logf("bytes written a turn: first 50 %.0f, last 50 %.0f (%.2f×)", first, last, last/first)
	if last > 1.2*first {
		t.Errorf("the last turns write %.0f bytes each, the first %.0f: the write grows with the chain", last, first)
	}
}

// BenchmarkLongChain is the issue-12 measurement: a 1,000-turn chain, each
// turn adding an 8 KB tool output, fsync on, compaction on with hermesd's
// default 128k window (the chain passes it around turn 50 and is trimmed,
// then summarised, from there on). It reports the mean latency and bytes
// written of the first and last 100 turns and their ratios.
func BenchmarkLongChain(b *testing.B) {
	for range b.N {
		lat, written, cpu := longChain(b, 1000, false, llm.DefaultContextWindow)
		l1, l2 := meanOf(lat[:100]), meanOf(lat[900:])
		w1, w2 := meanOf(written[:100]), meanOf(written[900:])
		b.ReportMetric(l1/1e3, "first100-µs/turn")
		b.ReportMetric(l2/1e3, "last100-µs/turn")
		b.ReportMetric(l2/l1, "latency-ratio")
		b.ReportMetric(w1, "first100-B/turn")
		b.ReportMetric(w2, "last100-B/turn")
		b.ReportMetric(w2/w1, "bytes-ratio")
		// CPU a turn: what the latency would be without the machine's
		// other work and the disk's fsync outliers.
		c1, c2 := meanOf(cpu[:100]), meanOf(cpu[900:])
		b.ReportMetric(c1/1e3, "first100-cpu-µs/turn")
		b.ReportMetric(c2/1e3, "last100-cpu-µs/turn")
		b.ReportMetric(c2/c1, "cpu-ratio")
	}
}

// BenchmarkResponsesChain200 is responses-chain in process: 200 clients,
// each continuing its own previous_response_id chain, offline model, fsync
// on. It reports stored responses per second through the runtime and the
// store (no HTTP).
func BenchmarkResponsesChain200(b *testing.B) {
	store, err := persistence.Open(b.TempDir()+"/db", persistence.Options{Capacity: 10000})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rt := New(Options{Agent: &Agent{Model: llm.NewOffline()}, Store: store, MaxTurns: 1 << 20})
	defer rt.Shutdown(context.Background())
	const clients = 200
	work := make(chan int, clients)
	// Ids sort by creation, as httpfront.NewID makes them.
	var seq atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			events := make(chan hermes.Event, 64)
			prev := ""
			for range work {
				id := fmt.Sprintf("resp_%016x_%d", seq.Add(1), c)
				req := &hermes.TurnRequest{ResponseID: id, Previous: prev, Store: true, Events: events, Ctx: context.Background(),
					Input: []hermes.Message{{Role: hermes.RoleUser, Content: "Benchmark turn.\n/tokens 16"}}}
				if err := rt.Submit(req); err != nil {
					failed.Add(1)
					continue
				}
				for ev := range events {
					if ev.Kind == hermes.EventDone {
						if !ev.Result.Stored {
							failed.Add(1)
						} else {
							prev = id
						}
						break
					}
				}
			}
		}()
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d turns failed", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "responses/s")
}
