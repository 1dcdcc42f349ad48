package llm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// Limits on what an upstream may send, so a broken server cannot exhaust
// memory: one SSE line, a whole non-stream body, an error body.
const (
	maxLineBytes  = 16 << 20
	maxBodyBytes  = 32 << 20
	maxErrorBytes = 64 << 10
)

// UpstreamOptions configure an Upstream. Zero durations take the defaults.
type UpstreamOptions struct {
	// BaseURL is the API root, e.g. https://api.openai.com/v1 or
	// http://127.0.0.1:11434/v1; "/chat/completions" is appended.
	BaseURL string
	// APIKey is sent as a bearer token when set.
	APIKey string
	// Model is the model id used when Request.Model is empty.
	Model string
	// ConnectTimeout bounds dialing and the TLS handshake (default 10s). It
	// applies only to the built-in client, not to HTTPClient.
	ConnectTimeout time.Duration
	// FirstByteTimeout bounds the wait for the response headers and the
	// first SSE data line (default 120s).
	FirstByteTimeout time.Duration
	// IdleTimeout bounds the gap between two SSE lines once data flows
	// (default 120s).
	IdleTimeout time.Duration
	// NoVision marks a model that takes no images (vision: false): a call
	// whose messages carry one is refused with EModelNotVision before
	// anything is sent. A model not so marked gets its images, and its
	// server's refusal comes back as a 400.
	NoVision bool
	// FetchImage, when set (fetch_images: true), makes the upstream fetch
	// http(s) image URLs itself and send them inline as data URLs, for
	// local servers that cannot fetch; it is the SSRF-guarded fetcher of
	// the web tools, given at most limit bytes, returning the body and its
	// Content-Type.
	FetchImage func(ctx context.Context, url string, limit int64) ([]byte, string, error)
	// SendReasoning sends the reasoning kept with earlier assistant
	// messages back as their reasoning_content. Off by default: most
	// servers ignore it and some (DeepSeek) refuse a request carrying it.
	SendReasoning bool
	// Reasoning marks a reasoning model (`reasoning: true`): only it is sent
	// a request's effort as reasoning_effort. Other servers refuse the
	// field (OpenAI's non-reasoning models answer 400) or ignore it.
	Reasoning bool
	// HTTPClient replaces the built-in client (tests, proxies): the
	// upstream then speaks net/http through it. Its own Timeout, if any,
	// also applies, so leave it zero for streaming.
	//
	// Without it the upstream uses a fasthttp connection pool, unless a
	// proxy is configured in the environment (HTTPS_PROXY, HTTP_PROXY or
	// ALL_PROXY, any case) when NewUpstream runs, or the base URL is not a
	// plain http(s) URL: fasthttp does not do proxies, so those upstreams
	// keep a net/http client honouring the proxy variables.
	HTTPClient *http.Client
}

// Upstream is a Model served by an OpenAI-compatible chat completions
// endpoint (OpenAI, OpenRouter, vLLM, Ollama, llama.cpp, LiteLLM…). It is
// safe for concurrent use.
type Upstream struct {
	opts   UpstreamOptions
	url    string
	auth   string                        // the Authorization header, "" without an API key
	fast   *fastClient                   // the fasthttp path; nil when client is used
	client *http.Client                  // the net/http path
	tools  atomic.Pointer[encodedTools]  // the last tool list encoded
	system atomic.Pointer[encodedSystem] // the last system message encoded
	// chatHead is the fasthttp path's chat request head, up to the value
	// of its Content-Length.
	chatHead string
	// timeouts are the watchdog's causes, made once: formatting them on
	// every call was a good part of its allocations before the request
	// went out. They are only ever wrapped (failure), never changed.
	timeouts struct{ firstByte, bodyIdle, streamIdle *hermes.Error }
	images   inlined // fetched images (FetchImage)
}

// encodedTools caches the JSON of a tool list. The agent sends the same
// shared list (its registry's) on nearly every call, and re-encoding a
// dozen schemas per call was a large share of a turn's allocations.
type encodedTools struct {
	first *hermes.ToolSpec
	n     int
	raw   json.RawMessage
}

// NewUpstream returns a client for the endpoint opts describe.
func NewUpstream(opts UpstreamOptions) *Upstream {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.FirstByteTimeout <= 0 {
		opts.FirstByteTimeout = 120 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	u := &Upstream{
		opts: opts,
		url:  strings.TrimRight(opts.BaseURL, "/") + "/chat/completions",
	}
	if opts.APIKey != "" {
		u.auth = "Bearer " + opts.APIKey
	}
	u.timeouts.firstByte = hermes.Errorf(hermes.ETimeout, "no first byte from upstream within %v", opts.FirstByteTimeout)
	u.timeouts.bodyIdle = hermes.Errorf(hermes.ETimeout, "upstream response idle for %v", opts.IdleTimeout)
	u.timeouts.streamIdle = hermes.Errorf(hermes.ETimeout, "upstream stream idle for %v", opts.IdleTimeout)
	client := opts.HTTPClient
	if client == nil && !proxyConfigured() {
		if u.fast = newFastClient(u.url, opts.ConnectTimeout, nil); u.fast != nil {
			u.chatHead = string(appendHead(nil, "POST", u.url, "text/event-stream", u.auth, true))
			return u
		}
	}
	if client == nil {
		dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
		client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: opts.ConnectTimeout,
			ForceAttemptHTTP2:   true,
			// Thousands of concurrent turns talk to one host; keep their
			// connections instead of redialing for every call (a small
			// per-host pool turns each burst into a storm of new dials).
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	u.client = client
	return u
}

// lineBufs recycles the stream readers' buffers: a fresh 64 KiB buffer
// per model call was most of a streamed turn's allocation. Lines longer
// than a buffer grow a private one, up to maxLineBytes.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Stream implements Model. On a failure after text started to flow it
// returns the partial response alongside the error.
func (u *Upstream) Stream(ctx context.Context, req Request, onDelta func(text string)) (Response, error) {
	if onDelta == nil {
		onDelta = func(string) {}
	}
	onReasoning := req.OnReasoning
	if onReasoning == nil {
		onReasoning = func(string) {}
	}
	images := carriesImages(req.Messages)
	if images && u.opts.NoVision {
		model := req.Model
		if model == "" {
			model = u.opts.Model
		}
		return Response{}, &hermes.Error{Code: hermes.EModelNotVision, Param: "messages",
			Message: fmt.Sprintf("The model '%s' does not accept images (it is configured with vision: false); send the request without images or to a vision model.", model)}
	}
	if images && u.opts.FetchImage != nil {
		msgs, err := u.inlineImages(ctx, req.Messages)
		if err != nil {
			return Response{}, err
		}
		req.Messages = msgs
	}
	// On the fasthttp path the body is encoded into a pooled buffer behind
	// room for the request head, which then goes in front of it: head and
	// body leave in one write (fasthttp's 4 KiB write buffer split an
	// agent's 10 KB request into two, and the upstream woke twice to read
	// it). net/http may still read a body after the call ends, so its
	// bodies are not pooled.
	var b []byte
	room := 0
	if u.fast != nil {
		bp := reqBufs.Get().(*[]byte)
		defer func() {
			if cap(b) <= maxPooledBody {
				*bp = b[:0]
				reqBufs.Put(bp)
			}
		}()
		room = len(u.chatHead) + maxHeadTail
		b = slices.Grow((*bp)[:0], room)[:room]
	}
	enc, err := u.encode(b, req)
	if err != nil {
		return Response{}, err
	}
	b = enc
	if ctx.Err() != nil {
		return Response{}, cancelled(ctx)
	}

	// The watchdog cancels the request with a cause saying which timeout
	// fired; the transport then fails the pending read.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := startWatchdog(u.opts.FirstByteTimeout, u.timeouts.firstByte, cancel)
	defer wd.stop()

	if u.fast != nil {
		c, err := u.fast.do(rctx, withHead(b, room, u.chatHead))
		if err != nil {
			return Response{}, u.failure(ctx, rctx, err)
		}
		defer c.close()
		return u.read(ctx, rctx, wd, c.answer(), images, onDelta, onReasoning, req.OnMore)
	}

	hreq, err := http.NewRequestWithContext(rctx, http.MethodPost, u.url, bytes.NewReader(b))
	if err != nil {
		return Response{}, &hermes.Error{Code: hermes.EUpstream, Message: "invalid upstream URL", Cause: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	if u.auth != "" {
		hreq.Header.Set("Authorization", u.auth)
	}
	resp, err := u.client.Do(hreq)
	if err != nil {
		return Response{}, u.failure(ctx, rctx, err)
	}
	defer resp.Body.Close()
	return u.read(ctx, rctx, wd, httpAnswer(resp), images, onDelta, onReasoning, req.OnMore)
}

// answer is a response whose headers came, from either transport.
type answer struct {
	status      int
	contentType string
	retryAfter  string
	body        io.Reader
	// chunked, when set, is the connection's reader positioned at the
	// start of a chunked body, which an SSE stream reads and unframes
	// itself (sseReader); it sets *end once it read that body to a clean
	// end, which lets the connection go back to the pool.
	chunked *bufio.Reader
	end     *bool
}

func httpAnswer(resp *http.Response) answer {
	return answer{
		status:      resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"),
		retryAfter:  resp.Header.Get("Retry-After"),
		body:        resp.Body,
	}
}

// read turns an answer into the model's response, streaming text deltas
// to onDelta and reasoning deltas to onReasoning as SSE lines arrive.
// images says the request carried images: a server refusing it as a bad
// request (a model without vision) is then the client's 400, not a 502.
func (u *Upstream) read(ctx, rctx context.Context, wd *watchdog, a answer, images bool, onDelta, onReasoning func(string), onMore func(bool)) (Response, error) {
	if a.status < 200 || a.status > 299 {
		err := statusError(a, time.Now())
		if images && (a.status == http.StatusBadRequest || a.status == http.StatusUnsupportedMediaType || a.status == http.StatusUnprocessableEntity) {
			err.Code, err.Param = hermes.EInvalid, "messages"
			err.Message = "The model refused the request, which carries images (it may not accept images): " + err.Message
		}
		return Response{}, err
	}
	if isJSON(a.contentType) {
		// Headers came; the body of a non-stream answer follows at once.
		wd.rearm(u.opts.IdleTimeout, u.timeouts.bodyIdle)
		return u.whole(ctx, rctx, a.body, onDelta, onReasoning)
	}

	var dec streamDecoder
	buf := lineBufs.Get().(*[]byte)
	defer lineBufs.Put(buf)
	src, chunked := a.body, false
	if a.chunked != nil {
		src, chunked = a.chunked, true
	}
	sr := newSSEReader(src, chunked, *buf, maxLineBytes)
	if onMore != nil {
		// What one read brought is handed out as one batch: the caller
		// holds its deltas until the next read, which may wait.
		sr.reading = func(before bool) { onMore(!before) }
		defer onMore(false)
	}
	idle := u.timeouts.streamIdle
	var rerr error
	for {
		line, err := sr.next()
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
		before := dec.sawData
		delta, reasoning, err := dec.Line(line)
		if err != nil {
			return dec.response(), err
		}
		if reasoning != "" {
			onReasoning(reasoning)
		}
		if delta != "" {
			onDelta(delta)
		}
		if dec.done {
			break
		}
		switch {
		case dec.sawData && !before:
			wd.rearm(u.opts.IdleTimeout, idle)
		case dec.sawData:
			wd.reset()
		}
	}
	if cap(sr.buf) <= 64<<10 {
		*buf = sr.buf[:0] // keep a buffer a long line grew, within reason
	}
	if rerr != nil {
		return dec.response(), u.failure(ctx, rctx, rerr)
	}
	if !dec.ended() {
		if rctx.Err() != nil {
			// The body ended because the request was cancelled; some
			// transports report that as a clean EOF.
			return dec.response(), u.failure(ctx, rctx, context.Cause(rctx))
		}
		return dec.response(), hermes.Errorf(hermes.EUpstream, "upstream stream ended early")
	}
	if text, reasoning := dec.end(); text != "" || reasoning != "" {
		if reasoning != "" {
			onReasoning(reasoning)
		}
		if text != "" {
			onDelta(text)
		}
	}
	if dec.done {
		// Read the little that may follow [DONE] so the connection can be
		// reused; the watchdog bounds a server that keeps it open.
		wd.rearm(u.opts.IdleTimeout, idle)
		sr.discard(4 << 10)
	}
	if chunked && sr.clean {
		*a.end = true
	}
	return dec.response(), nil
}

// whole handles a server that ignored stream=true and sent one JSON body.
func (u *Upstream) whole(ctx, rctx context.Context, body io.Reader, onDelta, onReasoning func(string)) (Response, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxBodyBytes+1))
	if err != nil {
		return Response{}, u.failure(ctx, rctx, err)
	}
	if len(b) > maxBodyBytes {
		return Response{}, hermes.Errorf(hermes.EUpstream, "upstream response larger than %d bytes", maxBodyBytes)
	}
	r, err := decodeCompletion(b)
	if err != nil {
		return Response{}, err
	}
	if r.Reasoning != "" {
		onReasoning(r.Reasoning)
	}
	if r.Text != "" {
		onDelta(r.Text)
	}
	return r, nil
}

// failure classifies a transport error: the caller's cancellation, one of
// our timeouts, an unreachable server, or anything else the transport said.
func (u *Upstream) failure(ctx, rctx context.Context, err error) *hermes.Error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	var he *hermes.Error
	if errors.As(context.Cause(rctx), &he) {
		return &hermes.Error{Code: he.Code, Message: he.Message, Cause: err}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &hermes.Error{Code: hermes.EUpstream, Message: "upstream unreachable: " + dnsErr.Error(), Cause: err}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		if opErr.Timeout() {
			return &hermes.Error{Code: hermes.ETimeout, Message: fmt.Sprintf("no connection to upstream within %v", u.opts.ConnectTimeout), Cause: err}
		}
		return &hermes.Error{Code: hermes.EUpstream, Message: "upstream unreachable: " + opErr.Error(), Cause: err}
	}
	return &hermes.Error{Code: hermes.EUpstream, Message: "upstream request failed: " + err.Error(), Cause: err}
}

// cancelled is the error for a call whose context ended.
func cancelled(ctx context.Context) *hermes.Error {
	return &hermes.Error{Code: hermes.ECancelled, Message: "model call cancelled", Cause: context.Cause(ctx)}
}

// statusError turns a non-2xx answer into an error carrying the upstream's
// own message and the HTTP status.
func statusError(a answer, now time.Time) *hermes.Error {
	b, _ := io.ReadAll(io.LimitReader(a.body, maxErrorBytes))
	msg := envelopeMessage(b)
	if msg == "" {
		msg = http.StatusText(a.status)
		if snippet := strings.TrimSpace(tooling.CutBytes(string(b), 200)); snippet != "" {
			msg += ": " + snippet
		}
	}
	if a.status == http.StatusTooManyRequests {
		return &hermes.Error{
			Cause:      httpStatus(a.status),
			Code:       hermes.ERateLimited,
			Message:    "upstream rate limited (HTTP 429): " + msg,
			RetryAfter: retryAfter(a.retryAfter, now),
		}
	}
	return &hermes.Error{Code: hermes.EUpstream, Message: fmt.Sprintf("upstream returned HTTP %d: %s", a.status, msg), Cause: httpStatus(a.status)}
}

// envelopeMessage returns error.message of an OpenAI error envelope (or the
// bare error string some servers send), "" when b is neither.
func envelopeMessage(b []byte) string {
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &env) != nil {
		return ""
	}
	msg, ok := errorMessage(env.Error)
	if !ok {
		return ""
	}
	return msg
}

// retryAfter parses a Retry-After header, delta-seconds or an HTTP date.
// Absent, unparsable or past values give 1s so the client still backs off.
func retryAfter(v string, now time.Time) time.Duration {
	const floor = time.Second
	v = strings.TrimSpace(v)
	if v == "" {
		return floor
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs > 86400 {
			secs = 86400 // guards the multiplication below against overflow
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now).Round(time.Second)
	}
	if d < floor {
		return floor
	}
	return d
}

func isJSON(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

// watchdog cancels a request when a timer fires, with the error naming the
// timeout as the cancellation cause.
//
// Progress (reset) only notes the time: the timer, when it fires, waits
// on for what is left of the timeout since the last progress. Resetting
// the runtime timer on every line of a stream was a visible share of a
// streamed token's cost.
type watchdog struct {
	cause atomic.Pointer[hermes.Error]
	start time.Time
	d     atomic.Int64 // the current timeout
	seen  atomic.Int64 // the last progress, as time since start
	mu    sync.Mutex   // guards timer, which fire reads
	timer *time.Timer
}

func startWatchdog(d time.Duration, cause *hermes.Error, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{start: time.Now()}
	w.cause.Store(cause)
	w.d.Store(int64(d))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(d, func() {
		idle := time.Since(w.start) - time.Duration(w.seen.Load())
		if rest := time.Duration(w.d.Load()) - idle; rest > 0 {
			w.mu.Lock()
			w.timer.Reset(rest)
			w.mu.Unlock()
			return
		}
		cancel(w.cause.Load())
	})
	return w
}

// rearm switches to another timeout, counted from now.
func (w *watchdog) rearm(d time.Duration, cause *hermes.Error) {
	w.cause.Store(cause)
	w.d.Store(int64(d))
	w.seen.Store(int64(time.Since(w.start)))
	w.mu.Lock()
	w.timer.Reset(d)
	w.mu.Unlock()
}

// reset notes progress: the current timeout counts again from now.
func (w *watchdog) reset() { w.seen.Store(int64(time.Since(w.start))) }

func (w *watchdog) stop() {
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

// Tool wire types: the tools array is encoded once per tool list
// (encodeTools).
type wireTool struct {
	Type     string       `json:"type"`
	Function wireToolSpec `json:"function"`
}

type wireToolSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

// emptySchema is sent for tools without parameters: some servers reject a
// function with no schema.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// encodeTools returns the tools array as JSON, reusing the last encoding
// when the list is the same slice (an identical backing array means an
// identical, immutable list).
func (u *Upstream) encodeTools(tools []hermes.ToolSpec) (json.RawMessage, error) {
	if len(tools) == 0 {
		return nil, nil
	}
	if c := u.tools.Load(); c != nil && c.first == &tools[0] && c.n == len(tools) {
		return c.raw, nil
	}
	wt := make([]wireTool, 0, len(tools))
	for _, t := range tools {
		params := json.RawMessage(t.Parameters)
		if len(bytes.TrimSpace(params)) == 0 {
			params = emptySchema
		} else if !json.Valid(params) {
			return nil, hermes.Errorf(hermes.EInvalid, "tool %q: parameters are not valid JSON", t.Name)
		}
		wt = append(wt, wireTool{Type: "function", Function: wireToolSpec{
			Name: t.Name, Description: t.Description, Parameters: params,
		}})
	}
	raw, err := json.Marshal(wt)
	if err != nil {
		return nil, &hermes.Error{Code: hermes.EInternal, Message: "encoding upstream tools", Cause: err}
	}
	u.tools.Store(&encodedTools{first: &tools[0], n: len(tools), raw: raw})
	return raw, nil
}

// carriesImages reports whether any message has an image part.
func carriesImages(msgs []hermes.Message) bool {
	for i := range msgs {
		if len(msgs[i].Parts) > 0 && hasImage(msgs[i].Parts) {
			return true
		}
	}
	return false
}

func hasImage(parts []hermes.Part) bool {
	for _, p := range parts {
		if p.Type == "image_url" {
			return true
		}
	}
	return false
}

// Models lists the model ids the upstream serves (GET /models), for a
// start-up check that the configured model exists.
func (u *Upstream) Models(ctx context.Context) ([]string, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := startWatchdog(u.opts.FirstByteTimeout, hermes.Errorf(hermes.ETimeout,
		"no answer from upstream within %v", u.opts.FirstByteTimeout), cancel)
	defer wd.stop()
	url := strings.TrimSuffix(u.url, "/chat/completions") + "/models"
	var a answer
	if u.fast != nil {
		c, err := u.fast.do(rctx, appendHead(nil, "GET", url, "", u.auth, false))
		if err != nil {
			return nil, u.failure(ctx, rctx, err)
		}
		defer c.close()
		a = c.answer()
	} else {
		hreq, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, &hermes.Error{Code: hermes.EUpstream, Message: "invalid upstream URL", Cause: err}
		}
		if u.auth != "" {
			hreq.Header.Set("Authorization", u.auth)
		}
		resp, err := u.client.Do(hreq)
		if err != nil {
			return nil, u.failure(ctx, rctx, err)
		}
		defer resp.Body.Close()
		a = httpAnswer(resp)
	}
	if a.status < 200 || a.status > 299 {
		return nil, statusError(a, time.Now())
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(a.body, maxBodyBytes)).Decode(&list); err != nil {
		if rctx.Err() != nil {
			return nil, u.failure(ctx, rctx, err)
		}
		return nil, &hermes.Error{Code: hermes.EUpstream, Message: "malformed upstream model list: " + err.Error(), Cause: err}
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}
