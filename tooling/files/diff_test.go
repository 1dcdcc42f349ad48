package files

import (
	"fmt"
	"math/rand"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func lines(from, to int, changed map[int]string) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		if s, ok := changed[i]; ok {
			b.WriteString(s)
		} else {
			fmt.Fprintf(&b, "l%d\n", i)
		}
	}
	return b.String()
}

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"equal", "a\n", "a\n", ""},
		{"one line", "a\nb\nc\n", "a\nB\nc\n", "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"into empty", "", "x\n", "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+x\n"},
		{"to empty", "x\ny\n", "", "--- a/f\n+++ b/f\n@@ -1,2 +0,0 @@\n-x\n-y\n"},
		{"no newline", "a\nb", "a\nc", "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"},
		{"newline added", "a\nb", "a\nb\n", "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"},
		{"insert middle", lines(1, 10, nil), lines(1, 10, map[int]string{5: "l5\nnew\n"}),
			"--- a/f\n+++ b/f\n@@ -3,6 +3,7 @@\n l3\n l4\n l5\n+new\n l6\n l7\n l8\n"},
		{"two hunks", lines(1, 20, nil), lines(1, 20, map[int]string{2: "X\n", 18: "Y\n"}),
			"--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n l1\n-l2\n+X\n l3\n l4\n l5\n@@ -15,6 +15,6 @@\n l15\n l16\n l17\n-l18\n+Y\n l19\n l20\n"},
		{"merged hunk", lines(1, 20, nil), lines(1, 20, map[int]string{2: "X\n", 9: "Y\n"}),
			"--- a/f\n+++ b/f\n@@ -1,12 +1,12 @@\n l1\n-l2\n+X\n l3\n l4\n l5\n l6\n l7\n l8\n-l9\n+Y\n l10\n l11\n l12\n"},
		{"just apart", lines(1, 20, nil), lines(1, 20, map[int]string{2: "X\n", 10: "Y\n"}),
			"--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n l1\n-l2\n+X\n l3\n l4\n l5\n@@ -7,7 +7,7 @@\n l7\n l8\n l9\n-l10\n+Y\n l11\n l12\n l13\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnifiedDiff("f", tc.a, tc.b); got != tc.want {
				t.Errorf("diff:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$`)

// applyDiff applies a unified diff produced by UnifiedDiff to a, checking
// every context and removed line against a on the way.
func applyDiff(t *testing.T, a, diff string) string {
	t.Helper()
	src := splitLines(a)
	var out []string
	pos := 0
	dl := strings.SplitAfter(diff, "\n")
	for i := 2; i < len(dl) && dl[i] != ""; {
		m := hunkHeader.FindStringSubmatch(strings.TrimSuffix(dl[i], "\n"))
		if m == nil {
			t.Fatalf("bad hunk header %q", dl[i])
		}
		start, _ := strconv.Atoi(m[1])
		if m[2] != "0" {
			start--
		}
		out = append(out, src[pos:start]...)
		pos = start
		i++
		for i < len(dl) && dl[i] != "" && !strings.HasPrefix(dl[i], "@@") {
			prefix, line := dl[i][0], dl[i][1:]
			i++
			if i < len(dl) && strings.HasPrefix(dl[i], `\ No newline`) {
				line = strings.TrimSuffix(line, "\n")
				i++
			}
			switch prefix {
			case ' ', '-':
				if pos >= len(src) || src[pos] != line {
					t.Fatalf("line %d: diff says %q, source does not", pos+1, line)
				}
				if prefix == ' ' {
					out = append(out, line)
				}
				pos++
			case '+':
				out = append(out, line)
			default:
				t.Fatalf("bad diff line %q", dl[i-1])
			}
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, "")
}

// TestUnifiedDiffApplies checks on random edits that each diff turns the
// old text into the new one and only claims lines that are really there.
func TestUnifiedDiffApplies(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	words := []string{"a\n", "b\n", "c\n", "d\n", "{\n", "}\n", "\n"}
	gen := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = words[rng.Intn(len(words))]
		}
		return s
	}
	for iter := 0; iter < 300; iter++ {
		a := gen(rng.Intn(40))
		b := append([]string(nil), a...)
		for k := rng.Intn(6); k > 0; k-- {
			switch i := rng.Intn(len(b) + 1); rng.Intn(3) {
			case 0:
				b = append(b[:i], append(gen(1+rng.Intn(3)), b[i:]...)...)
			case 1:
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			case 2:
				if i < len(b) {
					b[i] = words[rng.Intn(len(words))]
				}
			}
		}
		as, bs := strings.Join(a, ""), strings.Join(b, "")
		if rng.Intn(4) == 0 && len(bs) > 0 {
			bs = strings.TrimSuffix(bs, "\n")
		}
		d := UnifiedDiff("f", as, bs)
		if (d == "") != (as == bs) {
			t.Fatalf("empty diff for different texts %q %q", as, bs)
		}
		if got := applyDiff(t, as, d); got != bs {
			t.Fatalf("applying\n%s to %q gives %q, want %q", d, as, got, bs)
		}
	}
}

// TestDiffFallback checks a change too large for the Myers bound still
// yields a correct diff.
func TestDiffFallback(t *testing.T) {
	var a, b strings.Builder
	for i := 0; i < 3*maxDiffEdits; i++ {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
	}
	d := UnifiedDiff("f", a.String(), b.String())
	if got := applyDiff(t, a.String(), d); got != b.String() {
		t.Fatal("fallback diff does not apply")
	}
}

func BenchmarkUnifiedDiff(b *testing.B) {
	before := lines(1, 5000, nil)
	after := lines(1, 5000, map[int]string{100: "x\n", 2500: "y\nz\n", 4900: ""})
	b.ReportAllocs()
	for b.Loop() {
		UnifiedDiff("f", before, after)
	}
}
