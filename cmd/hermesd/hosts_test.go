package main

import (
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostRequest sends method path to h with the Host header host (the whole
// header line is left out when host is "-"), and an Origin when given.
func hostRequest(t *testing.T, h *hermesd, method, path, host, extra, body string) (*http.Response, string) {
	t.Helper()
	head := method + " " + path + " HTTP/1.1\r\n"
	if host != "-" {
		head += "Host: " + host + "\r\n"
	}
	if body != "" {
		head += "Content-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	return rawRequest(t, h, head+extra+"Connection: close\r\n\r\n"+body)
}

// TestSecurityDNSRebinding: a page on evil.example whose name rebinds to
// 127.0.0.1 is same-origin with itself, so its requests carry no foreign
// Origin and reached a keyless loopback hermesd like a local program's. Now
// a keyless server refuses a Host that is not a loopback literal,
// localhost, its bind host or a listed name: 403 before the body is read,
// with the envelope and the usual headers; /health stays open.
func TestSecurityDNSRebinding(t *testing.T) {
	const page = "http://evil.example:8642"
	h := startHermes(t, map[string]string{"API_SERVER_CORS_ORIGINS": page})
	_, port, _ := net.SplitHostPort(h.Listener.Addr().String())
	evil := "evil.example:" + port
	payload := `{"messages":[{"role":"user","content":"/tool terminal {\"command\":\"touch pwned\"}"}]}`

	forbidden := func(t *testing.T, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != 403 || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "API_SERVER_ALLOWED_HOSTS") {
			t.Fatalf("want 403 forbidden envelope, got %d %s", resp.StatusCode, body)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("refusal without the security headers: %v", resp.Header)
		}
	}

	t.Run("RebindingPageRefused", func(t *testing.T) {
		// The page's own requests: a simple POST with no Origin
		// (same-origin GETs and some POSTs carry none) and with its origin.
		for _, origin := range []string{"", "Origin: " + page + "\r\n"} {
			resp, body := hostRequest(t, h, "POST", "/v1/chat/completions", evil, origin, payload)
			forbidden(t, resp, body)
			if origin != "" && resp.Header.Get("Access-Control-Allow-Origin") != page {
				t.Fatalf("an allowed origin's refusal lacks CORS headers: %v", resp.Header)
			}
		}
		if _, err := os.Stat(h.Workspace + "/pwned"); !os.IsNotExist(err) {
			t.Fatalf("the page's command ran: %v", err)
		}
		for _, path := range []string{"/v1/models", "/v1/tools", "/v1/responses/resp_x", "/v1/files", "/metrics"} {
			resp, body := hostRequest(t, h, "GET", path, evil, "", "")
			forbidden(t, resp, body)
		}
		// A WebSocket upgrade (Responses over WebSocket) is admitted by
		// the same door: refused from the page, switched from loopback.
		upgrade := func(host string) *http.Response {
			resp, _ := rawRequest(t, h, "GET /v1/responses HTTP/1.1\r\nHost: "+host+"\r\nOrigin: "+page+"\r\nUpgrade: websocket\r\n"+
				"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
			return resp
		}
		if resp := upgrade(evil); resp.StatusCode != 403 {
			t.Fatalf("WebSocket upgrade from the page: %d", resp.StatusCode)
		}
		if resp := upgrade("127.0.0.1:" + port); resp.StatusCode != 101 {
			t.Fatalf("control: WebSocket upgrade from loopback: %d", resp.StatusCode)
		}
		// The health routes leak nothing and answer any Host.
		for _, path := range []string{"/health", "/v1/health"} {
			if resp, body := hostRequest(t, h, "GET", path, evil, "", ""); resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
		}
	})

	t.Run("RefusedBeforeBody", func(t *testing.T) {
		// Declares 10 MB and sends one byte: the answer comes at once.
		c, err := net.DialTimeout("tcp", h.Listener.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: " + evil + "\r\nContent-Type: text/plain\r\nContent-Length: 10000000\r\n\r\n{")); err != nil {
			t.Fatal(err)
		}
		resp, body, err := readAnswer(c)
		if err != nil || resp == nil {
			t.Fatalf("%v", err)
		}
		forbidden(t, resp, body)
	})

	t.Run("LoopbackNamesAllowed", func(t *testing.T) {
		for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LocalHost:" + port, "[::1]:" + port,
			"127.0.0.1", "localhost", "[::1]", "127.9.8.7:" + port, "[::ffff:127.0.0.1]:" + port} {
			if resp, body := hostRequest(t, h, "GET", "/v1/models", host, "", ""); resp.StatusCode != 200 {
				t.Errorf("Host %q: %d %s", host, resp.StatusCode, body)
			}
		}
		// Control: the payload the rebinding page sent is live from a
		// loopback Host: the Host alone stopped it.
		if resp, body := hostRequest(t, h, "POST", "/v1/chat/completions", "localhost:"+port, "", payload); resp.StatusCode != 200 {
			t.Fatalf("control: %d %s", resp.StatusCode, body)
		}
		if _, err := os.Stat(h.Workspace + "/pwned"); err != nil {
			t.Fatalf("control: the tool did not run: %v", err)
		}
	})

	t.Run("HostileHosts", func(t *testing.T) {
		for _, host := range []string{"-", "", "127.0.0.1 evil.example", "evil example", strings.Repeat("a", 10000),
			"127.0.0.1.evil.com", "localhost.evil.com", "localhost.", "evil.localhost", "0x7f.1", "0x7f000001", "2130706433",
			"127.000.0.1", "0177.0.0.1", "127.1", "[::1", "[::1]x", "[::1]:" + port + "x", "::1", "localhost:80x", "localhost:123456",
			"localhost:" + port + ":1", "[fe80::1%25lo]", "127.0.0.1:" + port + "@evil.com", "evil.com#127.0.0.1", "0.0.0.0", "[::]",
			"10.0.0.1", "xn--localhost-", "%6cocalhost"} {
			resp, body := hostRequest(t, h, "GET", "/v1/models", host, "", "")
			// fasthttp refuses a malformed Host itself (400) before the
			// guard sees it; either way nothing is served.
			if !(resp.StatusCode == 403 && strings.Contains(body, `"code":"forbidden"`) ||
				resp.StatusCode == 400 && strings.Contains(body, "Malformed HTTP request")) {
				t.Errorf("Host %.40q: %d %s", host, resp.StatusCode, body)
			}
		}
	})
}

// TestSecurityAllowedHosts: API_SERVER_ALLOWED_HOSTS adds names (case
// aside), "*" turns the check off, and with a key the check applies only
// when the setting is given; the bind host is always allowed.
func TestSecurityAllowedHosts(t *testing.T) {
	get := func(t *testing.T, h *hermesd, host, auth string) int {
		t.Helper()
		resp, _ := hostRequest(t, h, "GET", "/v1/models", host, auth, "")
		return resp.StatusCode
	}
	bearer := "Authorization: Bearer " + securityKey + "\r\n"

	t.Run("Listed", func(t *testing.T) {
		h := startHermes(t, map[string]string{"API_SERVER_ALLOWED_HOSTS": "hermes.internal,Agent.LAN"})
		for host, want := range map[string]int{"hermes.internal:8642": 200, "HERMES.internal": 200, "agent.lan:1": 200,
			"127.0.0.1": 200, "localhost": 200, "evil.example": 403, "hermes.internal.evil.example": 403, "internal": 403} {
			if got := get(t, h, host, ""); got != want {
				t.Errorf("Host %q: %d, want %d", host, got, want)
			}
		}
	})
	t.Run("Star", func(t *testing.T) {
		h := startHermes(t, map[string]string{"API_SERVER_ALLOWED_HOSTS": "*"})
		if got := get(t, h, "evil.example:8642", ""); got != 200 {
			t.Errorf("*: %d", got)
		}
	})
	t.Run("KeySet", func(t *testing.T) {
		// The key is the defence: a page never has it.
		h := startHermes(t, map[string]string{"API_SERVER_KEY": securityKey})
		if got := get(t, h, "evil.example:8642", bearer); got != 200 {
			t.Errorf("with the key: %d", got)
		}
		if got := get(t, h, "evil.example:8642", ""); got != 401 {
			t.Errorf("without the key: %d", got)
		}
	})
	t.Run("KeySetAndListed", func(t *testing.T) {
		// Given explicitly, the list applies with a key too, and the bind
		// host (a name only a keyed server may bind) is allowed.
		h := startHermes(t, map[string]string{"API_SERVER_KEY": securityKey, "API_SERVER_ALLOWED_HOSTS": "hermes.internal",
			"API_SERVER_HOST": "box.lan"})
		for host, want := range map[string]int{"hermes.internal": 200, "box.lan:8642": 200, "127.0.0.1": 200, "evil.example": 403} {
			if got := get(t, h, host, bearer); got != want {
				t.Errorf("Host %q: %d, want %d", host, got, want)
			}
		}
	})
}
