package hermestest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the tests got")

// Golden compares got with the file testdata/name, byte for byte. With
// -update it writes got there instead, for a change to the wire format
// made on purpose; the diff then shows the change for review.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what was sent (run with -update to accept it):\n%s", path, firstDifference(want, got))
	}
}

// firstDifference shows the first line where want and got part.
func firstDifference(want, got []byte) string {
	w, g := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			return "line " + strconv.Itoa(i+1) + ":\nwant " + strconv.Quote(string(wl)) + "\n got " + strconv.Quote(string(gl))
		}
	}
	return "(same lines, different bytes)"
}

var (
	// generatedID matches the ids hermesd makes up: a known prefix, random
	// characters, and for an item its index in the response.
	generatedID = regexp.MustCompile(`\b(chatcmpl|resp|msg|fc|rs|mcp|call|conv|ctc|cmp)([-_])[A-Za-z0-9]{12,}(_\d+)?\b`)
	// timestamp matches the Unix times a stream carries.
	timestamp = regexp.MustCompile(`"(created|created_at|completed_at)":\d+(\.\d+)?`)
	// promptSize matches the usage counts that follow the size of the
	// system prompt, which grows with every tool description and prompt
	// layer: a transcript of the wire format must not break on those.
	promptSize = regexp.MustCompile(`"(prompt_tokens|input_tokens|total_tokens)":\d+`)
)

// NormalizeSSE makes a stream transcript comparable across runs and
// across changes to the system prompt: each generated id becomes its prefix
// and its order of first appearance (resp_1, msg_1, …), so an id that must
// repeat still has to; every timestamp, and the prompt and total token
// counts, become 0. Everything else, framing and the completion's own
// token count included, is kept.
func NormalizeSSE(b []byte) []byte {
	seen := map[string]string{}
	count := map[string]int{}
	b = generatedID.ReplaceAllFunc(b, func(id []byte) []byte {
		if n, ok := seen[string(id)]; ok {
			return []byte(n)
		}
		m := generatedID.FindSubmatch(id)
		prefix := string(m[1]) + string(m[2])
		count[prefix]++
		n := prefix + strconv.Itoa(count[prefix])
		seen[string(id)] = n
		return []byte(n)
	})
	b = timestamp.ReplaceAll(b, []byte(`"$1":0`))
	return promptSize.ReplaceAll(b, []byte(`"$1":0`))
}
