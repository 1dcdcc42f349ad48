package jsonenc

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// FuzzAppendString: the string encoder of the SSE hot path and the upstream
// request always yields valid
// JSON that decodes back to the input (invalid bytes as U+FFFD), and never
// writes bytes that break HTML embedding or JavaScript line parsing.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " back \ slash`, "ctl \x00\x01\x1f\x7f", "nl\n\r\t", "<script>&amp;</script>",
		"\u2028\u2029", "emoji 💻 ✍️", "bad \xff\xfe \xc3", "\xed\xa0\x80 surrogate", "\ufffd", "data: [DONE]\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString([]byte(`{"k":`), s)
		out = append(out, '}')
		if !json.Valid(out) {
			t.Fatalf("AppendString(%q) = %s: not valid JSON", s, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("AppendString(%q) = %q: not valid UTF-8", s, out)
		}
		var got struct{ K string }
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendString(%q): %v", s, err)
		}
		want := string([]rune(s)) // each invalid byte becomes U+FFFD
		if got.K != want {
			t.Fatalf("AppendString(%q) decodes to %q, want %q", s, got.K, want)
		}
		if utf8.ValidString(s) && got.K != s {
			t.Fatalf("AppendString(%q) does not round-trip", s)
		}
		enc := out[len(`{"k":`) : len(out)-1]
		for _, c := range enc {
			if c < 0x20 || c == '<' || c == '>' || c == '&' {
				t.Fatalf("AppendString(%q) = %q: raw byte %#x", s, enc, c)
			}
		}
		if strings.ContainsAny(string(enc), "\u2028\u2029") {
			t.Fatalf("AppendString(%q) = %q: raw line separator", s, enc)
		}
	})
}

// Every ASCII character (and a few others) is escaped byte for byte as encoding/json and
// goccy/go-json escape it (the fuzz check of the Responses stream compares
// hand-built objects with the generic encoder's; "\b" once came out as
// \u0008 here and \b there).
func TestAppendStringMatchesTheEncoders(t *testing.T) {
	var cases []string
	for c := range 0x80 {
		cases = append(cases, "a"+string(rune(c))+"z")
	}
	cases = append(cases, "\u2028 \u2029", "é 💻 \ufffd", "\u007f\u0080\u009f\u00a0")
	for _, s := range cases {
		got := string(AppendString(nil, s))
		std, _ := json.Marshal(s)
		goccy, _ := gojson.Marshal(s)
		if got != string(std) || got != string(goccy) {
			t.Errorf("%q: %s, encoding/json %s, goccy %s", s, got, std, goccy)
		}
	}
}
