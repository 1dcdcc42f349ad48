package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// faultUpstream is an OpenAI-compatible model server that answers each call
// with the next fault of its queue, then with a healthy answer.
type faultUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	queue    []string
	lastTool string // the content of the last tool message of the last call
}

func newFaultUpstream(t *testing.T, ln net.Listener) *faultUpstream {
	f := &faultUpstream{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	if ln != nil {
		f.Listener.Close()
		f.Listener = ln
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func (f *faultUpstream) env() map[string]string {
	return map[string]string{"OPENAI_BASE_URL": f.URL + "/v1", "OPENAI_API_KEY": "sk-test", "HERMES_MODEL": "fake-model"}
}

// inject queues faults for the next calls.
func (f *faultUpstream) inject(faults ...string) {
	f.mu.Lock()
	f.queue = append(f.queue, faults...)
	f.mu.Unlock()
}

func (f *faultUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		// hermesd asks for the context window at start (GET /v1/models,
		// /props, POST /api/show): those must not take a queued fault.
		http.NotFound(w, r)
		return
	}
	var call hermestest.Call
	if err := json.NewDecoder(r.Body).Decode(&call); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	mode := "ok"
	if len(f.queue) > 0 {
		mode, f.queue = f.queue[0], f.queue[1:]
	}
	if n := len(call.Messages); n > 0 && call.Messages[n-1].Role == "tool" {
		f.lastTool = call.Text(n - 1)
	}
	f.mu.Unlock()

	switch mode {
	case "500", "502", "503":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(map[string]int{"500": 500, "502": 502, "503": 503}[mode])
		fmt.Fprintf(w, `{"error":{"message":"injected %s","type":"server_error"}}`, mode)
		return
	case "429":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(429)
		fmt.Fprint(w, `{"error":{"message":"slow down","type":"rate_limit_error"}}`)
		return
	case "silent": // no first byte, ever
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	line := func(s string) { fmt.Fprint(w, s); fl.Flush() }
	chunk := func(delta, finish string) string {
		return `data: {"id":"up","object":"chat.completion.chunk","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}` + "\n\n"
	}
	line(chunk(`{"role":"assistant","content":""}`, "null"))
	switch mode {
	case "malformed":
		line("data: {\"id\":\"up\",\"choices\":[{\"delta\":{\"content\":\n\n")
		return
	case "cut": // some text, then a clean end without finish or [DONE]
		line(chunk(`{"content":"partial "}`, "null"))
		return
	case "abort": // some text, then the connection drops
		line(chunk(`{"content":"partial "}`, "null"))
		panic(http.ErrAbortHandler)
	case "stall": // headers and a first chunk, then nothing
		<-r.Context().Done()
		return
	case "trickle": // a slow but live stream: a token every 100 ms
		for i := 0; i < 5; i++ {
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			line(chunk(`{"content":"drop `+strconv.Itoa(i)+` "}`, "null"))
		}
		line(chunk(`{}`, `"stop"`))
		line("data: [DONE]\n\n")
		return
	case "badtool":
		line(chunk(`{"tool_calls":[{"index":0,"id":"call_bad","type":"function","function":{"name":"todo","arguments":""}}]}`, "null"))
		line(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"todos\": [ nope"}}]}`, "null"))
		line(chunk(`{}`, `"tool_calls"`))
		line("data: [DONE]\n\n")
		return
	}
	line(chunk(`{"content":"all "}`, "null"))
	line(chunk(`{"content":"good"}`, "null"))
	line(chunk(`{}`, `"stop"`))
	line(`data: {"id":"up","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}` + "\n\n")
	line("data: [DONE]\n\n")
}

// faultClient sends requests without keeping connections, so the
// goroutine count reflects only the server.
var faultClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}

func post(t *testing.T, h *hermesd, path, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", strings.TrimSuffix(h.URL(), "/v1")+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// wantError is the clear error a client must get: status, envelope code
// and words of the message.
type wantError struct {
	status int
	code   string
	words  string
}

// checkFault asserts a JSON error answer.
func checkFault(t *testing.T, what string, resp *http.Response, body string, want wantError) {
	t.Helper()
	if resp.StatusCode != want.status {
		t.Fatalf("%s: status %d, want %d: %.400s", what, resp.StatusCode, want.status, body)
	}
	e := checkEnvelopeAny(t, what, resp.Header, body)
	if e["code"] != want.code || !strings.Contains(fmt.Sprint(e["message"]), want.words) {
		t.Fatalf("%s: error %v, want code %q and %q", what, e, want.code, want.words)
	}
	if resp.Header.Get("x-should-retry") != "false" && want.status >= 500 {
		t.Fatalf("%s: a failed run without x-should-retry: false", what)
	}
}

func checkEnvelopeAny(t *testing.T, what string, header http.Header, body string) map[string]any {
	t.Helper()
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q: %.300s", what, ct, body)
	}
	var env struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error == nil {
		t.Fatalf("%s: not an error envelope: %.300s", what, body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := env.Error[k]; !ok {
			t.Fatalf("%s: envelope lacks %q: %s", what, k, body)
		}
	}
	return env.Error
}

// healthyTurn asserts a normal turn answers, stream and non-stream.
func healthyTurn(t *testing.T, h *hermesd) {
	t.Helper()
	resp, body := post(t, h, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "all good") {
		t.Fatalf("next turn: %d %.300s", resp.StatusCode, body)
	}
	resp, body = post(t, h, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Contains(body, `"error"`) {
		t.Fatalf("next stream: %d %.300s", resp.StatusCode, body)
	}
}

// settled waits (bounded) for the goroutine count to come back near base.
func settled(t *testing.T, what string, base int) {
	t.Helper()
	const slack = 8
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > base+slack && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling: nothing signals that a goroutine has exited
		n = runtime.NumGoroutine()
	}
	t.Logf("%s: %d goroutines (%d before)", what, n, base)
	if n > base+slack {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s: %d goroutines, %d before: leak?\n%s", what, n, base, buf)
	}
}

var (
	upstreamDown = wantError{502, "upstream_error", "upstream"}
	rateLimited  = wantError{429, "rate_limit_exceeded", "rate limited"}
)

// checkTimedOut asserts how /v1/responses reports a timed-out run: it
// failed (WIRE.md: a failed run is status "failed" with error). Non-stream
// gets the 504 timeout envelope; a stream that failed before its first
// event gets the same, one that started ends with one response.failed.
func checkTimedOut(t *testing.T, what string, r *http.Response, body string) {
	t.Helper()
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		checkFault(t, what, r, body, wantError{504, "timeout", ""})
		return
	}
	if r.StatusCode != 200 || strings.Count(body, "event: response.failed") != 1 ||
		strings.Contains(body, "event: response.completed") || !strings.Contains(body, `"code":"timeout"`) {
		t.Fatalf("%s: stream does not end failed with a timeout: %.600s", what, body)
	}
}

func TestFaultsUpstream(t *testing.T) {
	up := newFaultUpstream(t, nil)
	env := up.env()
	env["HERMES_UPSTREAM_FIRST_BYTE_TIMEOUT"] = "300ms"
	env["HERMES_TURN_TIMEOUT"] = "500ms"
	h := startHermes(t, env)
	healthyTurn(t, h)
	base := runtime.NumGoroutine()

	chat := `{"messages":[{"role":"user","content":"go"}]}`
	chatStream := `{"messages":[{"role":"user","content":"go"}],"stream":true}`
	resp := `{"input":"go"}`
	respStream := `{"input":"go","stream":true}`

	// Faults that fail before any text: every endpoint and mode gets a
	// real status and the JSON envelope.
	for _, c := range []struct {
		fault string
		want  wantError
	}{
		{"500", wantError{502, "upstream_error", "HTTP 500"}},
		{"502", wantError{502, "upstream_error", "HTTP 502"}},
		{"503", wantError{502, "upstream_error", "HTTP 503"}},
		{"429", rateLimited},
		{"malformed", wantError{502, "upstream_error", "malformed upstream chunk"}},
		{"silent", wantError{504, "timeout", "first byte"}},
	} {
		for _, req := range []struct{ path, body string }{
			{"/v1/chat/completions", chat}, {"/v1/chat/completions", chatStream},
			{"/v1/responses", resp}, {"/v1/responses", respStream},
		} {
			what := c.fault + " " + req.path + " " + req.body
			up.inject(c.fault)
			r, body := post(t, h, req.path, req.body)
			if c.fault == "silent" && req.path == "/v1/responses" {
				checkTimedOut(t, what, r, body)
				continue
			}
			checkFault(t, what, r, body, c.want)
			if c.fault == "429" && r.Header.Get("Retry-After") != "7" {
				t.Fatalf("%s: Retry-After %q, want 7", what, r.Header.Get("Retry-After"))
			}
		}
		healthyTurn(t, h)
		settled(t, c.fault, base)
	}

	// Faults after text has streamed: non-stream gets 502 JSON; a chat
	// stream gets its text, then one error frame, and no [DONE]; a
	// responses stream ends with response.failed.
	for _, fault := range []string{"cut", "abort"} {
		up.inject(fault)
		r, body := post(t, h, "/v1/chat/completions", chat)
		checkFault(t, fault+" chat", r, body, upstreamDown)

		up.inject(fault)
		r, body = post(t, h, "/v1/chat/completions", chatStream)
		if r.StatusCode != 200 || !strings.Contains(body, `"content":"partial "`) {
			t.Fatalf("%s chat stream: %d %.400s", fault, r.StatusCode, body)
		}
		frames := strings.Split(strings.TrimSpace(body), "\n\n")
		last := frames[len(frames)-1]
		if !strings.HasPrefix(last, `data: {"error":{`) || strings.Contains(body, "[DONE]") {
			t.Fatalf("%s chat stream: ends with %q", fault, last)
		}
		checkEnvelopeAny(t, fault+" error frame", http.Header{"Content-Type": {"application/json"}}, strings.TrimPrefix(last, "data: "))

		up.inject(fault)
		r, body = post(t, h, "/v1/responses", respStream)
		if r.StatusCode != 200 || strings.Count(body, "event: response.failed") != 1 || strings.Contains(body, "response.completed") {
			t.Fatalf("%s responses stream: %d %.600s", fault, r.StatusCode, body)
		}
		// The end: an error event, response.failed, then [DONE].
		frames = strings.Split(strings.TrimSpace(body), "\n\n")
		if n := len(frames); n < 3 || !strings.HasPrefix(frames[n-3], "event: error\n") ||
			!strings.HasPrefix(frames[n-2], "event: response.failed\n") || frames[n-1] != "data: [DONE]" {
			t.Fatalf("%s responses stream ends with %q", fault, frames[max(0, len(frames)-3):])
		}
		healthyTurn(t, h)
		settled(t, fault, base)
	}

	// An upstream that sends a first chunk and then stalls: the turn
	// timeout ends the turn with 504 (the stream holds its headers for
	// the first event, so it gets the status too).
	for _, body := range []string{chat, chatStream} {
		up.inject("stall")
		start := time.Now()
		r, got := post(t, h, "/v1/chat/completions", body)
		checkFault(t, "stall "+body, r, got, wantError{504, "timeout", "HERMES_TURN_TIMEOUT"})
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("turn timeout took %v", d)
		}
	}
	for _, body := range []string{resp, respStream} {
		up.inject("stall")
		r, got := post(t, h, "/v1/responses", body)
		checkTimedOut(t, "stall "+body, r, got)
	}
	healthyTurn(t, h)
	settled(t, "stall", base)

	// Invalid tool-call JSON from the model: the model sees an error
	// result and the turn goes on to answer.
	for _, body := range []string{chat, chatStream} {
		up.inject("badtool")
		r, got := post(t, h, "/v1/chat/completions", body)
		if r.StatusCode != 200 || !strings.Contains(got, "all") || !strings.Contains(got, "good") {
			t.Fatalf("badtool %s: %d %.400s", body, r.StatusCode, got)
		}
		up.mu.Lock()
		seen := up.lastTool
		up.lastTool = ""
		up.mu.Unlock()
		if !strings.Contains(seen, "not valid JSON") {
			t.Fatalf("badtool: the model saw %q, want an error result", seen)
		}
	}
	healthyTurn(t, h)
	settled(t, "badtool", base)
}

// TestFaultsUpstreamRefused: with OPENAI_BASE_URL on a closed port every
// turn fails with 502 upstream_error; once the upstream comes up on that
// port, the next turn works.
func TestFaultsUpstreamRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := startHermes(t, map[string]string{"OPENAI_BASE_URL": "http://" + addr + "/v1", "OPENAI_API_KEY": "sk", "HERMES_MODEL": "m"})
	base := runtime.NumGoroutine()
	for _, req := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"go"}]}`},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"go"}],"stream":true}`},
		{"/v1/responses", `{"input":"go"}`},
		{"/v1/responses", `{"input":"go","stream":true}`},
	} {
		r, body := post(t, h, req.path, req.body)
		checkFault(t, "refused "+req.path, r, body, wantError{502, "upstream_error", "unreachable"})
	}
	settled(t, "refused", base)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken again before the upstream could use it: %v", addr, err)
	}
	newFaultUpstream(t, ln)
	healthyTurn(t, h)
}

// A slow trickle is not a fault: with a first-byte timeout shorter than the
// whole answer, every token still arrives, each in its own chunk, as the
// upstream sends it.
func TestFaultsSlowTrickle(t *testing.T) {
	up := newFaultUpstream(t, nil)
	env := up.env()
	env["HERMES_UPSTREAM_FIRST_BYTE_TIMEOUT"] = "300ms"
	h := startHermes(t, env)
	up.inject("trickle")
	r, body := post(t, h, "/v1/chat/completions", `{"messages":[{"role":"user","content":"go"}],"stream":true}`)
	if r.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Contains(body, `"error"`) {
		t.Fatalf("trickle stream: %d %.400s", r.StatusCode, body)
	}
	for i := 0; i < 5; i++ {
		if !strings.Contains(body, `"content":"drop `+strconv.Itoa(i)+` "`) {
			t.Fatalf("token %d missing: %.600s", i, body)
		}
	}
	up.inject("trickle")
	r, body = post(t, h, "/v1/responses", `{"input":"go"}`)
	if r.StatusCode != 200 || !strings.Contains(body, `"status":"completed"`) || !strings.Contains(body, "drop 0 drop 1 drop 2 drop 3 drop 4") {
		t.Fatalf("trickle response: %d %.400s", r.StatusCode, body)
	}
}
