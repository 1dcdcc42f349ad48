package main

// End-to-end tests of the runtime's own faults: a store that fails its
// writes, and what a client is told then.

import (
	"strings"
	"testing"
)

// A turn whose record cannot be committed is a failed turn, for the
// non-stream and the stream answer alike: 500 store_error, and a stream
// ending in response.failed. Before, the non-stream answer was 200
// "completed" for a response no GET could find.
func TestStoreWriteFailureIsNotCompleted(t *testing.T) {
	h := startHermes(t, nil)
	if err := h.store.Close(); err != nil { // every write now fails
		t.Fatal(err)
	}
	resp, body := h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"hello"}`)
	if resp.StatusCode != 500 || !strings.Contains(body, `"code":"store_error"`) || strings.Contains(body, "completed") {
		t.Fatalf("non-stream with a failing store: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"hello","stream":true}`)
	events := sseEventTypes(body)
	if resp.StatusCode != 200 || len(events) == 0 || events[len(events)-1] != "response.failed" ||
		!strings.Contains(body, `"code":"store_error"`) || strings.Contains(body, "response.completed") {
		t.Fatalf("stream with a failing store: %d %q\n%s", resp.StatusCode, events, body)
	}
	if s := h.runtime.Stats(); s.Admitted != 0 {
		t.Fatalf("turns still admitted: %+v", s)
	}
}

// sseEventTypes lists the event: names of an SSE body in order.
func sseEventTypes(body string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			out = append(out, name)
		}
	}
	return out
}
