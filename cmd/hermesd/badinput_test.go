package main

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// checkEnvelope asserts a clear client error: a 4xx status, JSON content,
// the four-key OpenAI envelope, and no Go panic text.
func checkEnvelope(t *testing.T, what string, status int, header http.Header, body string) map[string]any {
	t.Helper()
	if status < 400 || status >= 500 {
		t.Fatalf("%s: status %d, want 4xx; body %.300s", what, status, body)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
	if header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%s: no nosniff header", what)
	}
	var env struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("%s: body is not JSON: %v: %.300s", what, err, body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := env.Error[k]; !ok {
			t.Fatalf("%s: envelope lacks %q: %s", what, k, body)
		}
	}
	if msg, _ := env.Error["message"].(string); msg == "" || strings.Contains(body, "goroutine") || strings.Contains(body, "panic") {
		t.Fatalf("%s: unclear error message: %s", what, body)
	}
	return env.Error
}

// stillServing asserts the server answers a normal turn.
func stillServing(t *testing.T, h *hermesd) {
	t.Helper()
	resp, body := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"still here"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "still here") {
		t.Fatalf("server stopped serving: %d %.300s", resp.StatusCode, body)
	}
}

func TestBadInputHTTP(t *testing.T) {
	h := startHermes(t, nil)
	deepArr := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	deepObj := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	var many strings.Builder
	many.WriteString(`{"messages":[`)
	for i := 0; i < 10001; i++ {
		if i > 0 {
			many.WriteByte(',')
		}
		many.WriteString(`{"role":"user","content":"m"}`)
	}
	many.WriteString(`]}`)
	var manyItems strings.Builder
	manyItems.WriteString(`{"input":[`)
	for i := 0; i < 10001; i++ {
		if i > 0 {
			manyItems.WriteByte(',')
		}
		manyItems.WriteString(`{"role":"user","content":"m"}`)
	}
	manyItems.WriteString(`]}`)

	cases := []struct {
		name, method, path, body string
		status                   int
		param                    string
	}{
		{"chat deep array nesting", "POST", "/v1/chat/completions", `{"messages":` + deepArr + `}`, 400, ""},
		{"chat deep object nesting", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"extra":` + deepObj + `}`, 0, ""},
		{"chat deep content nesting", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":` + deepArr + `}]}`, 400, ""},
		{"responses deep input nesting", "POST", "/v1/responses", `{"input":` + deepArr + `}`, 400, ""},
		{"responses deep metadata nesting", "POST", "/v1/responses", `{"input":"x","metadata":` + deepObj + `}`, 400, ""},
		{"chat 10001 messages", "POST", "/v1/chat/completions", many.String(), 400, "messages"},
		{"responses 10001 items", "POST", "/v1/responses", manyItems.String(), 400, "input"},
		{"unknown previous_response_id", "POST", "/v1/responses", `{"input":"x","previous_response_id":"resp_doesnotexist"}`, 400, "previous_response_id"},
		{"previous_response_id with path", "POST", "/v1/responses", `{"input":"x","previous_response_id":"../../etc/passwd"}`, 400, "previous_response_id"},
		{"previous_response_id with NUL", "POST", "/v1/responses", `{"input":"x","previous_response_id":"resp_a\u0000b"}`, 400, "previous_response_id"},
		{"GET id with encoded dot-dot", "GET", "/v1/responses/..%2F..%2Fetc", "", 0, ""},
		{"GET id with encoded NUL", "GET", "/v1/responses/a%00b", "", 0, ""},
		{"GET input_items with path id", "GET", "/v1/responses/..%2Fx/input_items", "", 0, ""},
		{"DELETE id with encoded dot-dot", "DELETE", "/v1/responses/..%2F..%2Fetc", "", 0, ""},
		{"GET conversation with encoded NUL", "GET", "/v1/conversations/a%00b", "", 0, ""},
		{"body not an object", "POST", "/v1/chat/completions", `[{"role":"user"}]`, 400, ""},
		{"truncated JSON", "POST", "/v1/responses", `{"input":"x"`, 400, ""},
	}
	for _, c := range cases {
		resp, body := h.do(t, c.method, c.path, c.body)
		if c.status == 0 && resp.StatusCode == 200 {
			// The deep object sits in an ignored field: a parser may skip
			// it; answering is fine as long as it answers.
			continue
		}
		e := checkEnvelope(t, c.name, resp.StatusCode, resp.Header, body)
		t.Logf("%s: %d %v", c.name, resp.StatusCode, e["message"])
		if c.status != 0 && resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %.300s", c.name, resp.StatusCode, c.status, body)
		}
		if c.param != "" && e["param"] != c.param {
			t.Errorf("%s: param %v, want %q", c.name, e["param"], c.param)
		}
	}
	stillServing(t, h)
}

// TestBadInputInvalidUTF8: a body with invalid UTF-8 is refused with a
// 400 envelope, stream or not, and the server keeps serving.
func TestBadInputInvalidUTF8(t *testing.T) {
	h := startHermes(t, nil)
	bodies := map[string]string{
		"/v1/chat/completions": "{\"messages\":[{\"role\":\"user\",\"content\":\"bad \xff\xfe\xc3 bytes\"}]",
		"/v1/responses":        "{\"input\":\"bad \xff\xfe\xc3 bytes\"",
	}
	for path, body := range bodies {
		for _, stream := range []string{"}", `,"stream":true}`} {
			resp, got := h.do(t, "POST", path, body+stream)
			if resp.StatusCode != 400 || !strings.Contains(got, "not valid UTF-8") {
				t.Fatalf("%s%s: %d %.300s", path, stream, resp.StatusCode, got)
			}
			checkEnvelope(t, path+" invalid UTF-8", resp.StatusCode, resp.Header, got)
			if !utf8.ValidString(got) {
				t.Fatalf("%s: error is not valid UTF-8: %q", path, got)
			}
		}
	}
	stillServing(t, h)
}

// rawRequest writes req on a fresh TCP connection and reads one response.
func rawRequest(t *testing.T, h *hermesd, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp, b.String()
}

func TestBadInputHeaderBytes(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_KEY": "sk-long-enough-key"})
	body := `{"messages":[{"role":"user","content":"hi"}]}`
	head := func(extra string) string {
		return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
			"Content-Length: " + itoaTest(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	}
	cases := map[string]string{
		"NUL in Authorization":           head("Authorization: Bearer sk-long\x00-enough-key\r\n"),
		"NUL in X-Hermes-Progress":       head("Authorization: Bearer sk-long-enough-key\r\nX-Hermes-Progress: in\x00line\r\n"),
		"bare CR in header value":        head("Authorization: Bearer sk-long-enough-key\r\nX-Request-Id: a\rb\r\n"),
		"bare LF splitting a header":     head("Authorization: Bearer sk-long-enough-key\r\nX-Request-Id: a\nInjected: yes\r\n"),
		"CR LF in Idempotency-Key value": head("Authorization: Bearer sk-long-enough-key\r\nIdempotency-Key: k\r\n\tfolded\r\n"),
		"NUL in header name":             head("Authorization: Bearer sk-long-enough-key\r\nX-Bad\x00Name: v\r\n"),
	}
	for name, req := range cases {
		resp, got := rawRequest(t, h, req)
		if resp.StatusCode == 200 {
			// Accepted: then the odd bytes must not reach the answer's
			// headers (no response splitting).
			for k, vs := range resp.Header {
				for _, v := range vs {
					if strings.ContainsAny(k+v, "\x00\r\n") || strings.EqualFold(k, "Injected") {
						t.Fatalf("%s: header %q: %q echoed", name, k, v)
					}
				}
			}
			continue
		}
		checkEnvelope(t, name, resp.StatusCode, resp.Header, got)
	}
	// The key with a NUL must never authenticate.
	resp, got := rawRequest(t, h, head("Authorization: Bearer sk-long\x00-enough-key\r\n"))
	if resp.StatusCode == 200 {
		t.Fatalf("a key with a NUL authenticated: %s", got)
	}
	resp, got = rawRequest(t, h, head("Authorization: Bearer sk-long-enough-key\r\n"))
	if resp.StatusCode != 200 || !strings.Contains(got, "hi") {
		t.Fatalf("server stopped serving: %d %s", resp.StatusCode, got)
	}
}

func itoaTest(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
