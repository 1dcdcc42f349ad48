package httpfront

import (
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
)

// Hostile and malformed items and tools in /v1/responses bodies: each is
// a 400 naming the field, before any turn runs.
func TestDecodeResponsesRefuses(t *testing.T) {
	s := New(Options{})
	for _, tc := range []struct{ body, param string }{
		{`{"input":[{"type":"mcp_call","name":"t","output":"x"}]}`, "input[0]"},
		{`{"input":[{"type":"mcp_call","id":"mcp_1","output":"x"}]}`, "input[0]"},
		{`{"input":[{"type":"web_search_call","action":{"type":"search","query":"q"}}]}`, "input[0].id"},
		{`{"input":[{"type":"function_call_output","output":"x"}]}`, "input[0].call_id"},
		{`{"input":[{"role":"user","content":"x"},{"type":"function_call_output","call_id":"c","output":"x"}]}`, "input[1].call_id"},
		{`{"input":[{"type":"function_call","call_id":"c","name":"f"},{"type":"function_call_output","call_id":"c","output":"a"},{"type":"function_call_output","call_id":"c","output":"b"}]}`, "input[2].call_id"},
		{`{"input":[{"type":"web_search_call","id":"ws_1","action":{}},{"type":"function_call_output","call_id":"ws_1","output":"b"}]}`, "input[1].call_id"},
		{`{"input":[{"type":"local_shell_call","id":"x"}]}`, "input[0].type"},
		{`{"input":"x","tools":{"type":"function"}}`, "tools"},
		{`{"input":"x","tools":[{"type":"function","name":"f"},{"type":"function","name":"f"}]}`, "tools[1].name"},
		{`{"input":"x","tools":[{"type":"function","name":"f"},{"type":"namespace","name":"n","tools":[{"type":"function","name":"f"}]}]}`, "tools[1].tools[0].name"},
		{`{"input":"x","tools":[{"type":"namespace","name":"n","tools":[{"type":"namespace","name":"m"}]}]}`, "tools[0].tools[0].type"},
		{`{"input":"x","tools":[{"type":"code_interpreter"}]}`, "tools[0].type"},
		{`{"input":"x","tools":[{"type":"mcp","server_label":"a.b","server_url":"http://127.0.0.1:1/"}]}`, "tools[0].server_label"},
		{`{"input":"x","tools":[{"type":"mcp","server_label":"x","server_url":"ftp://127.0.0.1:1/"}]}`, "tools[0].server_url"},
		{`{"input":[{"type":"mcp_approval_response","approval_request_id":"mcpr_a_1","approve":true}]}`, "input[0].approval_request_id"},
		{`{"input":[{"type":"mcp_approval_request","id":"mcpr_a_1","name":"t"}]}`, "input[0]"},
		{`{"input":"x","max_tool_calls":-1}`, "max_tool_calls"},
		{`{"input":"x","reasoning":{"effort":"HIGH"}}`, "reasoning.effort"},
		{`{"input":"x","safety_identifier":"` + strings.Repeat("a", 65) + `"}`, "safety_identifier"},
	} {
		_, _, err := s.decodeResponses([]byte(tc.body))
		e, ok := err.(*hermes.Error)
		if !ok || e.Code != hermes.EInvalid || e.Param != tc.param {
			t.Errorf("%s\n  -> %v, want 400 param %q", tc.body, err, tc.param)
		}
	}
}

// A request's mcp tool read as OpenAI defines it: allowed_tools as a list
// or {"tool_names"}, require_approval as always, never or per tool
// (approval by default), authorization as a bearer header; the echo of
// the tools masks every credential.
func TestRemoteMCPTool(t *testing.T) {
	for _, tc := range []struct {
		tool     string
		allowed  []string
		approval map[string]bool // tool → needs approval
		header   string
	}{
		{`{"server_label":"a","server_url":"https://x.example/mcp"}`, nil, map[string]bool{"t": true}, ""},
		{`{"server_label":"a","server_url":"https://x.example/mcp","require_approval":"never","allowed_tools":["t","u"]}`,
			[]string{"t", "u"}, map[string]bool{"t": false}, ""},
		{`{"server_label":"a","server_url":"https://x.example/mcp","allowed_tools":{"tool_names":["t"]},"require_approval":{"never":{"tool_names":["t"]}}}`,
			[]string{"t"}, map[string]bool{"t": false, "u": true}, ""},
		{`{"server_label":"a","server_url":"https://x.example/mcp","require_approval":{"always":{"tool_names":["u"]},"never":{"tool_names":["t"]}},"authorization":"tok"}`,
			nil, map[string]bool{"t": false, "u": true, "v": true}, "Bearer tok"},
		{`{"server_label":"a","server_url":"https://x.example/mcp","allowed_tools":[],"require_approval":null}`, []string{}, map[string]bool{"t": true}, ""},
	} {
		raw := `[{"type":"mcp",` + tc.tool[1:] + `]`
		_, remote, err := responseTools([]byte(raw))
		if err != nil || len(remote) != 1 {
			t.Fatalf("%s: %v", tc.tool, err)
		}
		r := remote[0]
		if (r.Allowed == nil) != (tc.allowed == nil) || strings.Join(r.Allowed, ",") != strings.Join(tc.allowed, ",") {
			t.Errorf("%s: allowed %#v, want %#v", tc.tool, r.Allowed, tc.allowed)
		}
		for tool, want := range tc.approval {
			if got := r.NeedsApproval(tool); got != want {
				t.Errorf("%s: NeedsApproval(%s) = %v", tc.tool, tool, got)
			}
		}
		if r.Headers["Authorization"] != tc.header {
			t.Errorf("%s: Authorization %q", tc.tool, r.Headers["Authorization"])
		}
	}
	echo := string(maskedTools([]byte(`[{"type":"mcp","server_label":"a","server_url":"https://u:pw@x.example/mcp",` +
		`"headers":{"X-Key":"k3y-value"},"authorization":"t0ken"},{"type":"function","name":"f"}]`)))
	for _, secret := range []string{"k3y-value", "t0ken", "pw@"} {
		if strings.Contains(echo, secret) {
			t.Errorf("the echo holds %q: %s", secret, echo)
		}
	}
	if !strings.Contains(echo, `"X-Key":"****"`) || !strings.Contains(echo, `"name":"f"`) {
		t.Errorf("echo = %s", echo)
	}
}
