package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n{", path, extra, declared)
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
	waitFor(t, func() bool {
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
	waitFor(t, func() bool { code := get(dial("127.0.0.7")); return code == 503 || code == 0 })
	for _, c := range idle {
		c.Close()
	}
	waitFor(t, func() bool { return get(dial("127.0.0.7")) == 200 })
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
