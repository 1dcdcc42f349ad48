package tooling

import (
	"strings"
	"unicode/utf8"
)

// Truncate returns s when it has at most n characters; otherwise its first
// characters followed by mark, n characters in all (or mark alone, when
// mark has n or more). Characters are runes, so a UTF-8 sequence is never
// split.
func Truncate(s string, n int, mark string) string {
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s // n bytes hold at most n runes
	}
	keep := max(n-utf8.RuneCountInString(mark), 0)
	i := 0
	for k := 0; k < keep; k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i] + mark
}

// CutBytes cuts s to at most n bytes without splitting a UTF-8 sequence.
func CutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// OneLine keeps a progress label on one short line: runs of whitespace,
// newlines included, become one space, and beyond n characters the label
// ends in "…".
func OneLine(s string, n int) string {
	return Truncate(strings.Join(strings.Fields(s), " "), n, "…")
}
