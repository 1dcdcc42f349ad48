package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"

	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// openStream sends a streaming chat request on a raw connection and reads
// up to the first content chunk, leaving the rest unread.
func openChatStream(t *testing.T, h *hermesd, content string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", h.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"stream":true,"messages":[{"role":"user","content":` + jsonString(content) + `}]}`
	_, _ = conn.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body))
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream did not start: %v", err)
		}
		if strings.Contains(line, `"content":"tok`) {
			return conn
		}
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// servedTurn asserts the offline model answers a turn, non-stream and
// stream.
func servedTurn(t *testing.T, h *hermesd) {
	t.Helper()
	resp, body := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "heard: hi") {
		t.Fatalf("turn: %d %.300s", resp.StatusCode, body)
	}
	resp, body = h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream: %d %.300s", resp.StatusCode, body)
	}
}

// A client that stops reading a long stream holds neither the server nor
// other conversations: others are served meanwhile, and the stalled
// stream's turn ends once a write misses its deadline.
func TestClientThatStopsReading(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_STREAM_WRITE_TIMEOUT": "300ms"})
	stalled := openChatStream(t, h, "/tokens 100000") // megabytes: more than socket buffers hold
	defer stalled.Close()
	for i := 0; i < 5; i++ {
		servedTurn(t, h)
	}
	hermestest.Eventually(t, "every turn slot freed", func() bool { return h.runtime.Stats().Admitted == 0 })
}

// Clients that vanish mid-turn leave no goroutines behind.
func TestDisconnectsLeaveNoGoroutines(t *testing.T) {
	// Pooled goroutines (connections, turns) retire quickly, so what is
	// left after the wait is what the disconnects left behind.
	h := startHermes(t, map[string]string{"API_SERVER_WORKER_IDLE": "50ms"})
	servedTurn(t, h)
	base := runtime.NumGoroutine()
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		conns = append(conns, openChatStream(t, h, "/tokens 2000\n/delay 5ms"))
	}
	for _, c := range conns {
		c.Close()
	}
	hermestest.Eventually(t, "every turn slot freed", func() bool { return h.runtime.Stats().Admitted == 0 })
	settled(t, "after 20 disconnects", base)
	servedTurn(t, h)
}

// A flood above the turn cap is answered 429 with Retry-After, and /health
// keeps answering while every turn slot is taken.
func TestFloodAboveTurnCap(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_MAX_CONCURRENT_TURNS": "4"})
	const n = 100
	release := make(chan struct{})
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"/sleep 2s"}]}`)
			codes[i] = resp.StatusCode
			if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}()
	}
	hermestest.Eventually(t, "four turns admitted", func() bool { return h.runtime.Stats().Admitted == 4 })
	for i := 0; i < 20; i++ {
		if resp, body := h.do(t, "GET", "/health", ""); resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
			t.Fatalf("health during flood: %d %s", resp.StatusCode, body)
		}
	}
	close(release)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[200] < 4 || count[429] == 0 || count[200]+count[429] != n {
		t.Fatalf("status counts %v: want some 200s, the rest 429", count)
	}
	servedTurn(t, h)
}

// Logs are structured, one line per request carrying the request id that
// the response's X-Request-Id names, and never the API key. A stream's
// line is written when the stream ends and times all of it (it was
// written, timed, as the headers went out, before the first token).
func TestRequestLogLines(t *testing.T) {
	var buf hermestest.SyncBuffer
	const key = "log-test-key-123"
	m := NewMain()
	if err := m.ParseFlags([]string{"--log-format", "json"}, lookupIn(map[string]string{
		"HERMES_HOME": t.TempDir(), "HERMES_WORKSPACE": t.TempDir(), "API_SERVER_KEY": key})); err != nil {
		t.Fatal(err)
	}
	m.Logger = newLogger(m.Config.LogFormat, m.Config.LogLevel, &buf)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Listener = ln
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	h := &hermesd{Main: m}
	resp, _ := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`,
		"Authorization", "Bearer "+key, "X-Request-Id", "trace-abc-1")
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "trace-abc-1" {
		t.Fatalf("status %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	resp, _ = h.do(t, "GET", "/v1/models", "", "Authorization", "Bearer wrong")
	generated := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 401 || generated == "" {
		t.Fatalf("401 without a request id: %d", resp.StatusCode)
	}
	// Three tokens 60 ms apart: the stream lasts at least 120 ms.
	resp, body := h.do(t, "POST", "/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"/tokens 3\n/delay 60ms"}]}`,
		"Authorization", "Bearer "+key, "X-Request-Id", "trace-stream-2")
	if resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
		t.Fatalf("stream: %d %s", resp.StatusCode, body)
	}
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", l)
		}
		if rec["msg"] == "request" {
			lines = append(lines, rec)
		}
	}
	if len(lines) != 3 || lines[0]["id"] != "trace-abc-1" || lines[0]["path"] != "/v1/chat/completions" || lines[0]["status"] != float64(200) ||
		lines[1]["id"] != generated || lines[1]["status"] != float64(401) ||
		lines[2]["id"] != "trace-stream-2" || lines[2]["status"] != float64(200) {
		t.Fatalf("request lines: %v", lines)
	}
	for _, l := range lines {
		// Written through the handler (no caller PC): still a whole slog
		// line, with its time and level.
		if ts, _ := l["time"].(string); !parses(ts) || l["level"] != "INFO" || l["method"] == nil {
			t.Fatalf("request line without its time, level or method: %v", l)
		}
	}
	if d, _ := lines[2]["dur_ms"].(float64); d < 120 {
		t.Fatalf("the stream's line says %v ms: not the whole stream", lines[2]["dur_ms"])
	}
	if strings.Contains(buf.String(), key) {
		t.Fatal("the API key reached the logs")
	}
}

// parses reports whether ts is a log line's time (RFC 3339).
func parses(ts string) bool {
	_, err := time.Parse(time.RFC3339Nano, ts)
	return err == nil
}
