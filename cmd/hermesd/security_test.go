package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"golang.org/x/sys/unix"
)

// Attacks from outside on the HTTP front end; docs/SECURITY.md lists them.

const securityKey = "sk-security-test-key"

// attackConn sends a request head declaring a body of declared bytes, then
// one body byte, and reads nothing yet.
func attackConn(t *testing.T, addr, path string, declared int, extra string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n{", path, extra, declared)
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	return c
}

// readAnswer reads one response from c; body is read whole.
func readAnswer(c net.Conn) (*http.Response, string, error) {
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, "", err
	}
	// Whatever is left must be the end of the connection.
	if _, err := br.ReadByte(); err != io.EOF {
		return resp, string(b), fmt.Errorf("connection left open after the answer (%v)", err)
	}
	return resp, string(b), nil
}

// heapWatch samples the heap in use until stopped and reports its peak.
type heapWatch struct {
	base, peak atomic.Uint64
	stop       chan struct{}
	done       chan struct{}
}

func watchHeap() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.base.Store(ms.HeapInuse)
	w.peak.Store(ms.HeapInuse)
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > w.peak.Load() {
				w.peak.Store(ms.HeapInuse)
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// grown stops the watch and returns the peak growth in MB.
func (w *heapWatch) grown() float64 {
	close(w.stop)
	<-w.done
	return float64(w.peak.Load()-w.base.Load()) / (1 << 20)
}

// timedHealth asks /health on a fresh connection and returns how long the
// answer took.
func timedHealth(t *testing.T, base string) time.Duration {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := cl.Get(base + "/health")
	if err != nil {
		t.Fatalf("/health under attack: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/health under attack: %d", resp.StatusCode)
	}
	return time.Since(start)
}

func base(h *hermesd) string { return strings.TrimSuffix(h.URL(), "/v1") }

// TestSecurityBodyBeforeAuth: 300 connections each declare a 10 MB body
// without a key and send one byte. Each is answered 401 and closed at once,
// the heap does not grow with what they declared (it grew by 16 MB each),
// and /health answers meanwhile.
func TestSecurityBodyBeforeAuth(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_KEY": securityKey})
	addr := h.Listener.Addr().String()
	heap := watchHeap()
	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = attackConn(t, addr, "/v1/chat/completions", 10_000_000, "")
	}
	took := timedHealth(t, base(h))
	for i, c := range conns {
		resp, body, err := readAnswer(c)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if resp.StatusCode != 401 || !strings.Contains(body, `"code":"invalid_api_key"`) {
			t.Fatalf("connection %d: %d %s", i, resp.StatusCode, body)
		}
	}
	grown := heap.grown()
	t.Logf("%d connections × 10 MB declared: heap peak +%.1f MB, /health in %v", n, grown, took)
	if grown > 64 {
		t.Fatalf("heap grew by %.0f MB under the attack; want it bounded (< 64 MB)", grown)
	}

	// With Expect: 100-continue the refusal comes before the body is sent.
	c := attackConn(t, addr, "/v1/responses", 10_000_000, "Expect: 100-continue\r\n")
	resp, body, err := readAnswer(c)
	if err != nil || resp.StatusCode != 401 || !strings.Contains(body, `"invalid_api_key"`) {
		t.Fatalf("Expect: 100-continue without a key: %v %v %s", resp, err, body)
	}
	// With the key, a body for no route is answered 404 or 405 unread.
	for path, want := range map[string]int{"/v1/nope": 404, "/v1/models": 405} {
		c := attackConn(t, addr, path, 10_000_000, "Authorization: Bearer "+securityKey+"\r\n")
		resp, body, err := readAnswer(c)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("POST %s with a 10 MB body declared: %v %v %s, want %d", path, resp, err, body, want)
		}
	}
	// A client with the key is still served.
	resp, body = h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"still here"}]}`, "Authorization", "Bearer "+securityKey)
	if resp.StatusCode != 200 || !strings.Contains(body, "still here") {
		t.Fatalf("after the attack: %d %s", resp.StatusCode, body)
	}
}

// TestSecurityBodyMemoryBudget: on an open server (no key, as on loopback
// by default) connections declaring big bodies take the body budget; those
// beyond it are answered 503 with Retry-After before their body is read,
// the heap stays bounded, /health answers, and the budget comes back once
// they go.
func TestSecurityBodyMemoryBudget(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_MAX_BODY_BYTES": "1048576", "API_SERVER_MAX_BODY_MEMORY": "4194304"})
	addr := h.Listener.Addr().String()
	heap := watchHeap()
	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = attackConn(t, addr, "/v1/chat/completions", 1<<20, "")
	}
	took := timedHealth(t, base(h))
	refused := 0
	var held []net.Conn
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		resp, body, err := readAnswer(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			held = append(held, c) // admitted: the server waits for its body
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "API_SERVER_MAX_BODY_MEMORY") {
			t.Fatalf("over the budget: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		refused++
	}
	grown := heap.grown()
	t.Logf("%d connections × 1 MiB declared, budget 4 MiB: %d held, %d refused 503; heap peak +%.1f MB; /health in %v",
		n, len(held), refused, grown, took)
	if len(held) != 4 || refused != n-4 {
		t.Fatalf("held %d, refused %d: want the budget to admit exactly 4 bodies of 1 MB", len(held), refused)
	}
	if grown > 32 {
		t.Fatalf("heap grew by %.0f MB; want it bounded", grown)
	}
	resp, _ := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 503 {
		t.Fatalf("a body while the budget is spent: %d, want 503", resp.StatusCode)
	}
	for _, c := range held {
		c.Close()
	}
	hermestest.Eventually(t, "a chat answered again", func() bool {
		resp, _ := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
		return resp.StatusCode == 200
	})
	// The whole budget is back: four bodies of the largest size are read.
	big := `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 1_000_000) + `"}]}`
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(base(h)+"/v1/chat/completions", "application/json", strings.NewReader(big))
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for _, c := range codes {
		if c == 503 || c == 0 {
			t.Fatalf("big bodies after the attack: %v; the budget was not released", codes)
		}
	}
}

// TestSecurityConnectionCaps: beyond API_SERVER_MAX_CONNECTIONS_PER_IP a
// client address gets 429 and is closed, other addresses are served; beyond
// API_SERVER_MAX_CONNECTIONS every new connection gets 503.
func TestSecurityConnectionCaps(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_MAX_CONNECTIONS_PER_IP": "4", "API_SERVER_MAX_CONNECTIONS": "8"})
	addr := h.Listener.Addr().String()
	dial := func(src string) net.Conn {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	get := func(c net.Conn) int {
		if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return 0
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var idle []net.Conn
	for range 4 {
		idle = append(idle, dial("127.0.0.1"))
	}
	// The fifth from one address is refused; the server may close it before
	// the request is written, so a failed exchange counts as refused too.
	if code := get(dial("127.0.0.1")); code != 429 && code != 0 {
		t.Fatalf("fifth connection from 127.0.0.1: %d, want 429", code)
	}
	if code := get(dial("127.0.0.2")); code != 200 {
		t.Fatalf("another address: %d, want 200", code)
	}
	for _, src := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"} {
		idle = append(idle, dial(src))
	}
	hermestest.Eventually(t, "the per-address cap refusing 127.0.0.7", func() bool { code := get(dial("127.0.0.7")); return code == 503 || code == 0 })
	for _, c := range idle {
		c.Close()
	}
	hermestest.Eventually(t, "127.0.0.7 served again", func() bool { return get(dial("127.0.0.7")) == 200 })
}

// TestSecurityAuthReadsRouterPath: auth reads the raw path the router
// matches, so a path that decodes to /health is no way around the key; with
// the key, encoded slashes, encoded dots and dot segments are 400.
func TestSecurityAuthReadsRouterPath(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_KEY": securityKey})
	auth := "Authorization: Bearer " + securityKey + "\r\n"
	resp, body := h.do(t, "POST", "/v1/responses", `{"input":"keep me","store":true}`, "Authorization", "Bearer "+securityKey)
	var created struct{ ID string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &created) != nil || created.ID == "" {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	req := func(method, path, headers string) (*http.Response, string) {
		return rawRequest(t, h, method+" "+path+" HTTP/1.1\r\nHost: x\r\n"+headers+"Connection: close\r\n\r\n")
	}
	paths := []struct{ method, path string }{
		{"GET", "/v1/responses/..%2F..%2Fhealth"},
		{"GET", "/v1/responses/..%2f..%2fhealth"},
		{"GET", "/v1/responses/%2e%2e%2F%2e%2e%2Fhealth"},
		{"GET", "/v1/models/..%2F..%2Fhealth"},
		{"GET", "/v1/responses/..%5C..%5Chealth"},
		{"DELETE", "/v1/responses/" + created.ID + "%2F..%2F..%2F..%2Fhealth"},
		{"GET", "/v1/responses/" + created.ID + "/input_items%2F..%2F..%2F..%2F..%2Fv1%2Fhealth"},
		{"GET", "/v1/conversations/..%2F..%2Fhealth"},
		{"GET", "/v1/responses/./" + created.ID},
		{"GET", "/v1/responses/x/../../../health"},
	}
	for _, p := range paths {
		resp, body := req(p.method, p.path, "")
		if resp.StatusCode != 401 {
			t.Errorf("%s %s without key: %d %s, want 401", p.method, p.path, resp.StatusCode, body)
		}
		resp, body = req(p.method, p.path, auth)
		if resp.StatusCode != 400 || !strings.Contains(body, "dot segments") {
			t.Errorf("%s %s with key: %d %s, want 400", p.method, p.path, resp.StatusCode, body)
		}
	}
	for _, p := range []string{"/health", "/v1/health", "/health?probe=1"} {
		if resp, body := req("GET", p, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s without key: %d %s", p, resp.StatusCode, body)
		}
	}
	if resp, body := req("GET", "/v1/responses/"+created.ID, auth); resp.StatusCode != 200 {
		t.Fatalf("the response after the attempts: %d %s", resp.StatusCode, body)
	}
	if resp, body := req("GET", "/v1/models/hermes-agent", auth); resp.StatusCode != 200 {
		t.Fatalf("a plain id: %d %s", resp.StatusCode, body)
	}
}

// TestSecurityErrorHeadersEveryLayer: answers written outside the handlers
// (refusals before the body, fasthttp's transport errors) carry the same
// security, request-id and CORS headers as any other, so a page on an
// allowed origin can read them; Access-Control-Expose-Headers names the
// headers scripts need.
func TestSecurityErrorHeadersEveryLayer(t *testing.T) {
	const origin = "http://ok.example"
	h := startHermes(t, map[string]string{"API_SERVER_KEY": securityKey, "API_SERVER_CORS_ORIGINS": origin,
		"API_SERVER_MAX_BODY_BYTES": "4096", "API_SERVER_MAX_BODY_MEMORY": "8192"})
	auth := "Authorization: Bearer " + securityKey + "\r\n"
	o := "Origin: " + origin + "\r\n"
	post := func(headers, body string) string {
		return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + headers + "Connection: close\r\n\r\n" + body
	}
	cases := []struct {
		name   string
		req    string
		status int
		cors   bool
	}{
		{"413 declared body over the limit", post(o+auth+"Content-Length: 5000\r\n", "{"), 413, true},
		{"413 chunked body over the limit", post(o+auth+"Transfer-Encoding: chunked\r\n", "1388\r\n"+strings.Repeat("a", 5000)+"\r\n0\r\n\r\n"), 413, true},
		{"400 broken chunked body", post(o+auth+"Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"), 400, true},
		{"401 without key", post(o+"Content-Length: 2\r\n", "{}"), 401, true},
		{"401 Expect 100-continue without key", post(o+"Expect: 100-continue\r\nContent-Length: 2\r\n", ""), 401, true},
		// fasthttp could not parse these headers, so the Origin is unknown
		// and no CORS header can be sent; a browser never sends the first
		// two, and the third is documented in docs/SECURITY.md.
		{"400 malformed header line", "GET /v1/models HTTP/1.1\r\nHost: x\r\n" + o + "Bad header line\r\n\r\n", 400, false},
		{"400 malformed request line", "GET\r\n" + o + "\r\n", 400, false},
		{"431 headers too large", "GET /v1/models HTTP/1.1\r\nHost: x\r\n" + o + "X-Big: " + strings.Repeat("b", 20000) + "\r\n\r\n", 431, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawRequest(t, h, c.req)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			checkEnvelope(t, c.name, resp.StatusCode, resp.Header, body)
			checkSecurityHeaders(t, resp)
			got := resp.Header.Get("Access-Control-Allow-Origin")
			t.Logf("%d %s; Access-Control-Allow-Origin %q", resp.StatusCode, body, got)
			if c.cors {
				checkCORS(t, resp, origin)
			}
		})
	}
	// A body that ends before its declared length: the client half-closes.
	c, err := net.Dial("tcp", h.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write([]byte(post(o+auth+"Content-Length: 100\r\n", `{"a":1}`)))
	_ = c.(*net.TCPConn).CloseWrite()
	resp, body, err := readAnswer(c)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("short body: %v %v %s", resp, err, body)
	}
	checkEnvelope(t, "short body", resp.StatusCode, resp.Header, body)
	checkCORS(t, resp, origin)

	// A request refused before its body whose body byte never comes is
	// answered 408 when the short deadline for refused requests (5 s)
	// passes. fasthttp has reset the request by then, so the Origin is
	// gone: no CORS headers (a browser sends its body at once).
	c2, err := net.Dial("tcp", h.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(20 * time.Second))
	_, _ = c2.Write([]byte(post(o+"Content-Length: 100\r\n", "")))
	start := time.Now()
	resp, body, err = readAnswer(c2)
	if err != nil || resp.StatusCode != 408 {
		t.Fatalf("silent refused body: %v %v %s", resp, err, body)
	}
	t.Logf("silent refused body answered 408 after %v", time.Since(start).Round(time.Millisecond))
	checkEnvelope(t, "408", resp.StatusCode, resp.Header, body)
	checkSecurityHeaders(t, resp)

	// 503 over the body budget: two bodies of the limit fill it, a third
	// is refused with Retry-After that a page may read.
	a := attackConn(t, h.Listener.Addr().String(), "/v1/chat/completions", 4096, auth)
	b := attackConn(t, h.Listener.Addr().String(), "/v1/chat/completions", 4096, auth)
	defer a.Close()
	defer b.Close()
	hermestest.Eventually(t, "a 503 at the connection cap", func() bool {
		resp, _ := rawRequest(t, h, post(o+auth+"Content-Length: 2\r\n", "{}"))
		return resp.StatusCode == 503
	})
	resp, body = rawRequest(t, h, post(o+auth+"Content-Length: 2\r\n", "{}"))
	checkEnvelope(t, "503", 400, resp.Header, body) // the envelope; the status is checked below
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the budget: %d %v", resp.StatusCode, resp.Header)
	}
	checkSecurityHeaders(t, resp)
	checkCORS(t, resp, origin)
}

func checkCORS(t *testing.T, resp *http.Response, origin string) {
	t.Helper()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Fatalf("Access-Control-Allow-Origin %q, want %q; headers %v", got, origin, resp.Header)
	}
	expose := resp.Header.Get("Access-Control-Expose-Headers")
	for _, name := range []string{"X-Request-Id", "Retry-After", "Idempotent-Replayed", "X-Hermes-Model"} {
		if !strings.Contains(expose, name) {
			t.Fatalf("Access-Control-Expose-Headers %q lacks %s", expose, name)
		}
	}
}

// TestSecurityListener runs the real binary: under a low descriptor limit
// the connection cap follows the limit and a flood of idle connections
// leaves the listener alive; if serving stops anyway, hermesd exits 1.
func TestSecurityListener(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a hermesd process")
	}
	bin := hermestest.Build(t)
	t.Run("IdleFloodUnderLowNofile", func(t *testing.T) { listenerLowNofile(t, bin) })
	t.Run("ServeStoppedExitsNonZero", func(t *testing.T) { listenerStopped(t, bin) })
}

// listenerLowNofile: with RLIMIT_NOFILE at 128, 1,100 idle connections
// (they made Serve return "too many open files" for good) are met by the
// connection cap; afterwards /health answers and the process is alive.
func listenerLowNofile(t *testing.T, bin string) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	p := hermestest.StartProcess(t, []string{prlimit, "--nofile=128:128", bin}, t.TempDir(), t.TempDir())
	// The log is flushed every 100 ms.
	hermestest.Eventually(t, "the connection cap warning", func() bool { return strings.Contains(p.Stderr.String(), "connection cap lowered") })
	if log := p.Stderr.String(); !strings.Contains(log, "nofile=128") || !strings.Contains(log, "max_connections=32") {
		t.Fatalf("the cap and the limit are not logged:\n%s", log)
	}
	addr := strings.TrimPrefix(p.Base, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 1100; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	hermestest.Eventually(t, "health answered again", func() bool {
		resp, err := hermestest.HTTP.Get(p.Base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	select {
	case <-p.Exited:
		t.Fatalf("hermesd exited: %v\n%s", p.Err, p.Stderr)
	default:
	}
	if strings.Contains(p.Stderr.String(), "stopped serving") {
		t.Fatalf("serving stopped:\n%s", p.Stderr)
	}
}

// listenerStopped shuts the listening socket down from outside (a copy of
// its descriptor through pidfd_getfd), so accept fails for good: hermesd
// logs at error and exits 1 instead of living on deaf.
func listenerStopped(t *testing.T, bin string) {
	p := hermestest.StartProcess(t, []string{bin}, t.TempDir(), t.TempDir())
	pid := p.Cmd.Process.Pid
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(p.Base, "http://"))
	port, _ := strconv.Atoi(portStr)
	fd := listenerFD(t, pid, port)
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		t.Skipf("pidfd_getfd (needs ptrace rights over the child): %v", err)
	}
	defer unix.Close(dup)
	if err := unix.Shutdown(dup, unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	if code := p.WaitExit(t, 20*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, p.Stderr)
	}
	if !strings.Contains(p.Stderr.String(), "level=ERROR") || !strings.Contains(p.Stderr.String(), "HTTP server stopped serving") {
		t.Fatalf("not logged at error:\n%s", p.Stderr)
	}
}

// listenerFD finds the descriptor of pid's socket listening on port.
func listenerFD(t *testing.T, pid, port int) int {
	t.Helper()
	var inode string
	for _, table := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 9 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) && f[3] == "0A" { // 0A: LISTEN
				inode = f[9]
			}
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil || inode == "" {
		t.Fatalf("no listening socket on port %d in /proc/%d: %v", port, pid, err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l == "socket:["+inode+"]" {
			fd, _ := strconv.Atoi(e.Name())
			return fd
		}
	}
	t.Fatalf("socket inode %s not among /proc/%d/fd", inode, pid)
	return -1
}

// TestSecurityForeignPageOnOpenServer: with no key (the loopback default) a
// web page's POST, even a "simple" one that needs no preflight, carries the
// page's Origin and is refused 403 before its body is read: no tool runs.
func TestSecurityForeignPageOnOpenServer(t *testing.T) {
	h := startHermes(t, nil)
	payload := `{"messages":[{"role":"user","content":"/tool terminal {\"command\":\"touch pwned\"}"}]}`
	req := func(origin string) (*http.Response, string) {
		return rawRequest(t, h, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"+origin+
			"Content-Type: text/plain\r\nContent-Length: "+strconv.Itoa(len(payload))+"\r\nConnection: close\r\n\r\n"+payload)
	}
	resp, body := req("Origin: http://evil.example\r\n")
	if resp.StatusCode != 403 || !strings.Contains(body, "API_SERVER_CORS_ORIGINS") {
		t.Fatalf("a foreign page's POST: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a foreign origin was allowed to read the answer: %v", resp.Header)
	}
	if _, err := os.Stat(h.Workspace + "/pwned"); !os.IsNotExist(err) {
		t.Fatalf("the page's command ran: %v", err)
	}
	// The same request without an Origin (a local program) runs the tool:
	// the payload is live, the Origin alone stopped it.
	if resp, body := req(""); resp.StatusCode != 200 {
		t.Fatalf("without Origin: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(h.Workspace + "/pwned"); err != nil {
		t.Fatalf("control: the tool did not run: %v", err)
	}
}

// TestSecurityBrowserReadsErrors: a page on an allowed origin, in a real
// headless Chromium, reads the errors written before a handler runs: an
// over-limit body got "TypeError: Failed to fetch" instead of a 413.
func TestSecurityBrowserReadsErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if browser, err = exec.LookPath("chromium-browser"); err != nil {
			t.Skip("no chromium on PATH (apt-get install -y chromium): the HTTP-level test TestSecurityErrorHeadersEveryLayer covers the headers")
		}
	}
	page := httptest.NewServer(nil) // the handler is set once hermesd's address is known
	defer page.Close()
	h := startHermes(t, map[string]string{"API_SERVER_KEY": securityKey, "API_SERVER_CORS_ORIGINS": page.URL,
		"API_SERVER_MAX_BODY_BYTES": "4096", "API_SERVER_MAX_BODY_MEMORY": "8192"})
	page.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><body>running</body><script>
const url = %q, key = %q;
const post = (headers, body) => ({method: "POST", headers: Object.assign({"Content-Type": "application/json"}, headers), body});
const cases = [
  ["too-large", post({Authorization: "Bearer " + key}, "x".repeat(5000))],
  ["no-key", post({}, "{}")],
  ["budget", post({Authorization: "Bearer " + key}, "{}")],
];
(async () => {
  const out = {};
  for (const [name, init] of cases) {
    try {
      const r = await fetch(url, init);
      out[name] = {status: r.status, rid: r.headers.get("X-Request-Id"), retry: r.headers.get("Retry-After"), body: await r.text()};
    } catch (e) { out[name] = {error: String(e)}; }
  }
  document.body.textContent = "RESULT" + JSON.stringify(out) + "END";
})();
</script>`, h.URL()+"/chat/completions", securityKey)
	})
	// Two bodies of the limit fill the budget, so the page's third request
	// meets the 503.
	for range 2 {
		attackConn(t, h.Listener.Addr().String(), "/v1/chat/completions", 4096, "Authorization: Bearer "+securityKey+"\r\n")
	}
	hermestest.Eventually(t, "a 503 while the attack holds the slots", func() bool {
		resp, _ := h.do(t, "POST", "/v1/chat/completions", "{}", "Authorization", "Bearer "+securityKey)
		return resp.StatusCode == 503
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=20000", "--dump-dom", page.URL).Output()
	dom := string(out)
	i, j := strings.Index(dom, "RESULT"), strings.LastIndex(dom, "END")
	if err != nil || i < 0 || j < i {
		t.Fatalf("chromium: %v\n%s", err, dom)
	}
	var got map[string]struct {
		Status     int
		Rid, Retry string
		Body       string
		Error      string
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(dom[i+len("RESULT"):j])), &got); err != nil {
		t.Fatalf("page result: %v\n%s", err, dom)
	}
	t.Logf("page saw: %+v", got)
	for name, want := range map[string]int{"too-large": 413, "no-key": 401, "budget": 503} {
		r := got[name]
		if r.Error != "" || r.Status != want || r.Rid == "" || !strings.Contains(r.Body, `"error"`) {
			t.Errorf("%s: the page saw %+v, want a readable %d with its X-Request-Id", name, r, want)
		}
	}
	if got["budget"].Retry == "" {
		t.Errorf("the page cannot read Retry-After on the 503: %+v", got["budget"])
	}
}
