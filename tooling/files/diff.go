package files

import (
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines shown around a change, as in
// diff -u.
const diffContext = 3

// maxDiffEdits bounds the Myers search (its cost grows with the square of
// the number of differing lines); past it the changed middle is shown as
// removed and re-added, which is still a correct diff.
const maxDiffEdits = 1000

type editKind uint8

const (
	editEqual editKind = iota
	editDelete
	editInsert
)

// edit is one line of an edit script; a and b count the lines of each side
// consumed before it.
type edit struct {
	kind editKind
	a, b int
}

// UnifiedDiff returns the unified diff of before and after, with headers
// "--- a/name" and "+++ b/name" and hunks of three lines of context; ""
// when they are equal. A last line without a newline is marked the way diff
// marks it.
func UnifiedDiff(name, before, after string) string {
	if before == after {
		return ""
	}
	a, b := splitLines(before), splitLines(after)
	edits := diffLines(a, b)

	var out strings.Builder
	fmt.Fprintf(&out, "--- a/%s\n+++ b/%s\n", name, name)
	for i := 0; i < len(edits); {
		// Find the next change and the extent of its hunk: changes closer
		// than twice the context share one hunk.
		for i < len(edits) && edits[i].kind == editEqual {
			i++
		}
		if i == len(edits) {
			break
		}
		start := max(0, i-diffContext)
		end := i
		for {
			for end < len(edits) && edits[end].kind != editEqual {
				end++
			}
			eq := end
			for eq < len(edits) && edits[eq].kind == editEqual {
				eq++
			}
			if eq == len(edits) || eq-end > 2*diffContext {
				end = min(len(edits), end+diffContext)
				break
			}
			end = eq
		}
		writeHunk(&out, a, b, edits[start:end])
		i = end
	}
	return out.String()
}

func writeHunk(out *strings.Builder, a, b []string, h []edit) {
	var na, nb int
	for _, e := range h {
		if e.kind != editInsert {
			na++
		}
		if e.kind != editDelete {
			nb++
		}
	}
	fmt.Fprintf(out, "@@ -%s +%s @@\n", hunkRange(h[0].a, na), hunkRange(h[0].b, nb))
	for _, e := range h {
		switch e.kind {
		case editEqual:
			writeLine(out, ' ', a[e.a])
		case editDelete:
			writeLine(out, '-', a[e.a])
		case editInsert:
			writeLine(out, '+', b[e.b])
		}
	}
}

// hunkRange formats a hunk side as diff -u does: "start,len", just "start"
// for one line, and the line before for an empty side.
func hunkRange(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func writeLine(out *strings.Builder, prefix byte, line string) {
	out.WriteByte(prefix)
	out.WriteString(line)
	if !strings.HasSuffix(line, "\n") {
		out.WriteString("\n\\ No newline at end of file\n")
	}
}

// splitLines splits s into lines that keep their "\n", so a missing final
// newline is a difference like any other.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// diffLines returns an edit script turning a into b: the common prefix and
// suffix are matched directly and the middle goes through Myers' O(ND)
// algorithm.
func diffLines(a, b []string) []edit {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	edits := make([]edit, 0, len(a)+len(b)-pre-suf)
	for i := 0; i < pre; i++ {
		edits = append(edits, edit{editEqual, i, i})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	mid, ok := myers(ma, mb, maxDiffEdits)
	if !ok {
		mid = mid[:0]
		for i := range ma {
			mid = append(mid, edit{editDelete, i, 0})
		}
		for j := range mb {
			mid = append(mid, edit{editInsert, len(ma), j})
		}
	}
	for _, e := range mid {
		edits = append(edits, edit{e.kind, e.a + pre, e.b + pre})
	}
	for i := 0; i < suf; i++ {
		edits = append(edits, edit{editEqual, len(a) - suf + i, len(b) - suf + i})
	}
	return edits
}

// myers finds a shortest edit script from a to b, giving up once more than
// maxD edits are needed. It keeps, for each step d, the furthest-reaching x
// on each diagonal k in [-d-1, d+1], then walks those back from the end.
func myers(a, b []string, maxD int) ([]edit, bool) {
	n, m := len(a), len(b)
	off := n + m + 1
	v := make([]int, 2*off+1)
	var trace [][]int
	for d := 0; d <= n+m; d++ {
		if d > maxD {
			return nil, false
		}
		lo, hi := max(off-d-1, 0), min(off+d+1, len(v)-1)
		trace = append(trace, append([]int(nil), v[lo:hi+1]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, off, n, m), true
			}
		}
	}
	return nil, false
}

// backtrack rebuilds the edit script from the saved diagonals. trace[d] is
// v before step d, stored from index off-d-1.
func backtrack(trace [][]int, off, n, m int) []edit {
	var rev []edit
	x, y := n, m
	for d := len(trace) - 1; d >= 0; d-- {
		base := max(off-d-1, 0)
		at := func(k int) int { return trace[d][off+k-base] }
		k := x - y
		var pk int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := at(pk)
		py := px - pk
		for x > px && y > py {
			x--
			y--
			rev = append(rev, edit{editEqual, x, y})
		}
		if d > 0 {
			if x == px {
				rev = append(rev, edit{editInsert, px, py})
			} else {
				rev = append(rev, edit{editDelete, px, py})
			}
		}
		x, y = px, py
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}
