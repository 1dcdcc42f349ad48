package redact

import (
	"regexp"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// Mask replaces the secret part of everything String redacts.
const Mask = "[REDACTED]"

// rule is one kind of secret. Scanning the text with a regexp is slow in
// Go (tens of MB/s), so a rule names literal triggers, found with fast
// substring search, and runs its regexp, anchored, only where one occurs.
type rule struct {
	// triggers are literals every match contains. With fold they are
	// lower-case and searched in the lower-cased text.
	triggers []string
	fold     bool
	// start returns where a match around the trigger at i would begin, or
	// ok=false when the trigger is glued to a longer word. Nil means i.
	start func(s string, i int) (int, bool)
	// re is anchored (^): it matches at the start it is given or not at all.
	// With fold it is matched against the lower-cased text and is written
	// in lower case: (?i) would make Go's regexp several times slower.
	re *regexp.Regexp
	// multiline rules see the rest of the text; the others see the rest of
	// the line, at most maxLine bytes, which keeps Go on its fast
	// backtracking matcher instead of the NFA.
	multiline bool
	// replace returns the text standing for match m (submatch indexes into
	// sub), or ok=false to leave it alone.
	replace func(sub string, m []int) (repl string, ok bool)
}

// maxLine bounds what a single-line rule looks at: longer values are not
// credentials.
const maxLine = 4096

type edit struct {
	start, end int
	repl       string
}

// String returns s with secrets masked. It is safe for concurrent use and
// returns s itself, without allocating, when there is nothing to mask.
func String(s string) string {
	if s == "" {
		return s
	}
	var lower *[]byte // the lower-cased s, made when a fold rule needs it
	defer func() {
		// A huge input must not pin its copy in the pool.
		if lower != nil && cap(*lower) <= 1<<20 {
			lowerPool.Put(lower)
		}
	}()
	for _, r := range rules {
		text := s
		if r.fold {
			if lower == nil {
				lower = lowerPool.Get().(*[]byte)
				*lower = toLowerASCII((*lower)[:0], s)
			}
			text = unsafeString(*lower)
		}
		if out := apply(s, text, r); out != s {
			s = out
			if lower != nil {
				*lower = toLowerASCII((*lower)[:0], s)
			}
		}
	}
	return s
}

// apply runs rule r over s; text is s or its lower-cased copy, where the
// triggers are searched.
func apply(s, text string, r *rule) string {
	var edits []edit
	for _, t := range r.triggers {
		for from := 0; from < len(text); {
			i := strings.Index(text[from:], t)
			if i < 0 {
				break
			}
			i += from
			from = i + len(t)
			start, ok := i, true
			if r.start != nil {
				start, ok = r.start(s, i)
			}
			if !ok {
				continue
			}
			end := len(s)
			if !r.multiline {
				end = min(end, start+maxLine)
				if nl := strings.IndexByte(s[start:end], '\n'); nl >= 0 {
					end = start + nl
				}
			}
			sub := s[start:end]
			m := r.re.FindStringSubmatchIndex(text[start:end])
			if m == nil {
				continue
			}
			repl, ok := r.replace(sub, m)
			if !ok {
				continue
			}
			edits = append(edits, edit{start, start + m[1], repl})
			from = max(from, start+m[1])
		}
	}
	if len(edits) == 0 {
		return s
	}
	// Two triggers of one rule (token_secret=…) find the same match.
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, e := range edits {
		if e.start < last {
			continue
		}
		b.WriteString(s[last:e.start])
		b.WriteString(e.repl)
		last = e.end
	}
	b.WriteString(s[last:])
	return b.String()
}

var lowerPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// toLowerASCII appends s lower-cased (ASCII letters only, so byte offsets
// match s) to dst, eight bytes at a time.
func toLowerASCII(dst []byte, s string) []byte {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	n := len(dst)
	dst = append(dst, s...)
	b := dst[n:]
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
		a := x &^ high // low seven bits of each byte: no carries between bytes below
		geA := (a + (0x80-'A')*ones) & high
		gtZ := (a + (0x80-'Z'-1)*ones) & high
		upper := geA &^ gtZ &^ (x & high) // ASCII 'A'..'Z' only
		if upper == 0 {
			continue
		}
		x |= upper >> 2 // 0x80>>2 is 0x20, the case bit
		for k := range 8 {
			b[i+k] = byte(x >> (8 * k))
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return dst
}

// unsafeString views b as a string without copying, so searching the
// lower-cased text costs no allocation. The view never outlives one apply
// call, and b is not written while it is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
