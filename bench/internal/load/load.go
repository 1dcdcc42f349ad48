// Package load is hermes-bench's load client: concurrent workers that drive
// one scenario against one target (hermesd, the mock upstream directly, or
// the bare fasthttp ceiling) for a bounded time or request count, timing
// the first content token and the whole answer of every request.
//
// It imports the standard library, fasthttp and fasthttp/websocket only,
// and speaks the OpenAI wire format from the outside.
package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Scenarios.
const (
	Chat       = "chat"        // stateless, non-stream
	ChatStream = "chat-stream" // stateless, streamed
	// ResponsesStream: stateless streamed /v1/responses (store: false),
	// the Responses API counterpart of ChatStream.
	ResponsesStream = "responses-stream"
	ResponsesChain  = "responses-chain" // each worker continues its own previous_response_id chain
	Conversation    = "conversation"    // named conversations of Turns turns each
	ToolLoop        = "tool-loop"       // streamed turns that run ToolIters terminal calls
	Idle            = "idle"            // open Requests named conversations, one short turn each
	// LongChain: each worker continues one previous_response_id chain for
	// Turns turns, each turn reading BlobFile (an 8 KB tool output) first.
	LongChain = "long-chain"
	// WSAgentLoop: a client tool loop of LoopSteps calls, over one
	// WebSocket (Kind Hermesd) or over HTTP (Kind HermesdHTTP).
	WSAgentLoop = "ws-agent-loop"
)

// Scenarios lists every scenario name.
var Scenarios = []string{Chat, ChatStream, ResponsesStream, ResponsesChain, Conversation, ToolLoop, Idle, LongChain, WSAgentLoop}

// BlobFile is the file each long-chain turn reads with read_file; it must
// be in the workspace of the hermesd under test (hermes-bench writes it).
const BlobFile = "bench-blob.txt"

// Blob returns BlobFile's content: 100 lines, 8,100 bytes, so read_file's
// numbered result is a little over 8 KB.
func Blob() []byte {
	line := bytes.Repeat([]byte("x"), 80)
	return bytes.Repeat(append(line, '\n'), 100)
}

// Kind is what a target is, which decides the requests it gets.
type Kind int

const (
	// Hermesd gets the scenario's own requests.
	Hermesd Kind = iota
	// Direct is the mock upstream: it gets the chat calls hermesd would make.
	Direct
	// Ceiling is a bare fasthttp handler: same requests as Direct.
	Ceiling
	// HermesdHTTP is hermesd given, in ws-agent-loop, the loop over HTTP
	// that Hermesd gets over a WebSocket.
	HermesdHTTP
	// DirectAgent is the mock upstream given Options.Body, the exact
	// request hermesd sent it for the scenario (system prompt and tool
	// schemas included), so the difference from hermesd is hermesd's own.
	DirectAgent
)

func (k Kind) String() string {
	return [...]string{"hermesd", "direct", "ceiling", "hermesd-http", "direct-agent"}[k]
}

// Options configure one run.
type Options struct {
	Scenario string
	Kind     Kind
	BaseURL  string // http://host:port, without /v1
	// Nodes are more hermesd nodes of one cluster (cluster mode): each
	// worker sends its requests to BaseURL and these in turn, so every
	// turn of a conversation may land on another node, as behind a load
	// balancer without affinity.
	Nodes       []string
	Concurrency int
	// Duration and Requests bound the run; the first reached ends it. At
	// least one must be set.
	Duration time.Duration
	Requests int
	// Timeout bounds each request, whole answer included.
	Timeout time.Duration

	Tokens     int           // answer length
	TTFT       time.Duration // model wait before the first token
	TokenDelay time.Duration // model wait between tokens
	ToolIters  int           // tool-loop: terminal calls per turn
	Think      string        // reasoning the model streams before each answer ("" none)
	Turns      int           // conversation: turns per conversation name; long-chain: turns per chain
	Model      string        // the model field sent
	APIKey     string        // bearer key for hermesd, if any
	// RunID makes conversation names unique across runs against one server.
	RunID string
	// Stagger spreads the clients' first requests evenly over this window,
	// so arrivals reach a steady state instead of a thundering herd that
	// repeats in lockstep every answer (no real deployment sees that, and
	// it measures the burst, not the server). Zero starts all at once.
	Stagger time.Duration

	// Body is what DirectAgent sends, verbatim; BodyStream says whether
	// it asks for a stream.
	Body       []byte
	BodyStream bool

	// Progress, if set, gets a progress line every second.
	Progress io.Writer
	Label    string
	// Sample, if set in long-chain, is read at the start and each time
	// another tenth of the run's turns has completed (hermes-bench reads
	// the server's bytes written).
	Sample func() int64
}

// Result is what a run measured.
type Result struct {
	Requests   int // completed, successful or not
	Errors     int
	ErrorKinds map[string]int
	Elapsed    time.Duration
	// TTFT is the time to the first content token (the whole answer for
	// non-stream requests); Latency the time to the end of the answer.
	// Both hold successful requests only.
	TTFT, Latency []time.Duration
	// ByTurn holds, in long-chain, the latency of every successful turn by
	// its number within its chain (0 first).
	ByTurn [][]time.Duration
	// Samples holds, in long-chain, Options.Sample at the start and after
	// each tenth of the turns (11 values when the run completed).
	Samples []int64
}

// RPS returns successful requests per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// NewClient returns a client able to hold concurrency connections open to
// one host, so no request ever waits for a pooled connection.
func NewClient(concurrency int, timeout time.Duration) *fasthttp.Client {
	// 10,000 workers dial at once; fasthttp's default dialer allows 1,000.
	dialer := &fasthttp.TCPDialer{Concurrency: 0}
	return &fasthttp.Client{
		MaxConnsPerHost:               concurrency + 16,
		MaxConnWaitTimeout:            timeout,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		MaxIdleConnDuration:           time.Minute,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		ReadBufferSize:                16 << 10,
		// A connect may wait as long as the request may: when 10,000
		// clients arrive together, SYNs beyond the listen backlog are
		// retried by the kernel after 1 s and 3 s, and fasthttp's default
		// 3 s dial timeout would count a slow accept as a failure (real
		// clients wait far longer; the OpenAI SDKs allow minutes).
		Dial: func(addr string) (net.Conn, error) { return dialer.DialTimeout(addr, timeout) },
	}
}

// Run drives opts.Scenario against opts.BaseURL with client until the
// duration, the request count or ctx ends, whichever comes first.
func Run(ctx context.Context, client *fasthttp.Client, opts Options) (*Result, error) {
	if opts.Concurrency <= 0 {
		return nil, errors.New("concurrency must be positive")
	}
	if opts.Duration <= 0 && opts.Requests <= 0 {
		return nil, errors.New("a duration or a request count is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	if opts.Turns <= 0 {
		opts.Turns = 4
	}
	long := opts.Scenario == LongChain && opts.Kind == Hermesd
	if long {
		// Every worker makes its whole chain, no more.
		opts.Requests = opts.Concurrency * opts.Turns
	}
	if opts.Model == "" {
		opts.Model = "hermes-agent"
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}

	var (
		issued, done, failed atomic.Int64
		wg                   sync.WaitGroup
		mu                   sync.Mutex
		res                  = &Result{ErrorKinds: map[string]int{}}
	)
	stopProgress := progress(opts, &done, &failed)
	var sampleMu sync.Mutex // guards res.Samples
	sample := func(n int64) {
		if !long || opts.Sample == nil {
			return
		}
		tenth := int64(opts.Requests / 10)
		if n != 0 && (tenth == 0 || n%tenth != 0 || n/tenth > 10) {
			return
		}
		v := opts.Sample()
		sampleMu.Lock()
		res.Samples = append(res.Samples, v)
		sampleMu.Unlock()
	}
	sample(0)
	if long {
		res.ByTurn = make([][]time.Duration, opts.Turns)
	}
	began := time.Now()
	for w := 0; w < opts.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := &worker{opts: &opts, client: client, id: w}
			defer wk.close()
			if opts.Stagger > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(opts.Stagger * time.Duration(w) / time.Duration(opts.Concurrency)):
				}
			}
			var ttft, lat []time.Duration
			var byTurn []time.Duration
			kinds := map[string]int{}
			for ctx.Err() == nil {
				if long && len(byTurn) == opts.Turns {
					break
				}
				n := issued.Add(1)
				if opts.Requests > 0 && n > int64(opts.Requests) {
					break
				}
				s := wk.do(int(n))
				sample(done.Add(1))
				if long {
					byTurn = append(byTurn, s.total) // a failed turn is a zero here, skipped below
				}
				if s.err != "" {
					failed.Add(1)
					kinds[s.err]++
					if backoff[s.err] {
						// A refused or exhausted connection fails in
						// microseconds; retrying at once would only spin.
						select {
						case <-ctx.Done():
						case <-time.After(10 * time.Millisecond):
						}
					}
					continue
				}
				ttft = append(ttft, s.ttft)
				lat = append(lat, s.total)
			}
			mu.Lock()
			for i, d := range byTurn {
				if d > 0 {
					res.ByTurn[i] = append(res.ByTurn[i], d)
				}
			}
			res.TTFT = append(res.TTFT, ttft...)
			res.Latency = append(res.Latency, lat...)
			for k, n := range kinds {
				res.ErrorKinds[k] += n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(began)
	slices.Sort(res.Samples) // two tenths may complete at once; the counter only grows
	stopProgress()
	res.Requests = int(done.Load())
	res.Errors = int(failed.Load())
	return res, nil
}

// progress prints a status line every second until the returned func is
// called.
func progress(opts Options, done, failed *atomic.Int64) func() {
	if opts.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastAt := int64(0), began
		for {
			select {
			case <-stop:
				fmt.Fprintln(opts.Progress)
				return
			case now := <-t.C:
				n := done.Load()
				fmt.Fprintf(opts.Progress, "\r%-22s %6.1fs %9d req %6d err %8.0f req/s ",
					opts.Label, now.Sub(began).Seconds(), n, failed.Load(), float64(n-last)/now.Sub(lastAt).Seconds())
				last, lastAt = n, now
			}
		}
	}()
	return func() {
		close(stop)
		<-finished
	}
}

// backoff lists the error kinds after which a worker pauses briefly.
var backoff = map[string]bool{"refused": true, "too_many_files": true, "no_ports": true, "no_free_conns": true, "transport": true}

// sample is one request's outcome; err is its error kind, "" on success.
type sample struct {
	ttft, total time.Duration
	err         string
}

// worker is one simulated client; its fields carry its chain and
// conversation from turn to turn.
type worker struct {
	opts   *Options
	client *fasthttp.Client
	id     int
	prev   string // last response id of this worker's chain
	conv   int    // index of the current conversation
	turn   int    // turns made in it
	// toolTurn is set while the direct tool loop makes a call that is
	// answered with a tool call, so carries no content.
	toolTurn bool
	// ws is the worker's WebSocket in ws-agent-loop, kept across loops.
	ws   *websocket.Conn
	sent int // requests sent, to pick the next node
}

// base is the node the worker's next request goes to.
func (w *worker) base() string {
	n := len(w.opts.Nodes) + 1
	i := (w.id + w.sent) % n
	w.sent++
	if i == 0 {
		return w.opts.BaseURL
	}
	return w.opts.Nodes[i-1]
}

func (w *worker) close() {
	if w.ws != nil {
		_ = w.ws.Close()
	}
}

func (w *worker) prompt() string {
	o := w.opts
	// One directive a line: the offline model reads only lines that start
	// with one, and mockllm reads them anywhere.
	p := "Benchmark turn.\n/tokens " + strconv.Itoa(max(o.Tokens, 1))
	if o.TokenDelay > 0 {
		p += "\n/delay " + o.TokenDelay.String()
	}
	if o.TTFT > 0 {
		p += "\n/sleep " + o.TTFT.String()
	}
	if o.Think != "" {
		p += "\n/think " + o.Think
	}
	if o.Scenario == ToolLoop && o.ToolIters > 0 {
		p += "\n/tool terminal {\"command\":\"true\"}\n/repeat " + strconv.Itoa(o.ToolIters)
	}
	if o.Scenario == Idle {
		p = "Idle conversation.\n/tokens 1"
	}
	if o.Scenario == LongChain {
		p += "\n/tool read_file {\"path\":\"" + BlobFile + "\"}"
	}
	return p
}

func (w *worker) do(n int) sample {
	o := w.opts
	stream := o.Scenario == ChatStream || o.Scenario == ToolLoop || o.Scenario == ResponsesStream
	switch {
	case o.Scenario == WSAgentLoop && o.Kind == Hermesd:
		return w.agentLoop(w.socketStep)
	case o.Scenario == WSAgentLoop && o.Kind == HermesdHTTP:
		return w.agentLoop(w.httpStep)
	case o.Scenario == WSAgentLoop:
		return sample{err: "unsupported_target"}
	case o.Kind == DirectAgent:
		return w.post("/v1/chat/completions", o.Body, o.BodyStream, nil)
	}
	if o.Kind != Hermesd {
		if o.Scenario == ToolLoop && o.Kind == Direct {
			return w.directToolLoop()
		}
		return w.chat(stream, nil)
	}
	switch o.Scenario {
	case Chat, ChatStream, ToolLoop:
		return w.chat(stream, nil)
	case ResponsesStream:
		return w.responsesStream()
	case ResponsesChain, LongChain:
		return w.responses("")
	case Conversation:
		if w.turn == o.Turns {
			w.conv, w.turn = w.conv+1, 0
		}
		w.turn++
		return w.responses(fmt.Sprintf("bench-%s-%d-%d", o.RunID, w.id, w.conv))
	case Idle:
		return w.responses(fmt.Sprintf("idle-%s-%d", o.RunID, n))
	}
	return sample{err: "unknown_scenario"}
}

type msg struct {
	Role       string          `json:"role"`
	Content    *string         `json:"content"`
	ToolCalls  json.RawMessage `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type chatBody struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream,omitempty"`
	Messages []msg  `json:"messages"`
}

// chat sends one chat completion; extra messages follow the user prompt
// (the direct tool loop's history).
func (w *worker) chat(stream bool, extra []msg) sample {
	p := w.prompt()
	body := chatBody{Model: w.opts.Model, Stream: stream, Messages: append([]msg{{Role: "user", Content: &p}}, extra...)}
	b, err := json.Marshal(body)
	if err != nil {
		return sample{err: "encode"}
	}
	return w.post("/v1/chat/completions", b, stream, nil)
}

var toolCall = json.RawMessage(`[{"id":"call_bench","type":"function","function":{"name":"terminal","arguments":"{\"command\":\"true\"}"}}]`)

// directToolLoop does against the mock what hermesd's agent loop does: K
// calls answered with a tool call, each followed by the tool's result, then
// the answer. Its TTFT is the answer's first token from the loop's start.
func (w *worker) directToolLoop() sample {
	began := time.Now()
	var hist []msg
	out := "ok"
	for i := 0; i < w.opts.ToolIters; i++ {
		w.toolTurn = true
		s := w.chat(true, hist)
		w.toolTurn = false
		if s.err != "" {
			return s
		}
		hist = append(hist, msg{Role: "assistant", ToolCalls: toolCall}, msg{Role: "tool", ToolCallID: "call_bench", Content: &out})
	}
	s := w.chat(true, hist)
	if s.err != "" {
		return s
	}
	total := time.Since(began)
	return sample{ttft: total - s.total + s.ttft, total: total}
}

type responsesBody struct {
	Model        string `json:"model"`
	Input        string `json:"input"`
	Previous     string `json:"previous_response_id,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	Store        bool   `json:"store"`
}

// responses sends one Responses API turn, continuing the worker's chain
// when conv is "".
func (w *worker) responses(conv string) sample {
	body := responsesBody{Model: w.opts.Model, Input: w.prompt(), Conversation: conv, Store: true}
	if conv == "" {
		body.Previous = w.prev
	}
	b, err := json.Marshal(body)
	if err != nil {
		return sample{err: "encode"}
	}
	var id string
	s := w.post("/v1/responses", b, false, func(resp []byte) string {
		var r struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if json.Unmarshal(resp, &r) != nil || r.ID == "" {
			return "bad_response"
		}
		if r.Status != "completed" {
			return "response_" + r.Status
		}
		id = r.ID
		return ""
	})
	if s.err == "" && conv == "" {
		w.prev = id
	}
	return s
}

// responsesStream sends one stateless streamed Responses API turn.
func (w *worker) responsesStream() sample {
	b, err := json.Marshal(responsesStreamBody{Model: w.opts.Model, Input: w.prompt(), Stream: true})
	if err != nil {
		return sample{err: "encode"}
	}
	return w.post("/v1/responses", b, true, nil)
}

type responsesStreamBody struct {
	Model  string `json:"model"`
	Input  string `json:"input"`
	Stream bool   `json:"stream"`
	Store  bool   `json:"store"`
}

// post sends body and times the answer. Streams are read as they arrive to
// catch the first content token; check, if set, judges a non-stream body.
func (w *worker) post(path string, body []byte, stream bool, check func([]byte) string) sample {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(w.base() + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if w.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+w.opts.APIKey)
	}
	if w.opts.Scenario == ToolLoop {
		// The answer's first token is what is timed, not progress markers.
		req.Header.Set("X-Hermes-Progress", "off")
	}
	req.SetBodyRaw(body)
	resp.StreamBody = stream

	began := time.Now()
	if err := w.client.DoTimeout(req, resp, w.opts.Timeout); err != nil {
		return sample{err: transportKind(err)}
	}
	if code := resp.StatusCode(); code != fasthttp.StatusOK {
		if stream {
			_ = resp.CloseBodyStream()
		}
		return sample{err: "status_" + strconv.Itoa(code)}
	}
	if !stream {
		b := resp.Body()
		total := time.Since(began)
		kind := ""
		if check != nil {
			kind = check(b)
		} else if !bytes.Contains(b, []byte(`"choices"`)) {
			kind = "bad_response"
		}
		return sample{ttft: total, total: total, err: kind}
	}
	s := readSSE(resp.BodyStream(), began)
	if s.err == "" {
		// Read past [DONE] to the body's end, as an SDK does, so the
		// connection is kept for the next request: closing a body not
		// read whole closes its connection, and every request then paid
		// for a new one on both sides.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.BodyStream(), 1<<20))
	}
	_ = resp.CloseBodyStream()
	if s.err == "" && s.ttft == 0 && !w.toolTurn {
		s.err = "no_content"
	}
	return s
}

var (
	dataPrefix = []byte("data: ")
	doneFrame  = []byte("data: [DONE]")
	errorFrame = []byte(`data: {"error"`)
	content    = []byte(`"content":"`)
	// A Responses stream: its text deltas, and the events of a failure.
	textDelta      = []byte(`data: {"type":"response.output_text.delta"`)
	delta          = []byte(`"delta":"`)
	responseFailed = []byte(`data: {"type":"response.failed"`)
	responseError  = []byte(`data: {"type":"error"`)
)

// readSSE reads a chat completion or Responses stream to its [DONE],
// noting when the first non-empty content (or output_text) delta arrived. It matches bytes rather than
// decoding JSON so the client stays cheap beside the server it measures.
func readSSE(r io.Reader, began time.Time) sample {
	br := bufio.NewReaderSize(r, 8<<10)
	var s sample
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, dataPrefix) {
			switch {
			case bytes.HasPrefix(line, doneFrame):
				s.total = time.Since(began)
				return s
			case bytes.HasPrefix(line, errorFrame), bytes.HasPrefix(line, responseError), bytes.HasPrefix(line, responseFailed):
				s.err = "sse_error"
				return s
			case s.ttft == 0 && bytes.HasPrefix(line, textDelta):
				if i := bytes.Index(line, delta); i >= 0 && i+len(delta) < len(line) && line[i+len(delta)] != '"' {
					s.ttft = time.Since(began)
				}
			case s.ttft == 0:
				if i := bytes.Index(line, content); i >= 0 && i+len(content) < len(line) && line[i+len(content)] != '"' {
					s.ttft = time.Since(began)
				}
			}
		}
		// A frame longer than the buffer: its head has been judged, skip
		// the rest (ReadSlice reuses the buffer, so only after judging).
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.err = "truncated"
			} else {
				s.err = transportKind(err)
			}
			return s
		}
	}
}

// transportKind names a transport error for the report.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return "conn_reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_ports"
	}
	return "transport"
}
