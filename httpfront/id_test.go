package httpfront

import (
	"regexp"
	"sort"
	"testing"
	"time"
)

// TestNewIDOrderedByTime: ids sort in the order they were made (the store
// appends them at the end of its trees), keep 96 random bits, and have one
// fixed length, so byte order is time order for any two.
func TestNewIDOrderedByTime(t *testing.T) {
	base := time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 1000 {
		ids = append(ids, newID("resp_", base.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids made a millisecond apart do not sort by time: %q … %q", ids[0], ids[len(ids)-1])
	}
	shape := regexp.MustCompile(`^resp_[0-9a-f]{36}$`)
	seen := make(map[string]bool)
	for _, id := range ids {
		if !shape.MatchString(id) {
			t.Fatalf("id %q is not resp_ and 36 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
	}
	// Years from now the width holds, and times before 1970 (a broken
	// clock) do not wrap around to the far future.
	if a, b := newID("x", time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)), newID("x", base); len(a) != len(b) || a < b {
		t.Errorf("an id of 2400 (%q) does not sort after one of 2026 (%q)", a, b)
	}
	if a, b := newID("x", time.Unix(-5, 0)), newID("x", base); a[1:13] != "000000000000" || a > b {
		t.Errorf("an id from before 1970 is %q", a)
	}
	// Same millisecond: the random part tells them apart.
	same := make(map[string]bool)
	for range 1000 {
		id := newID("x", base)
		if id[:13] != "x"+ids[0][5:17] || same[id] {
			t.Fatalf("id %q of one millisecond: wrong time or made twice", id)
		}
		same[id] = true
	}
	if got := NewID("conv_"); !regexp.MustCompile(`^conv_[0-9a-f]{36}$`).MatchString(got) {
		t.Errorf("NewID = %q", got)
	}
}
