package tooling

import (
	"strings"
	"testing"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		mark string
		want string
	}{
		{"hello", 5, "…", "hello"},
		{"hello!", 5, "…", "hell…"},
		{"", 0, "…", ""},
		// Characters, not bytes: "é" is two bytes and is never split.
		{"ééé", 3, "…", "ééé"},
		{"éééé", 3, "…", "éé…"},
		{"日本語テキスト", 4, "…", "日本語…"},
		// The mark counts toward n; a mark as long as n leaves it alone.
		{"abcdefghij", 8, " [cut]", "ab [cut]"},
		{"abcdefghij", 3, " [cut]", " [cut]"},
		// No mark: the first n characters, for callers that say more.
		{"abcdef", 3, "", "abc"},
	}
	for _, tt := range tests {
		if got := Truncate(tt.s, tt.n, tt.mark); got != tt.want {
			t.Errorf("Truncate(%q, %d, %q) = %q, want %q", tt.s, tt.n, tt.mark, got, tt.want)
		}
	}
}

func TestCutBytes(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc"},
		{"aé", 2, "a"}, // the cut falls inside é: it goes whole
		{"aé", 3, "aé"},
		{"日本", 4, "日"},
		{"日本", 2, ""},
	}
	for _, tt := range tests {
		if got := CutBytes(tt.s, tt.n); got != tt.want {
			t.Errorf("CutBytes(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine("  a\n\tb   c \r\n", 10); got != "a b c" {
		t.Errorf("OneLine folds whitespace: %q", got)
	}
	long := strings.Repeat("x", 200)
	if got := OneLine(long, 80); got != strings.Repeat("x", 79)+"…" {
		t.Errorf("OneLine(200 x, 80) = %q", got)
	}
}
