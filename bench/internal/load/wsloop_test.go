package load

import (
	"encoding/json"
	"testing"
)

func TestLoopTerminal(t *testing.T) {
	for _, tc := range []struct {
		ev       string
		terminal bool
		call     string
		kind     string
	}{
		{`{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","status":"completed","output":[{"type":"function_call","call_id":"call_7"}]}}`, true, "call_7", ""},
		{`{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","output":[{"type":"message"}]}}`, true, "", ""},
		{`{"type":"response.failed","sequence_number":3,"response":{"id":"resp_1","output":[]}}`, true, "", "failed"},
		{`{"type":"response.incomplete","sequence_number":3,"response":{"id":"resp_1"}}`, true, "", "incomplete"},
		{`{"type":"response.completed_extra","sequence_number":1}`, false, "", ""},
		{`{"type":"response.output_text.delta","sequence_number":4,"delta":"x"}`, false, "", ""},
		{`{"type":"error","status":429}`, false, "", ""},
	} {
		ev := []byte(tc.ev)
		if got := isTerminal(ev); got != tc.terminal {
			t.Fatalf("isTerminal(%s) = %v", tc.ev, got)
		}
		if !tc.terminal {
			continue
		}
		var term terminal
		if err := json.Unmarshal(ev, &term); err != nil {
			t.Fatal(err)
		}
		call, kind := term.next()
		if call != tc.call || kind != tc.kind {
			t.Fatalf("%s: next() = %q, %q; want %q, %q", tc.ev, call, kind, tc.call, tc.kind)
		}
	}
}
