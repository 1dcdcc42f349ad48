package hermes

import (
	"reflect"
	"testing"
	"time"
)

// TestParseDirectives: the grammar the offline model and bench's mock
// upstream share (tooling/llm/DIRECTIVES.md).
func TestParseDirectives(t *testing.T) {
	base := Directives{Tokens: -1, FailAfter: -1}
	with := func(mod func(*Directives)) Directives { d := base; mod(&d); return d }
	tests := []struct {
		in   string
		want Directives
	}{
		{"hello", with(func(s *Directives) { s.Text = "hello" })},
		{"see /usr/bin and http://x/y", with(func(s *Directives) { s.Text = "see /usr/bin and http://x/y" })},
		{"/tool terminal {\"command\": \"ls -la\"}", with(func(s *Directives) {
			s.Calls = []ToolCall{{Name: "terminal", Arguments: `{"command": "ls -la"}`}}
		})},
		{"run these\n/tool a {}\n  /tool b\nplease", with(func(s *Directives) {
			s.Text = "run these\nplease"
			s.Calls = []ToolCall{{Name: "a", Arguments: "{}"}, {Name: "b", Arguments: "{}"}}
		})},
		{"/repeat 5000", with(func(s *Directives) { s.Repeat = MaxDirectiveRepeat })},
		{"/tool x\n/repeat 3", with(func(s *Directives) { s.Calls = []ToolCall{{Name: "x", Arguments: "{}"}}; s.Repeat = 3 })},
		{"/tokens 5", with(func(s *Directives) { s.Tokens = 5 })},
		{"/tokens 999999999", with(func(s *Directives) { s.Tokens = MaxDirectiveTokens })},
		{"/sleep 2s\n/delay 5ms", with(func(s *Directives) { s.Sleep = 2 * time.Second; s.Delay, s.DelaySet = 5*time.Millisecond, true })},
		{"/sleep 24h", with(func(s *Directives) { s.Sleep = MaxDirectiveWait })},
		{"/fail boom now", with(func(s *Directives) { s.Fail, s.FailSet = "boom now", true })},
		{"/fail", with(func(s *Directives) { s.Fail, s.FailSet = DefaultFailReason, true })},
		{"/fail-after 3 cut off", with(func(s *Directives) { s.FailAfter, s.Fail = 3, "cut off" })},
		{"/echo-system", with(func(s *Directives) { s.EchoSystem = true })},
		{"/echo-history\r\n", with(func(s *Directives) { s.EchoHistory = true })},
		// Malformed or unknown directives are plain text.
		{"/tokens many", with(func(s *Directives) { s.Text = "/tokens many" })},
		{"/sleep -1s", with(func(s *Directives) { s.Text = "/sleep -1s" })},
		{"/repeat 0", with(func(s *Directives) { s.Text = "/repeat 0" })},
		{"/tool", with(func(s *Directives) { s.Text = "/tool" })},
		{"/unknown thing", with(func(s *Directives) { s.Text = "/unknown thing" })},
		{"/", with(func(s *Directives) { s.Text = "/" })},
	}
	for _, tt := range tests {
		if got := ParseDirectives(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseDirectives(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}
