package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// keyedPOST is one POST of an idempotency test: where, what, and how a
// body that differs from it reads.
type keyedPOST struct {
	name, path string
	body       func(input string) string
	stream     bool
}

var keyedPOSTs = []keyedPOST{
	{"chat", "/v1/chat/completions", func(in string) string {
		return `{"model":"hermes-agent","messages":[{"role":"user","content":` + jsonString(in) + `}]}`
	}, false},
	{"chat stream", "/v1/chat/completions", func(in string) string {
		return `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":` + jsonString(in) + `}]}`
	}, true},
	{"responses", "/v1/responses", func(in string) string {
		return `{"model":"hermes-agent","input":` + jsonString(in) + `}`
	}, false},
	{"responses stream", "/v1/responses", func(in string) string {
		return `{"model":"hermes-agent","stream":true,"input":` + jsonString(in) + `}`
	}, true},
}

// numberedUpstream answers call n with "answer number n", so a turn that
// ran twice shows in the text as well as in the call count.
func numberedUpstream(t *testing.T, hold <-chan struct{}) *hermestest.Upstream {
	return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Text: fmt.Sprintf("answer number %d", n), Hold: hold}
	})
}

func checkReplay(t *testing.T, what string, first *http.Response, firstBody string, dup *http.Response, dupBody string) {
	t.Helper()
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("%s: the first answer says it was replayed", what)
	}
	if dup.StatusCode != first.StatusCode || dupBody != firstBody {
		t.Fatalf("%s: replay differs:\nfirst %d %q\nreplay %d %q", what, first.StatusCode, firstBody, dup.StatusCode, dupBody)
	}
	if dup.Header.Get("Idempotent-Replayed") != "true" || dup.Header.Get("Content-Type") != first.Header.Get("Content-Type") {
		t.Fatalf("%s: replay headers %v, first %v", what, dup.Header, first.Header)
	}
}

func checkKeyConflict(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != 409 || !strings.Contains(body, `"param":"Idempotency-Key"`) || !strings.Contains(body, "different request body") {
		t.Fatalf("%s: same key, other body: %d %s", what, resp.StatusCode, body)
	}
}

// TestIdempotencyEveryPOST: chat completions and responses, streamed or
// not, run once per key; a repeat replays the first answer byte for byte
// (a stream's recorded SSE bytes) and another body under the key is a 409.
func TestIdempotencyEveryPOST(t *testing.T) {
	up := numberedUpstream(t, nil)
	h := startHermes(t, up.Env())
	for i, p := range keyedPOSTs {
		key := "key-" + itoa(i)
		before := len(up.Calls())
		r1, b1 := h.do(t, "POST", p.path, p.body("run once"), "Idempotency-Key", key)
		if r1.StatusCode != 200 || !strings.Contains(b1, "answer") {
			t.Fatalf("%s: %d %s", p.name, r1.StatusCode, b1)
		}
		if p.stream != strings.HasPrefix(r1.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("%s: content type %q", p.name, r1.Header.Get("Content-Type"))
		}
		r2, b2 := h.do(t, "POST", p.path, p.body("run once"), "Idempotency-Key", key)
		checkReplay(t, p.name, r1, b1, r2, b2)
		r3, b3 := h.do(t, "POST", p.path, p.body("something else"), "Idempotency-Key", key)
		checkKeyConflict(t, p.name, r3, b3)
		if n := len(up.Calls()) - before; n != 1 {
			t.Fatalf("%s: the upstream was called %d times, want 1", p.name, n)
		}
	}
	// A key is scoped to its route: the chat answer's key and body sent to
	// /v1/responses are not a replay of the chat answer but a bad request.
	if r, b := h.do(t, "POST", "/v1/responses", keyedPOSTs[0].body("run once"), "Idempotency-Key", "key-0"); r.StatusCode != 400 {
		t.Fatalf("chat body on /v1/responses under a chat key: %d %s", r.StatusCode, b)
	}

	// The SDK sees the replay as the same completion and the same stream.
	before := len(up.Calls())
	c := h.client(option.WithHeader("Idempotency-Key", "sdk-chat"))
	params := openai.ChatCompletionNewParams{Model: "hermes-agent",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("sdk")}}
	c1, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if c1.ID != c2.ID || c1.Choices[0].Message.Content != c2.Choices[0].Message.Content {
		t.Fatalf("SDK replay: %s / %s", c1.RawJSON(), c2.RawJSON())
	}
	rc := h.client(option.WithHeader("Idempotency-Key", "sdk-responses"))
	e1 := respStream(t, rc, respParams("sdk stream"))
	e2 := respStream(t, rc, respParams("sdk stream"))
	last1, last2 := e1[len(e1)-1], e2[len(e2)-1]
	if len(e1) != len(e2) || last1.Type != "response.completed" || last1.Response.ID != last2.Response.ID ||
		last1.Response.OutputText() != last2.Response.OutputText() {
		t.Fatalf("SDK stream replay: %d events ending %s, then %d ending %s", len(e1), respRawOf(t, last1), len(e2), respRawOf(t, last2))
	}
	if n := len(up.Calls()) - before; n != 2 {
		t.Fatalf("SDK: the upstream was called %d times, want 2 (one per key)", n)
	}

	// Hostile: an over-long key is refused before anything runs.
	r, b := h.do(t, "POST", "/v1/chat/completions", keyedPOSTs[0].body("x"), "Idempotency-Key", strings.Repeat("k", 256))
	if r.StatusCode != 400 || !strings.Contains(b, `"param":"Idempotency-Key"`) {
		t.Fatalf("256-byte key: %d %s", r.StatusCode, b)
	}
	// Bytes a store cannot keep as text (PostgreSQL holds neither invalid
	// UTF-8 nor NUL) are refused before the model runs, not after.
	calls := len(up.Calls())
	for _, key := range []string{"k\xff", "clé"} {
		r, b := h.do(t, "POST", "/v1/chat/completions", keyedPOSTs[0].body("x"), "Idempotency-Key", key)
		if r.StatusCode != 400 || !strings.Contains(b, `"param":"Idempotency-Key"`) {
			t.Fatalf("key %q: %d %s", key, r.StatusCode, b)
		}
	}
	if n := len(up.Calls()); n != calls {
		t.Fatalf("refused keys ran %d model calls", n-calls)
	}
}

// openKeyed starts a streaming POST with an Idempotency-Key and reads it
// until the first answer text arrives (the turn is mid-stream). got holds
// every byte read; read the rest from the returned reader.
func openKeyed(t *testing.T, h *hermesd, path, body, key string) (*http.Response, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	req, err := http.NewRequest("POST", strings.TrimSuffix(h.URL(), "/v1")+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	got := &bytes.Buffer{}
	r := bufio.NewReader(io.TeeReader(resp.Body, got))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before its first text: %v\n%s", err, got)
		}
		if strings.Contains(line, "answer ") {
			return resp, r, got
		}
	}
}

type answer struct {
	resp *http.Response
	body string
}

// TestIdempotencyDuplicateWaitsForRunningStream: a duplicate that arrives
// while the first stream is still running waits for it, then replays its
// whole SSE; one with another body waits too, then gets the 409. The turn
// runs once.
func TestIdempotencyDuplicateWaitsForRunningStream(t *testing.T) {
	for _, p := range keyedPOSTs {
		if !p.stream {
			continue
		}
		t.Run(strings.ReplaceAll(p.name, " ", "_"), func(t *testing.T) {
			hold := make(chan struct{})
			up := numberedUpstream(t, hold)
			h := startHermes(t, up.Env())
			first, rest, got := openKeyed(t, h, p.path, p.body("once"), "k")

			dup, other := make(chan answer, 1), make(chan answer, 1)
			go func() {
				r, b := h.do(t, "POST", p.path, p.body("once"), "Idempotency-Key", "k")
				dup <- answer{r, b}
			}()
			go func() {
				r, b := h.do(t, "POST", p.path, p.body("another"), "Idempotency-Key", "k")
				other <- answer{r, b}
			}()
			hermestest.Eventually(t, "two duplicates waiting on the first", func() bool { return h.runtime.FlightWaiters() == 2 })
			close(hold)
			if _, err := io.ReadAll(rest); err != nil {
				t.Fatal(err)
			}
			d := <-dup
			checkReplay(t, p.name, first, got.String(), d.resp, d.body)
			o := <-other
			checkKeyConflict(t, p.name, o.resp, o.body)
			if n := len(up.Calls()); n != 1 {
				t.Fatalf("the upstream was called %d times, want 1", n)
			}
			if n := h.runtime.FlightWaiters(); n != 0 {
				t.Fatalf("%d requests still wait", n)
			}
		})
	}
}

// TestIdempotencyFailedStreamRunsAgain: a stream whose turn failed after
// its headers went out (here: the turn timeout) is not remembered, as a
// failed request that was not streamed is not: the next request with the
// key runs, and that one is replayed.
func TestIdempotencyFailedStreamRunsAgain(t *testing.T) {
	stuck := make(chan struct{}) // never closed: the first call stalls mid-answer
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if n%2 == 0 {
			return hermestest.Reply{Text: "stalled answer", Hold: stuck}
		}
		return hermestest.Reply{Text: fmt.Sprintf("answer number %d", n)}
	})
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"HERMES_TURN_TIMEOUT": "1s"}))
	for i, p := range keyedPOSTs {
		if !p.stream {
			continue
		}
		key := "k" + itoa(i)
		before := len(up.Calls())
		r1, b1 := h.do(t, "POST", p.path, p.body("fails first"), "Idempotency-Key", key)
		if r1.StatusCode != 200 || !strings.Contains(b1, "stalled") || !strings.Contains(b1, "timeout") {
			t.Fatalf("%s: the first stream should fail mid-way: %d %s", p.name, r1.StatusCode, b1)
		}
		r2, b2 := h.do(t, "POST", p.path, p.body("fails first"), "Idempotency-Key", key)
		if r2.StatusCode != 200 || r2.Header.Get("Idempotent-Replayed") != "" || !strings.Contains(b2, "number") {
			t.Fatalf("%s: the retry should run: %d %v %s", p.name, r2.StatusCode, r2.Header, b2)
		}
		r3, b3 := h.do(t, "POST", p.path, p.body("fails first"), "Idempotency-Key", key)
		checkReplay(t, p.name, r2, b2, r3, b3)
		if n := len(up.Calls()) - before; n != 2 {
			t.Fatalf("%s: the upstream was called %d times, want 2", p.name, n)
		}
	}
}

// TestIdempotencyStreamTooLongToReplay: a stream longer than the replay
// bound (4 MiB) is not kept, yet its duplicate still runs nothing: it gets
// a 409 saying so.
func TestIdempotencyStreamTooLongToReplay(t *testing.T) {
	word := strings.Repeat("x", 1000) + " "
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Text: strings.Repeat(word, 4500)}
	})
	h := startHermes(t, up.Env())
	p := keyedPOSTs[1] // chat stream
	r1, b1 := h.do(t, "POST", p.path, p.body("long"), "Idempotency-Key", "long")
	if r1.StatusCode != 200 || len(b1) <= 4<<20 || !strings.HasSuffix(b1, "data: [DONE]\n\n") {
		t.Fatalf("long stream: %d, %d bytes", r1.StatusCode, len(b1))
	}
	r2, b2 := h.do(t, "POST", p.path, p.body("long"), "Idempotency-Key", "long")
	if r2.StatusCode != 409 || r2.Header.Get("Idempotent-Replayed") != "true" || !strings.Contains(b2, "too long to keep") {
		t.Fatalf("duplicate of a long stream: %d %s", r2.StatusCode, b2)
	}
	if n := len(up.Calls()); n != 1 {
		t.Fatalf("the upstream was called %d times, want 1", n)
	}
}

// TestIdempotencyReplaySurvivesRestart: entries are durable: after a
// restart on the same home, a repeated stream (chat and responses) still
// replays its bytes and runs nothing.
func TestIdempotencyReplaySurvivesRestart(t *testing.T) {
	up := numberedUpstream(t, nil)
	home := t.TempDir()
	env := mergeEnv(up.Env(), map[string]string{"HERMES_HOME": home})
	first := startHermes(t, env)
	type sent struct {
		p    keyedPOST
		resp *http.Response
		body string
	}
	var before []sent
	for i, p := range keyedPOSTs {
		r, b := first.do(t, "POST", p.path, p.body("durable"), "Idempotency-Key", "d"+itoa(i))
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p.name, r.StatusCode, b)
		}
		before = append(before, sent{p, r, b})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}

	second := startHermes(t, env)
	for i, s := range before {
		r, b := second.do(t, "POST", s.p.path, s.p.body("durable"), "Idempotency-Key", "d"+itoa(i))
		checkReplay(t, s.p.name+" after restart", s.resp, s.body, r, b)
	}
	if n := len(up.Calls()); n != len(keyedPOSTs) {
		t.Fatalf("the upstream was called %d times, want %d", n, len(keyedPOSTs))
	}
}
