package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// rawEvent is one Responses API stream event as it came over the wire.
type rawEvent struct {
	Type string // from the event: line, checked equal to the data's type
	Seq  int
	Data string
}

// field returns one top-level field of the event's data.
func (e rawEvent) field(t *testing.T, name string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.Data), &m); err != nil {
		t.Fatalf("event %s: %v", e.Type, err)
	}
	return m[name]
}

func rawTypes(evs []rawEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// rawResponseStream posts a streaming /v1/responses body and reads the SSE
// frames by hand. done reports that the stream ended with data: [DONE]
// after its events; any frame after [DONE] fails the test.
func rawResponseStream(t *testing.T, h *hermesd, body string) (evs []rawEvent, done bool) {
	t.Helper()
	resp, raw := h.do(t, "POST", "/v1/responses", body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q: %.500s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	sc := bufio.NewScanner(strings.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && data != "":
			if done {
				t.Fatalf("frame after [DONE]: %q", data)
			}
			if data == "[DONE]" {
				if name != "" {
					t.Fatalf("[DONE] carries an event name %q", name)
				}
				done = true
			} else {
				var head struct {
					Type string `json:"type"`
					Seq  *int   `json:"sequence_number"`
				}
				if err := json.Unmarshal([]byte(data), &head); err != nil || head.Seq == nil {
					t.Fatalf("frame %q: %v (no sequence_number?)", data, err)
				}
				if head.Type != name {
					t.Fatalf("event: %q carries data of type %q", name, head.Type)
				}
				evs = append(evs, rawEvent{Type: head.Type, Seq: *head.Seq, Data: data})
			}
			name, data = "", ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs, done
}
