package httpfront

import (
	"strings"
	"testing"
)

// TestHostGuard reads Host values as the guard does, including malformed
// ones fasthttp refuses today before the guard runs (it may not always).
func TestHostGuard(t *testing.T) {
	open := newHostGuard(false, "127.0.0.1", nil)
	for host, want := range map[string]bool{
		"127.0.0.1:8642": true, "localhost": true, "LOCALHOST:1": true, "[::1]:8642": true, "[::1]": true, "127.200.0.1": true,
		"localhost:": true, "[::ffff:127.0.0.1]": true,
		"": false, ":8642": false, "evil.example:8642": false, "127.0.0.1.evil.com": false, "localhost.evil.com": false,
		"0x7f.1": false, "2130706433": false, "127.000.0.1": false, "::1": false, "[::1": false, "[::1]x": false,
		"[::1]:1x": false, "localhost:80x": false, "localhost:1234567": false, "localhost:1:2": false, "[fe80::1%lo]": false,
		"local host": false, strings.Repeat("a", 254): false, "[localhost]": false, "[127.0.0.1]": false,
	} {
		if got := open.allows([]byte(host)); got != want {
			t.Errorf("allows(%.40q) = %v, want %v", host, got, want)
		}
	}
	keyed := newHostGuard(true, "box.lan", nil)
	if !keyed.allows([]byte("evil.example")) {
		t.Error("a keyed server with no list checked the Host")
	}
	listed := newHostGuard(true, "box.lan", []string{"Hermes.Internal", "[::2]"})
	for host, want := range map[string]bool{"hermes.internal:1": true, "BOX.lan": true, "[::2]:1": true, "127.0.0.1": true, "evil.example": false} {
		if got := listed.allows([]byte(host)); got != want {
			t.Errorf("listed: allows(%q) = %v, want %v", host, got, want)
		}
	}
	if !newHostGuard(false, "", []string{"a.example", "*"}).allows([]byte("evil.example")) {
		t.Error("* did not turn the check off")
	}
}
