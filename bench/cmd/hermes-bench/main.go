// Command hermes-bench measures hermesd against its upstream and its HTTP
// ceiling, side by side, in one invocation:
//
//	go run ./bench/cmd/hermes-bench -scenario chat-stream -c 200 -d 10s -json out.json -svg out.svg
//
// It starts mockllm, a bare fasthttp ceiling server and hermesd (built from
// ./cmd/hermesd, or -hermesd BIN, or a running one with -url) as separate
// loopback processes, then runs the same load three times: directly against
// mockllm, against hermesd (whose upstream is that mockllm), and against the
// ceiling. See bench/README.md for the figures.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermesd/hermesd/bench/internal/load"
	"github.com/hermesd/hermesd/bench/internal/proc"
	"github.com/hermesd/hermesd/bench/internal/report"
	"github.com/hermesd/hermesd/bench/mockllm"
)

// defaultStreamDelay is -delay for streaming scenarios when not given.
const defaultStreamDelay = 5 * time.Millisecond

// Hard caps: every run is bounded in time and count whatever the flags say.
const (
	maxDuration    = 30 * time.Minute
	maxRequests    = 10_000_000
	maxConcurrency = 100_000
)

type config struct {
	scenario    string
	concurrency int
	duration    time.Duration
	requests    int
	timeout     time.Duration
	url         string
	apiKey      string
	hermesdBin  string
	upstream    string
	tokens      int
	ttft        time.Duration
	stagger     time.Duration
	delay       time.Duration
	toolIters   int
	think       string
	turns       int
	maxTurns    int
	stored      int
	noDirect    bool
	noCeiling   bool
	// rounds splits the direct, direct-agent and hermesd phases into this
	// many slices run in turn, so a drift of the machine over the run
	// falls on all three alike.
	rounds   int
	jsonPath string
	svgPath  string
	// nodes hermesd processes on the PostgreSQL at database (cluster
	// mode); requests go round-robin over them.
	nodes    int
	database string
	// serve, when set, makes this process one of the children.
	serve, addr string
}

func main() {
	var c config
	flag.StringVar(&c.scenario, "scenario", load.ChatStream, "one of "+strings.Join(load.Scenarios, ", "))
	flag.IntVar(&c.concurrency, "c", 50, "concurrent clients")
	flag.DurationVar(&c.duration, "d", 10*time.Second, "duration of each phase (capped at 30m)")
	flag.IntVar(&c.requests, "n", 0, "requests per phase (0: until -d); for idle, conversations to open (default 1000)")
	flag.DurationVar(&c.timeout, "timeout", time.Minute, "per-request timeout")
	flag.StringVar(&c.url, "url", "", "target a running hermesd at this base URL instead of starting one")
	flag.StringVar(&c.apiKey, "api-key", os.Getenv("API_SERVER_KEY"), "bearer key for hermesd")
	flag.StringVar(&c.hermesdBin, "hermesd", "", "hermesd binary to start (default: go build ./cmd/hermesd)")
	flag.StringVar(&c.upstream, "upstream", "mock", "hermesd's model: mock (the started mockllm) or offline (its built-in model)")
	flag.IntVar(&c.tokens, "tokens", 16, "answer length in tokens")
	flag.DurationVar(&c.ttft, "ttft", 0, "model time to first token")
	flag.DurationVar(&c.stagger, "stagger", -1, "spread the clients' first requests over this window (default: -ttft); 0 starts all at once")
	flag.DurationVar(&c.delay, "delay", 0, "model delay between tokens (default 5ms for chat-stream, responses-stream and tool-loop, 0 otherwise)")
	flag.IntVar(&c.toolIters, "tool-iters", 3, "tool-loop: terminal calls per turn")
	flag.StringVar(&c.think, "think", "", "reasoning the model streams before each answer (one line; mock and offline upstreams)")
	flag.IntVar(&c.turns, "turns", 4, "conversation: turns per conversation; long-chain: turns per chain (default 1000)")
	flag.IntVar(&c.maxTurns, "max-turns", 100000, "API_SERVER_MAX_CONCURRENT_TURNS for the started hermesd")
	flag.IntVar(&c.stored, "stored", 0, "API_SERVER_MAX_STORED_RESPONSES for the started hermesd (0: enough for every chain)")
	flag.IntVar(&c.nodes, "nodes", 1, "hermesd nodes to start; more than one needs -database (cluster mode), and each client's requests go to the nodes in turn")
	flag.StringVar(&c.database, "database", "", "PostgreSQL URL for the started hermesd nodes (HERMES_DATABASE_URL); empty: one node on bbolt")
	flag.BoolVar(&c.noDirect, "no-direct", false, "skip the direct-to-mockllm phase")
	flag.BoolVar(&c.noCeiling, "no-ceiling", false, "skip the bare fasthttp ceiling phase")
	flag.IntVar(&c.rounds, "rounds", 1, "run the direct, direct-agent and hermesd phases in this many alternating slices of -d/rounds each, their samples pooled (chat, chat-stream, responses-stream)")
	flag.StringVar(&c.jsonPath, "json", "", "write the report as JSON to this file")
	flag.StringVar(&c.svgPath, "svg", "", "write the latency plot as SVG to this file")
	flag.StringVar(&c.serve, "serve", "", "internal: serve mock or ceiling and print its address")
	flag.StringVar(&c.addr, "addr", "127.0.0.1:0", "internal: address for -serve")
	flag.Parse()
	if c.stagger < 0 {
		c.stagger = c.ttft
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["delay"] && report.Streaming(c.scenario) {
		// A real model streams token by token; an answer written in one
		// piece hides the cost of each frame.
		c.delay = defaultStreamDelay
	}
	if c.scenario == load.LongChain {
		// The chains' length bounds the run, not a duration; no phase but
		// hermesd's means anything (the mock has no chain to keep).
		if !set["turns"] {
			c.turns = 1000
		}
		if !set["d"] {
			c.duration = maxDuration
		}
		if !set["stored"] {
			c.stored = 100 // hermesd's default: eviction runs as in production
		}
		c.noDirect, c.noCeiling = true, true
	}
	if c.scenario == load.WSAgentLoop {
		// Its reference is hermesd itself, over HTTP (loopPhase); the mock
		// alone has no loop to keep.
		c.noDirect, c.noCeiling = true, true
	}

	// hermesd keeps half its descriptors for upstream connections, one a
	// stream: below two a client (and a few of its own) it lowers its
	// connection cap to fit and answers the clients past it 503.
	want := uint64(2*c.concurrency + 128)
	if got, err := proc.RaiseFileLimit(want); err != nil {
		fmt.Fprintln(os.Stderr, "hermes-bench: cannot raise the open-file limit:", err)
	} else if got < want {
		fmt.Fprintf(os.Stderr, "hermes-bench: open-file limit %d (not raisable here), below the %d that %d clients need: hermesd caps its connections near %d and answers the rest 503\n",
			got, want, c.concurrency, (got-64)/2)
	}
	var err error
	if c.serve != "" {
		err = serve(c.serve, c.addr)
	} else {
		err = run(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hermes-bench:", err)
		os.Exit(1)
	}
}

// serve runs one of the child servers until SIGTERM.
func serve(what, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		ln.Close()
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	switch what {
	case "mock":
		err = mockllm.New(mockllm.Config{Model: "mock-model"}).Serve(ln)
	case "ceiling":
		err = load.ServeCeiling(ln)
	default:
		err = fmt.Errorf("unknown -serve %q", what)
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (c *config) validate() error {
	if !slices.Contains(load.Scenarios, c.scenario) {
		return fmt.Errorf("unknown scenario %q (want one of %s)", c.scenario, strings.Join(load.Scenarios, ", "))
	}
	if c.concurrency <= 0 || c.concurrency > maxConcurrency {
		return fmt.Errorf("-c must be 1..%d", maxConcurrency)
	}
	if c.duration <= 0 || c.duration > maxDuration {
		return fmt.Errorf("-d must be in (0, %v]", maxDuration)
	}
	if c.requests < 0 || c.requests > maxRequests {
		return fmt.Errorf("-n must be 0..%d", maxRequests)
	}
	if c.upstream != "mock" && c.upstream != "offline" {
		return fmt.Errorf("-upstream must be mock or offline")
	}
	if c.scenario == load.Idle && c.requests == 0 {
		c.requests = 1000
	}
	if c.nodes < 1 || c.nodes > 16 {
		return fmt.Errorf("-nodes must be 1..16")
	}
	if c.nodes > 1 && c.database == "" {
		return fmt.Errorf("-nodes %d needs -database: several nodes share one PostgreSQL", c.nodes)
	}
	if c.rounds < 1 || c.rounds > 100 {
		return fmt.Errorf("-rounds must be 1..100")
	}
	if c.rounds > 1 && (c.requests > 0 || !slices.Contains([]string{load.Chat, load.ChatStream, load.ResponsesStream}, c.scenario)) {
		return fmt.Errorf("-rounds is for chat, chat-stream and responses-stream runs bounded by -d")
	}
	if c.url != "" && (c.nodes > 1 || c.database != "") {
		return fmt.Errorf("-url targets a running hermesd: -nodes and -database start them")
	}
	return nil
}

// env is a started set of servers.
type env struct {
	mock, ceiling, hermesd *proc.Child
	mockURL, ceilingURL    string
	target                 string // hermesd base URL, "" if none
	home                   string
	notes                  []string
	// more are the cluster's other nodes (-nodes), at nodes.
	more  []*proc.Child
	nodes []string
}

func (e *env) close() {
	for _, ch := range append([]*proc.Child{e.hermesd, e.ceiling, e.mock}, e.more...) {
		if ch != nil {
			ch.Stop()
		}
	}
	if e.home != "" {
		os.RemoveAll(e.home)
	}
}

func run(c config) error {
	if err := c.validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e, err := start(ctx, &c)
	if e != nil {
		defer e.close()
	}
	if err != nil {
		return err
	}
	r := &report.Report{
		Scenario: c.scenario, Concurrency: c.concurrency, Target: e.target,
		Upstream:  map[string]string{"mock": "mockllm", "offline": "offline"}[c.upstream],
		DurationS: c.duration.Seconds(), ServerRSSMB: -1, ServerGoroutines: -1, ServerCPUCores: -1, MockCPUCores: -1,
		Curves: map[string]report.Curve{}, Notes: e.notes,
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	base := load.Options{
		Scenario: c.scenario, Concurrency: c.concurrency, Duration: c.duration, Requests: c.requests,
		Timeout: c.timeout, Tokens: c.tokens, TTFT: c.ttft, TokenDelay: c.delay, ToolIters: c.toolIters, Think: c.think,
		Turns: c.turns, APIKey: c.apiKey, RunID: runID, Progress: os.Stderr, Stagger: c.stagger,
	}
	idle := c.scenario == load.Idle
	if c.scenario == load.LongChain && e.hermesd != nil {
		pid := e.hermesd.Pid()
		base.Sample = func() int64 {
			n, err := proc.ReadWritten(pid)
			if err != nil {
				return -1
			}
			return n
		}
	}
	phase := func(kind load.Kind, url string) (*load.Result, error) {
		if kind == load.DirectAgent {
			url = e.mockURL
		}
		o := base
		o.Kind, o.BaseURL, o.Label = kind, url, kind.String()+" "+c.scenario
		if kind == load.Hermesd {
			o.Nodes = e.nodes
		}
		if kind != load.Hermesd {
			o.Model = "mock-model"
		}
		client := load.NewClient(c.concurrency, c.timeout)
		// The next phase opens as many connections again: release these
		// or 10,000 clients run out of descriptors.
		defer client.CloseIdleConnections()
		return load.Run(ctx, client, o)
	}

	if c.rounds > 1 {
		if err := interleaved(ctx, &c, e, r, &base, phase); err != nil {
			return err
		}
	}
	if !c.noDirect && !idle && c.rounds == 1 {
		res, err := phase(load.Direct, e.mockURL)
		if err != nil {
			return err
		}
		fillDirect(r, res)
	}
	if agentBaseline(&c, e) && ctx.Err() == nil && c.rounds == 1 {
		body, err := captureUpstream(ctx, &c, e, base)
		if err != nil {
			r.Notes = append(r.Notes, "direct-agent skipped: "+err.Error())
		} else {
			// Only the direct-agent phase sends Body.
			base.Body, base.BodyStream = body, bytes.Contains(body, []byte(`"stream":true`))
			if err := directAgentPhase(r, phase); err != nil {
				return err
			}
		}
	}
	if e.target != "" && ctx.Err() == nil && c.rounds == 1 {
		if err := hermesdPhase(ctx, &c, e, r, phase); err != nil {
			return err
		}
		if c.scenario == load.WSAgentLoop && ctx.Err() == nil {
			if err := loopPhase(e, r, phase); err != nil {
				return err
			}
		}
	}
	if !c.noCeiling && !idle && ctx.Err() == nil {
		res, err := phase(load.Ceiling, e.ceilingURL)
		if err != nil {
			return err
		}
		r.CeilingRPS = res.RPS()
		if r.CeilingRPS > 0 {
			r.CeilingFraction = r.RPS / r.CeilingRPS
		}
	}
	if e.hermesd != nil {
		if m, err := proc.ReadMemory(e.hermesd.Pid()); err == nil {
			r.ServerRSSMB = float64(m.Peak) / (1 << 20)
		}
		if e.hermesd.Exited() {
			r.Notes = append(r.Notes, "hermesd exited during the run: "+lastLine(e.hermesd.Stderr()))
		}
	}
	if e.mock != nil {
		if m, err := proc.ReadMemory(e.mock.Pid()); err == nil {
			r.MockRSSMB = float64(m.Peak) / (1 << 20)
		}
	}
	if !report.Streaming(c.scenario) && c.scenario != load.WSAgentLoop {
		// Non-stream: the first token arrives with the whole answer.
		r.Notes = append(r.Notes, "non-stream scenario: ttft equals total latency")
	}
	return output(&c, r)
}

// hermesdPhase runs the load against hermesd and fills r's hermesd fields.
func hermesdPhase(ctx context.Context, c *config, e *env, r *report.Report, phase func(load.Kind, string) (*load.Result, error)) error {
	pid := 0
	if e.hermesd != nil {
		pid = e.hermesd.Pid()
	}
	var before proc.Memory
	var heapBefore float64
	if c.scenario == load.Idle {
		// Warm up so the delta counts conversations, not first-use setup.
		o := load.Options{Scenario: load.Idle, Kind: load.Hermesd, BaseURL: e.target, Concurrency: 1, Requests: 20,
			Timeout: c.timeout, APIKey: c.apiKey, RunID: "warmup"}
		if _, err := load.Run(ctx, load.NewClient(1, c.timeout), o); err != nil {
			return err
		}
		if pid > 0 {
			before, _ = proc.ReadMemory(pid)
		}
		if m, ok := proc.Metrics(ctx, e.target+"/metrics"); ok {
			heapBefore = m["go_memstats_heap_inuse_bytes"]
		}
	}
	if c.scenario == load.LongChain && c.stored > 0 {
		// Fill the store to its capacity first, as on a server that has
		// been running: every measured turn then evicts one response, and
		// the first tenth is not flattered by an empty store.
		o := load.Options{Scenario: load.ResponsesChain, Kind: load.Hermesd, BaseURL: e.target, Concurrency: 4, Requests: c.stored,
			Timeout: c.timeout, APIKey: c.apiKey, Tokens: c.tokens}
		if _, err := load.Run(ctx, load.NewClient(4, c.timeout), o); err != nil {
			return err
		}
	}
	res, f, err := watched(c, e, phase)
	if err != nil {
		return err
	}
	fillHermesd(c, r, res, f)
	if c.scenario == load.Idle {
		ok := res.Requests - res.Errors
		r.Conversations = ok
		if pid > 0 && ok > 0 {
			if after, err := proc.ReadMemory(pid); err == nil {
				r.BytesPerConversation = float64(after.RSS-before.RSS) / float64(ok)
			}
		}
		if m, found := proc.Metrics(ctx, e.target+"/metrics"); found && ok > 0 && heapBefore > 0 {
			r.HeapPerConversation = (m["go_memstats_heap_inuse_bytes"] - heapBefore) / float64(ok)
		}
	}
	return nil
}

// figures are what the watches of a hermesd phase saw: hermesd's peak
// goroutines, its and the mock's mean cores (-1: unknown) and syscalls.
type figures struct {
	goroutines       int
	cores, mockCores float64
	metricsRSS       int64
	sys, mockSys     proc.Syscalls
}

// watched runs the hermesd phase under watches of hermesd and the mock.
func watched(c *config, e *env, phase func(load.Kind, string) (*load.Result, error)) (*load.Result, figures, error) {
	pid := 0
	if e.hermesd != nil {
		pid = e.hermesd.Pid()
	}
	watch := proc.StartWatch(pid, e.target+"/metrics")
	var mockWatch *proc.Watch
	if e.mock != nil && c.upstream == "mock" {
		mockWatch = proc.StartWatch(e.mock.Pid(), "")
	}
	res, err := phase(load.Hermesd, e.target)
	f := figures{mockCores: -1, mockSys: proc.Syscalls{Reads: -1, Writes: -1}}
	f.goroutines, f.cores, f.metricsRSS = watch.Stop()
	f.sys = watch.Syscalls()
	if mockWatch != nil {
		_, f.mockCores, _ = mockWatch.Stop()
		f.mockSys = mockWatch.Syscalls()
	}
	return res, f, err
}

// fillHermesd sets r's hermesd figures from the phase's result and what
// its watches saw.
func fillHermesd(c *config, r *report.Report, res *load.Result, f figures) {
	goroutines, cores, metricsRSS := f.goroutines, f.cores, f.metricsRSS
	if c.scenario == load.WSAgentLoop {
		r.WSLoopCPUms = cpuPer(cores, res)
	}
	r.MockCPUCores = f.mockCores
	if c.scenario == load.ChatStream || c.scenario == load.ResponsesStream {
		frames := float64(res.Requests-res.Errors) * float64(c.tokens)
		perFrame(frames, cores, res.Elapsed, f.sys, &r.ServerCPUusFrame, &r.ServerReadsFrame, &r.ServerWritesFrame)
		if f.mockCores >= 0 {
			perFrame(frames, f.mockCores, res.Elapsed, f.mockSys, &r.MockCPUusFrame, &r.MockReadsFrame, &r.MockWritesFrame)
		}
	}
	r.Requests, r.Errors, r.ErrorKinds, r.RPS = res.Requests, res.Errors, res.ErrorKinds, res.RPS()
	r.TTFT, r.Latency = report.Summarize(res.TTFT), report.Summarize(res.Latency)
	r.Curves["hermesd ttft"], r.Curves["hermesd latency"] = report.CurveOf(res.TTFT), report.CurveOf(res.Latency)
	r.ServerGoroutines, r.ServerCPUCores = goroutines, cores
	if c.scenario == load.LongChain {
		samples := res.Samples
		if slices.Contains(samples, -1) {
			samples = nil // /proc/PID/io unreadable: latency only
		}
		r.LongChain = report.Deciles(res.ByTurn, samples, c.concurrency)
		r.LongChainLatencyRatio, r.LongChainBytesRatio = report.ChainRatios(r.LongChain)
	}
	if metricsRSS > 0 {
		r.ServerRSSMB = float64(metricsRSS) / (1 << 20)
	}
	if r.DirectAgentRequests > 0 {
		if report.Streaming(c.scenario) {
			r.OverheadAgent = report.Overhead(r.TTFT, r.DirectAgentTTFT)
			r.OverheadAgentRatio = report.Ratio(r.TTFT, r.DirectAgentTTFT)
		} else {
			r.OverheadAgent = report.Overhead(r.Latency, r.DirectAgentLatency)
			r.OverheadAgentRatio = report.Ratio(r.Latency, r.DirectAgentLatency)
		}
	}
	if r.DirectRequests > 0 {
		r.OverheadLatency = report.Overhead(r.Latency, r.DirectLatency)
		if report.Streaming(c.scenario) {
			r.Overhead = report.Overhead(r.TTFT, r.DirectTTFT)
			r.OverheadRatio = report.Ratio(r.TTFT, r.DirectTTFT)
		} else {
			r.Overhead = r.OverheadLatency
			r.OverheadRatio = report.Ratio(r.Latency, r.DirectLatency)
		}
	}
}

// agentBaseline reports whether the run gets a direct-agent phase: a
// scenario whose hermesd request makes exactly one upstream call, to the
// started mock.
func agentBaseline(c *config, e *env) bool {
	return !c.noDirect && e.hermesd != nil && c.upstream == "mock" &&
		(c.scenario == load.Chat || c.scenario == load.ChatStream || c.scenario == load.ResponsesStream)
}

// directAgentPhase sends the mock, under the scenario's load, the exact
// upstream request hermesd sent it (captureUpstream): the baseline whose
// difference from hermesd is hermesd's own cost (the plain direct phase
// sends ~100 bytes, hermesd ~16 KB of system prompt and tool schemas that
// the mock must parse).
func directAgentPhase(r *report.Report, phase func(load.Kind, string) (*load.Result, error)) error {
	res, err := phase(load.DirectAgent, "")
	if err != nil {
		return err
	}
	fillDirectAgent(r, res)
	return nil
}

// fillDirect sets r's direct figures.
func fillDirect(r *report.Report, res *load.Result) {
	r.DirectRequests, r.DirectErrors, r.DirectRPS, r.DirectTTFT, r.DirectLatency = baseline(r, "direct", res)
}

// fillDirectAgent sets r's direct-agent figures.
func fillDirectAgent(r *report.Report, res *load.Result) {
	r.DirectAgentRequests, r.DirectAgentErrors, r.DirectAgentRPS, r.DirectAgentTTFT, r.DirectAgentLatency = baseline(r, "direct-agent", res)
}

// baseline returns the figures of a baseline phase called name (direct,
// direct-agent) and adds its curves and error note to r.
func baseline(r *report.Report, name string, res *load.Result) (requests, errs int, rps float64, ttft, latency report.Percentiles) {
	r.Curves[name+" ttft"], r.Curves[name+" latency"] = report.CurveOf(res.TTFT), report.CurveOf(res.Latency)
	if res.Errors > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%s errors: %v", name, res.ErrorKinds))
	}
	return res.Requests, res.Errors, res.RPS(), report.Summarize(res.TTFT), report.Summarize(res.Latency)
}

// interleaved runs the direct, direct-agent and hermesd phases in turn,
// c.rounds times for -d/rounds each, and reports each phase's pooled
// samples: a machine whose speed drifts over the run (other work, timer
// slack, CPU frequency) then weighs on the three alike, where phases run
// one after the other each met a different machine.
func interleaved(ctx context.Context, c *config, e *env, r *report.Report, base *load.Options, phase func(load.Kind, string) (*load.Result, error)) error {
	agent := agentBaseline(c, e)
	if agent {
		body, err := captureUpstream(ctx, c, e, *base)
		if err != nil {
			r.Notes = append(r.Notes, "direct-agent skipped: "+err.Error())
			agent = false
		} else {
			// Only the direct-agent phase sends Body.
			base.Body, base.BodyStream = body, bytes.Contains(body, []byte(`"stream":true`))
		}
	}
	whole := base.Duration
	base.Duration = whole / time.Duration(c.rounds)
	defer func() { base.Duration = whole }()
	var direct, agentRes, herm load.Result
	var f figures
	var weight time.Duration // hermesd elapsed, over which f's cores are averaged
	for i := 0; i < c.rounds && ctx.Err() == nil; i++ {
		if !c.noDirect {
			res, err := phase(load.Direct, e.mockURL)
			if err != nil {
				return err
			}
			pool(&direct, res)
		}
		if agent {
			res, err := phase(load.DirectAgent, "")
			if err != nil {
				return err
			}
			pool(&agentRes, res)
		}
		if e.target != "" {
			res, fi, err := watched(c, e, phase)
			if err != nil {
				return err
			}
			pool(&herm, res)
			f = poolFigures(f, weight, fi, res.Elapsed)
			weight += res.Elapsed
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d rounds of direct, direct-agent and hermesd, %v each, samples pooled", c.rounds, base.Duration))
	if !c.noDirect {
		fillDirect(r, &direct)
	}
	if agent {
		fillDirectAgent(r, &agentRes)
	}
	if e.target != "" {
		fillHermesd(c, r, &herm, f)
	}
	return nil
}

// pool adds one round's result to the pooled one.
func pool(into, res *load.Result) {
	into.Requests += res.Requests
	into.Errors += res.Errors
	into.Elapsed += res.Elapsed
	into.TTFT = append(into.TTFT, res.TTFT...)
	into.Latency = append(into.Latency, res.Latency...)
	for k, n := range res.ErrorKinds {
		if into.ErrorKinds == nil {
			into.ErrorKinds = map[string]int{}
		}
		into.ErrorKinds[k] += n
	}
}

// poolFigures adds a round's figures (over elapsed) to the pooled ones
// (over weight): peaks are the highest, cores the mean over the time,
// syscalls the sum; unknown (-1) stays unknown.
func poolFigures(f figures, weight time.Duration, g figures, elapsed time.Duration) figures {
	if weight == 0 {
		return g
	}
	mean := func(a, b float64) float64 {
		if a < 0 || b < 0 {
			return -1
		}
		return (a*weight.Seconds() + b*elapsed.Seconds()) / (weight + elapsed).Seconds()
	}
	sum := func(a, b proc.Syscalls) proc.Syscalls {
		if a.Reads < 0 || b.Reads < 0 {
			return proc.Syscalls{Reads: -1, Writes: -1}
		}
		return proc.Syscalls{Reads: a.Reads + b.Reads, Writes: a.Writes + b.Writes}
	}
	return figures{
		goroutines: max(f.goroutines, g.goroutines), metricsRSS: max(f.metricsRSS, g.metricsRSS),
		cores: mean(f.cores, g.cores), mockCores: mean(f.mockCores, g.mockCores),
		sys: sum(f.sys, g.sys), mockSys: sum(f.mockSys, g.mockSys),
	}
}

// captureUpstream arms the mock's capture, sends hermesd one request of the
// scenario and returns the upstream request the mock received for it.
func captureUpstream(ctx context.Context, c *config, e *env, base load.Options) ([]byte, error) {
	client := load.NewClient(1, c.timeout)
	defer client.CloseIdleConnections()
	if st, _, err := client.Post(nil, e.mockURL+mockllm.CapturePath, nil); err != nil || st != 200 {
		return nil, fmt.Errorf("arming the capture: status %d, %v", st, err)
	}
	o := base
	o.Kind, o.BaseURL, o.Concurrency, o.Requests, o.Duration, o.Progress, o.Stagger = load.Hermesd, e.target, 1, 1, 0, nil, 0
	res, err := load.Run(ctx, client, o)
	if err != nil {
		return nil, err
	}
	if res.Errors > 0 {
		return nil, fmt.Errorf("the capturing request failed: %v", res.ErrorKinds)
	}
	st, body, err := client.Get(nil, e.mockURL+mockllm.CapturePath)
	if err != nil || st != 200 {
		return nil, fmt.Errorf("reading the capture: status %d, %v", st, err)
	}
	return body, nil
}

// perFrame sets the CPU µs and the read and write syscalls per frame from
// a phase's mean cores and syscall deltas; unknown figures stay 0.
func perFrame(frames, cores float64, elapsed time.Duration, sc proc.Syscalls, cpu, reads, writes *float64) {
	if frames <= 0 {
		return
	}
	if cores >= 0 {
		*cpu = math.Round(cores*elapsed.Seconds()*1e7/frames) / 10
	}
	if sc.Reads >= 0 {
		*reads = math.Round(float64(sc.Reads)*100/frames) / 100
		*writes = math.Round(float64(sc.Writes)*100/frames) / 100
	}
}

// loopPhase runs ws-agent-loop's loop over HTTP against hermesd, the
// reference for the WebSocket figures hermesdPhase took.
func loopPhase(e *env, r *report.Report, phase func(load.Kind, string) (*load.Result, error)) error {
	pid := 0
	if e.hermesd != nil {
		pid = e.hermesd.Pid()
	}
	watch := proc.StartWatch(pid, "")
	res, err := phase(load.HermesdHTTP, e.target)
	_, cores, _ := watch.Stop()
	if err != nil {
		return err
	}
	r.HTTPLoopRequests, r.HTTPLoopErrors, r.HTTPLoopRPS = res.Requests, res.Errors, res.RPS()
	r.HTTPLoopLatency = report.Summarize(res.Latency)
	r.Curves["hermesd http latency"] = report.CurveOf(res.Latency)
	r.WSOverHTTP = report.Ratio(r.Latency, r.HTTPLoopLatency)
	r.HTTPLoopCPUms = cpuPer(cores, res)
	if res.Errors > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("http loop errors: %v", res.ErrorKinds))
	}
	return nil
}

// cpuPer is the server's CPU milliseconds per successful request of res,
// from its mean cores over the phase; 0 when unknown.
func cpuPer(cores float64, res *load.Result) float64 {
	ok := res.Requests - res.Errors
	if cores < 0 || ok <= 0 {
		return 0
	}
	return cores * res.Elapsed.Seconds() * 1000 / float64(ok)
}

// start brings up the servers the run needs.
func start(ctx context.Context, c *config) (*env, error) {
	e := &env{}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	needMock := !c.noDirect || c.url == "" && c.upstream == "mock"
	if needMock {
		if e.mock, err = proc.Start("mockllm", self, []string{"-serve", "mock"}, nil, true, 10*time.Second); err != nil {
			return e, err
		}
		e.mockURL = "http://" + e.mock.Addr
	}
	if !c.noCeiling {
		if e.ceiling, err = proc.Start("ceiling", self, []string{"-serve", "ceiling"}, nil, true, 10*time.Second); err != nil {
			return e, err
		}
		e.ceilingURL = "http://" + e.ceiling.Addr
	}
	if c.url != "" {
		e.target = strings.TrimSuffix(strings.TrimSuffix(c.url, "/"), "/v1")
		if err := proc.WaitHTTP(ctx, e.target+"/health", 10*time.Second); err != nil {
			return e, err
		}
		e.notes = append(e.notes, "hermesd at "+c.url+" was already running: RSS from its /metrics only")
		return e, nil
	}
	bin := c.hermesdBin
	if e.home, err = os.MkdirTemp("", "hermes-bench-"); err != nil {
		return e, err
	}
	if bin == "" {
		if bin, err = buildHermesd(ctx, e.home); err != nil {
			e.notes = append(e.notes, "hermesd not measured: "+err.Error())
			fmt.Fprintln(os.Stderr, "hermes-bench: hermesd not available, measuring direct and ceiling only:", err)
			return e, nil
		}
	}
	port, err := proc.FreePort()
	if err != nil {
		return e, err
	}
	home := filepath.Join(e.home, "home")
	ws := filepath.Join(e.home, "workspace")
	for _, d := range []string{home, ws} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return e, err
		}
	}
	if c.scenario == load.LongChain {
		if err := os.WriteFile(filepath.Join(ws, load.BlobFile), load.Blob(), 0o600); err != nil {
			return e, err
		}
	}
	stored := c.stored
	if stored == 0 {
		// Every chain's latest response must survive LRU eviction.
		stored = max(10*c.concurrency, 10000)
	}
	envv := []string{
		"API_SERVER_MAX_CONCURRENT_TURNS=" + strconv.Itoa(c.maxTurns),
		// Every client is on 127.0.0.1: hermesd's per-address cap (512 by
		// default) would refuse all but the first clients with 429, and
		// its connection cap (4,096) the rest of a 10,000-client run.
		"API_SERVER_MAX_CONNECTIONS_PER_IP=0",
		"API_SERVER_MAX_CONNECTIONS=" + strconv.Itoa(max(4096, 2*c.concurrency)),
		"API_SERVER_MAX_STORED_RESPONSES=" + strconv.Itoa(stored),
		"HERMES_WORKSPACE=" + ws,
		"HERMES_HOME=" + home,
	}
	if c.upstream == "mock" {
		envv = append(envv, "OPENAI_BASE_URL="+e.mockURL+"/v1", "OPENAI_API_KEY=bench", "HERMES_MODEL=mock-model")
	} else {
		envv = append(envv, "OPENAI_BASE_URL=", "OPENAI_API_KEY=", "HERMES_MODEL=")
	}
	if c.database != "" {
		envv = append(envv, "HERMES_DATABASE_URL="+c.database, "HERMES_NODE_ID=node0")
	}
	args := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--home", home}
	if e.hermesd, err = proc.Start("hermesd", bin, args, envv, false, 0); err != nil {
		return e, err
	}
	e.target = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := proc.WaitHTTP(ctx, e.target+"/health", 20*time.Second); err != nil {
		return e, fmt.Errorf("%w; hermesd stderr: %s", err, e.hermesd.Stderr())
	}
	for i := 1; i < c.nodes; i++ {
		if err := startNode(ctx, e, bin, i, envv); err != nil {
			return e, err
		}
	}
	if c.nodes > 1 {
		e.notes = append(e.notes, fmt.Sprintf("%d nodes on one PostgreSQL, each client's requests round-robin over them; RSS, CPU and goroutines are node0's", c.nodes))
	}
	return e, nil
}

// startNode starts cluster node i with node0's settings and a home of its
// own.
func startNode(ctx context.Context, e *env, bin string, i int, envv []string) error {
	port, err := proc.FreePort()
	if err != nil {
		return err
	}
	home := filepath.Join(e.home, fmt.Sprintf("home%d", i))
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	envv = slices.DeleteFunc(slices.Clone(envv), func(kv string) bool {
		return strings.HasPrefix(kv, "HERMES_HOME=") || strings.HasPrefix(kv, "HERMES_NODE_ID=")
	})
	envv = append(envv, "HERMES_HOME="+home, fmt.Sprintf("HERMES_NODE_ID=node%d", i))
	args := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--home", home}
	ch, err := proc.Start(fmt.Sprintf("hermesd node%d", i), bin, args, envv, false, 0)
	if err != nil {
		return err
	}
	e.more = append(e.more, ch)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := proc.WaitHTTP(ctx, url+"/health", 20*time.Second); err != nil {
		return fmt.Errorf("%w; node%d stderr: %s", err, i, ch.Stderr())
	}
	e.nodes = append(e.nodes, url)
	return nil
}

// buildHermesd builds ./cmd/hermesd of the module the current directory is
// in, into dir.
func buildHermesd(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the hermesd module (run from the checkout, or pass -hermesd or -url)")
	}
	root := filepath.Dir(gomod)
	if _, err := os.Stat(filepath.Join(root, "cmd", "hermesd")); err != nil {
		return "", errors.New("no ./cmd/hermesd in " + root)
	}
	bin := filepath.Join(dir, "hermesd")
	fmt.Fprintln(os.Stderr, "hermes-bench: building ./cmd/hermesd …")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/hermesd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/hermesd: %v: %s", err, lastLine(string(out)))
	}
	return bin, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func output(c *config, r *report.Report) error {
	if err := r.WriteTable(os.Stdout); err != nil {
		return err
	}
	if c.jsonPath != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if c.svgPath != "" {
		f, err := os.Create(c.svgPath)
		if err != nil {
			return err
		}
		if err := r.WriteSVG(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}
