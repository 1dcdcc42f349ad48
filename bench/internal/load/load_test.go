package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermesd/hermesd/bench/mockllm"
	"github.com/valyala/fasthttp"
)

func serve(t *testing.T, serveFn func(net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serveFn(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// TestSmokeAgainstMock runs the load loop end to end against mockllm only,
// as CI can without the server.
func TestSmokeAgainstMock(t *testing.T) {
	mock := mockllm.New(mockllm.Config{})
	base := serve(t, mock.Serve)
	client := NewClient(4, 5*time.Second)
	tests := []struct {
		scenario string
		calls    int // mock calls per request
	}{
		{Chat, 1},
		{ChatStream, 1},
		{ToolLoop, 3},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			before := mock.Calls()
			res, err := Run(context.Background(), client, Options{
				Scenario: tt.scenario, Kind: Direct, BaseURL: base, Concurrency: 4,
				Requests: 20, Duration: 10 * time.Second, Tokens: 3, ToolIters: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 20 || res.Errors != 0 || len(res.ErrorKinds) != 0 {
				t.Fatalf("requests %d errors %d %v", res.Requests, res.Errors, res.ErrorKinds)
			}
			if len(res.TTFT) != 20 || len(res.Latency) != 20 {
				t.Fatalf("%d ttft and %d latency samples, want 20", len(res.TTFT), len(res.Latency))
			}
			for i := range res.TTFT {
				if res.TTFT[i] <= 0 || res.TTFT[i] > res.Latency[i] {
					t.Fatalf("sample %d: ttft %v latency %v", i, res.TTFT[i], res.Latency[i])
				}
			}
			if got := mock.Calls() - before; got != uint64(20*tt.calls) {
				t.Fatalf("mock answered %d calls, want %d", got, 20*tt.calls)
			}
			if res.RPS() <= 0 {
				t.Fatalf("rps %v", res.RPS())
			}
		})
	}
}

func TestSmokeAgainstCeiling(t *testing.T) {
	base := serve(t, ServeCeiling)
	for _, sc := range []string{Chat, ChatStream} {
		res, err := Run(context.Background(), NewClient(2, 5*time.Second), Options{
			Scenario: sc, Kind: Ceiling, BaseURL: base, Concurrency: 2, Requests: 10,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 10 || res.Errors != 0 {
			t.Fatalf("%s: %d requests, %d errors %v", sc, res.Requests, res.Errors, res.ErrorKinds)
		}
	}
}

// fakeResponses is a stand-in for hermesd's /v1/responses that checks each
// worker continues its own chain.
type fakeResponses struct {
	mu      sync.Mutex
	next    int
	chained int            // requests whose previous_response_id was known
	seen    map[string]int // response id → times continued
	convs   map[string]int // conversation → turns
	fail    bool
}

func (f *fakeResponses) handle(ctx *fasthttp.RequestCtx) {
	var req struct {
		Previous     string `json:"previous_response_id"`
		Conversation string `json:"conversation"`
		Input        string `json:"input"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil || !strings.Contains(req.Input, "/tokens") {
		ctx.SetStatusCode(400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		ctx.SetStatusCode(500)
		return
	}
	if req.Previous != "" {
		if _, ok := f.seen[req.Previous]; !ok {
			ctx.SetStatusCode(400)
			return
		}
		f.seen[req.Previous]++
		f.chained++
	}
	if req.Conversation != "" {
		f.convs[req.Conversation]++
	}
	f.next++
	id := fmt.Sprintf("resp_%d", f.next)
	f.seen[id] = 0
	fmt.Fprintf(ctx, `{"id":%q,"object":"response","status":"completed"}`, id)
}

func TestResponsesScenarios(t *testing.T) {
	f := &fakeResponses{seen: map[string]int{}, convs: map[string]int{}}
	base := serve(t, func(ln net.Listener) error { return fasthttp.Serve(ln, f.handle) })
	client := NewClient(3, 5*time.Second)

	res, err := Run(context.Background(), client, Options{Scenario: ResponsesChain, Kind: Hermesd, BaseURL: base, Concurrency: 3, Requests: 30})
	if err != nil || res.Errors != 0 {
		t.Fatalf("chain: %v %v", err, res.ErrorKinds)
	}
	f.mu.Lock()
	// Each of 3 workers starts one chain; every later turn continues it,
	// and no response is continued twice.
	if f.chained != 27 {
		t.Errorf("%d chained turns, want 27", f.chained)
	}
	for id, n := range f.seen {
		if n > 1 {
			t.Errorf("%s continued %d times", id, n)
		}
	}
	f.mu.Unlock()

	res, err = Run(context.Background(), client, Options{Scenario: Conversation, Kind: Hermesd, BaseURL: base, Concurrency: 2, Requests: 16, Turns: 4, RunID: "t"})
	if err != nil || res.Errors != 0 {
		t.Fatalf("conversation: %v %v", err, res.ErrorKinds)
	}
	f.mu.Lock()
	// Every conversation gets at most 4 turns, and a worker moves to its
	// next one only after 4.
	total := 0
	for name, n := range f.convs {
		total += n
		var w, c int
		fmt.Sscanf(name, "bench-t-%d-%d", &w, &c)
		if _, later := f.convs[fmt.Sprintf("bench-t-%d-%d", w, c+1)]; n > 4 || later && n != 4 {
			t.Errorf("%s had %d turns: %v", name, n, f.convs)
		}
	}
	if total != 16 {
		t.Errorf("%d turns in all, want 16", total)
	}
	f.fail = true
	f.mu.Unlock()

	res, err = Run(context.Background(), client, Options{Scenario: Idle, Kind: Hermesd, BaseURL: base, Concurrency: 2, Requests: 5, RunID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 5 || res.Errors != 5 || res.ErrorKinds["status_500"] != 5 || len(res.Latency) != 0 {
		t.Fatalf("errors not counted by kind: %+v", res)
	}
}

func TestRunIsBoundedInTime(t *testing.T) {
	mock := mockllm.New(mockllm.Config{TTFT: 20 * time.Millisecond})
	base := serve(t, mock.Serve)
	began := time.Now()
	res, err := Run(context.Background(), NewClient(2, 5*time.Second), Options{
		Scenario: Chat, Kind: Direct, BaseURL: base, Concurrency: 2, Duration: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Bounded: stops issuing at the deadline and waits only for the
	// requests in flight (each 20ms).
	if el := time.Since(began); el > 3*time.Second {
		t.Fatalf("ran %v for a 200ms duration", el)
	}
	if res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("%+v", res)
	}
	if _, err := Run(context.Background(), nil, Options{Concurrency: 1}); err == nil {
		t.Fatal("unbounded run accepted")
	}
}

func TestReadSSE(t *testing.T) {
	tests := []struct {
		name, body, err string
		content         bool
	}{
		{"complete", "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n", "", true},
		{"role chunk is not content", "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: [DONE]\n\n", "", false},
		{"error frame", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"error\":{\"message\":\"x\"}}\n\n", "sse_error", true},
		{"truncated", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n", "truncated", true},
		{"long frame", "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 20000) + "\"}}]}\n\ndata: [DONE]\n\n", "", true},
		{"responses", "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"part\":{\"type\":\"output_text\",\"text\":\"\"}}\n\n" +
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\ndata: [DONE]\n\n", "", true},
		{"responses empty delta is not content", "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\ndata: [DONE]\n\n", "", false},
		{"responses failed", "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n" +
			"event: error\ndata: {\"type\":\"error\",\"code\":\"x\"}\n\nevent: response.failed\ndata: {\"type\":\"response.failed\"}\n\ndata: [DONE]\n\n", "sse_error", true},
	}
	for _, tt := range tests {
		s := readSSE(strings.NewReader(tt.body), time.Now())
		if s.err != tt.err || (s.ttft > 0) != tt.content {
			t.Errorf("%s: err %q ttft %v, want err %q content %v", tt.name, s.err, s.ttft, tt.err, tt.content)
		}
	}
}

func TestLongChainScenario(t *testing.T) {
	f := &fakeResponses{seen: map[string]int{}, convs: map[string]int{}}
	base := serve(t, func(ln net.Listener) error { return fasthttp.Serve(ln, f.handle) })
	client := NewClient(2, 5*time.Second)
	var sampled atomic.Int64
	res, err := Run(context.Background(), client, Options{Scenario: LongChain, Kind: Hermesd, BaseURL: base, Concurrency: 2, Turns: 20,
		Duration: time.Minute, Sample: func() int64 { return sampled.Add(100) }})
	if err != nil || res.Errors != 0 {
		t.Fatalf("long chain: %v %v", err, res.ErrorKinds)
	}
	// Each worker makes exactly its 20-turn chain, every later turn
	// continuing the one before.
	f.mu.Lock()
	if res.Requests != 40 || f.chained != 38 {
		t.Errorf("%d requests, %d chained; want 40 and 38", res.Requests, f.chained)
	}
	f.mu.Unlock()
	if len(res.ByTurn) != 20 {
		t.Fatalf("%d turn slots, want 20", len(res.ByTurn))
	}
	for i, ts := range res.ByTurn {
		if len(ts) != 2 {
			t.Errorf("turn %d has %d latencies, want one per chain", i, len(ts))
		}
	}
	if len(res.Samples) != 11 || res.Samples[0] != 100 || res.Samples[10] != 1100 {
		t.Errorf("samples = %v, want 11 rising from the start to each tenth", res.Samples)
	}
}

func TestPromptDirectivesOneALine(t *testing.T) {
	w := &worker{opts: &Options{Scenario: LongChain, Tokens: 3}}
	want := "Benchmark turn.\n/tokens 3\n/tool read_file {\"path\":\"" + BlobFile + "\"}"
	if got := w.prompt(); got != want {
		t.Errorf("prompt = %q, want %q", got, want)
	}
	if n := len(Blob()); n != 8100 {
		t.Errorf("blob is %d bytes, want 8100", n)
	}
}

// With Nodes, a chain's turns go to the nodes in turn (one shared fake
// store behind three addresses, as nodes on one database): each node
// gets about a third of the requests, and chains still continue.
func TestNodesRoundRobin(t *testing.T) {
	f := &fakeResponses{seen: map[string]int{}, convs: map[string]int{}}
	var hits [3]atomic.Int64
	var bases []string
	for i := range hits {
		bases = append(bases, serve(t, func(ln net.Listener) error {
			return fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) { hits[i].Add(1); f.handle(ctx) })
		}))
	}
	client := NewClient(3, 5*time.Second)
	res, err := Run(context.Background(), client, Options{Scenario: ResponsesChain, Kind: Hermesd, BaseURL: bases[0], Nodes: bases[1:],
		Concurrency: 3, Requests: 30})
	if err != nil || res.Errors != 0 {
		t.Fatalf("chain: %v %v", err, res.ErrorKinds)
	}
	// Each worker goes round the nodes; workers share the request
	// budget, so a node may get one more or fewer per worker.
	for i := range hits {
		if n := hits[i].Load(); n < 10-3 || n > 10+3 {
			t.Errorf("node %d got %d requests, want 10±3", i, n)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.chained != 27 {
		t.Errorf("%d chained turns, want 27", f.chained)
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// A streaming client keeps its connection from one request to the next,
// as an SDK does: it reads each stream to the end of its body, not only
// to [DONE]. Before, every stream closed its connection, and each request
// paid for a new one on both sides. (A stream written token by token:
// one written whole is read whole with its [DONE].)
func TestStreamsKeepTheirConnection(t *testing.T) {
	mock := mockllm.New(mockllm.Config{})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	done := make(chan struct{})
	go func() { defer close(done); _ = mock.Serve(ln) }()
	t.Cleanup(func() { ln.Close(); <-done })
	res, err := Run(context.Background(), NewClient(2, 5*time.Second), Options{
		Scenario: ChatStream, Kind: Direct, BaseURL: "http://" + ln.Addr().String(), Concurrency: 2,
		Requests: 20, Duration: 10 * time.Second, Tokens: 3, TokenDelay: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 20 || res.Errors != 0 {
		t.Fatalf("requests %d, errors %d %v", res.Requests, res.Errors, res.ErrorKinds)
	}
	if n := ln.n.Load(); n > 2 {
		t.Fatalf("20 streams from 2 clients opened %d connections", n)
	}
}
