package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestMetadataLimits: metadata beyond OpenAI's limits (16 pairs, 64-character
// keys, 512-character values) is 400 with param "metadata" on responses and
// conversations; at the limits it is accepted.
func TestMetadataLimits(t *testing.T) {
	h := startHermes(t, nil)
	md := func(n, keyLen, valLen int) string {
		m := map[string]string{}
		for i := range n {
			k := fmt.Sprintf("%02d", i) + strings.Repeat("k", keyLen-2)
			m[k] = strings.Repeat("é", valLen) // characters, not bytes
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name   string
		md     string
		status int
	}{
		{"at the limits", md(16, 64, 512), 200},
		{"17 pairs", md(17, 8, 1), 400},
		{"65-character key", md(1, 65, 1), 400},
		{"513-character value", md(1, 8, 513), 400},
		{"100,000 pairs", md(100_000, 8, 1), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, req := range []struct{ method, path, body string }{
				{"POST", "/v1/responses", `{"input":"hi","metadata":` + tt.md + `}`},
				{"POST", "/v1/conversations", `{"metadata":` + tt.md + `}`},
			} {
				resp, body := h.do(t, req.method, req.path, req.body)
				if resp.StatusCode != tt.status {
					t.Fatalf("%s %s: %d %.300s, want %d", req.method, req.path, resp.StatusCode, body, tt.status)
				}
				if tt.status == 400 && !strings.Contains(body, `"param":"metadata"`) {
					t.Errorf("%s: %s does not name metadata", req.path, body)
				}
			}
		})
	}
	// Updating a conversation is held to the same limits.
	_, body := h.do(t, "POST", "/v1/conversations", `{}`)
	var c struct{ ID string }
	json.Unmarshal([]byte(body), &c)
	if resp, body := h.do(t, "POST", "/v1/conversations/"+c.ID, `{"metadata":`+md(17, 8, 1)+`}`); resp.StatusCode != 400 {
		t.Errorf("update with 17 pairs: %d %s", resp.StatusCode, body)
	}
}

// TestStoreBoundsOverHTTP: the conversation count, pending-item bytes and
// idempotency-entry settings reach the store.
func TestStoreBoundsOverHTTP(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_MAX_CONVERSATIONS": "2", "API_SERVER_MAX_PENDING_BYTES": "2048",
		"API_SERVER_IDEMPOTENCY_MAX_ENTRIES": "2"})
	var ids []string
	for range 3 {
		resp, body := h.do(t, "POST", "/v1/conversations", `{"items":[{"role":"user","content":"hello"}]}`)
		var c struct{ ID string }
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &c) != nil {
			t.Fatalf("create: %d %s", resp.StatusCode, body)
		}
		ids = append(ids, c.ID)
	}
	if resp, _ := h.do(t, "GET", "/v1/conversations/"+ids[0], ""); resp.StatusCode != 404 {
		t.Errorf("the least recently used conversation answered %d, want 404", resp.StatusCode)
	}
	if resp, _ := h.do(t, "GET", "/v1/conversations/"+ids[2], ""); resp.StatusCode != 200 {
		t.Errorf("the newest conversation answered %d", resp.StatusCode)
	}
	big := `{"items":[{"role":"user","content":"` + strings.Repeat("x", 3000) + `"}]}`
	resp, body := h.do(t, "POST", "/v1/conversations/"+ids[2]+"/items", big)
	if resp.StatusCode != 400 || !strings.Contains(body, "API_SERVER_MAX_PENDING_BYTES") {
		t.Errorf("3 KB of items over a 2 KB bound: %d %s", resp.StatusCode, body)
	}

	// Three keys through a bound of two: the first no longer replays.
	first := ""
	for i := range 3 {
		resp, body := h.do(t, "POST", "/v1/responses", `{"input":"hi","store":false}`, "Idempotency-Key", fmt.Sprintf("key-%d", i))
		if resp.StatusCode != 200 {
			t.Fatalf("key-%d: %d %s", i, resp.StatusCode, body)
		}
		if i == 0 {
			first = body
		}
	}
	resp, body = h.do(t, "POST", "/v1/responses", `{"input":"hi","store":false}`, "Idempotency-Key", "key-0")
	if resp.StatusCode != 200 || body == first || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("key-0 after eviction was replayed (%d, replayed header %q)", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
	}
	resp, _ = h.do(t, "POST", "/v1/responses", `{"input":"hi","store":false}`, "Idempotency-Key", "key-2")
	if resp.Header.Get("Idempotent-Replayed") == "" {
		t.Error("key-2, still within the bound, was not replayed")
	}
}
