package main

// End-to-end tests of the runtime's own faults: a store that fails its
// writes, and what a client is told then.

import (
	"context"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermesd/hermesd/tooling/llm"
)

// A turn whose record cannot be committed is a failed turn, for the
// non-stream and the stream answer alike: 500 store_error, and a stream
// ending in response.failed. Before, the non-stream answer was 200
// "completed" for a response no GET could find.
func TestStoreWriteFailureIsNotCompleted(t *testing.T) {
	h := startHermes(t, nil)
	if err := h.store.Close(); err != nil { // every write now fails
		t.Fatal(err)
	}
	resp, body := h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"hello"}`)
	if resp.StatusCode != 500 || !strings.Contains(body, `"code":"store_error"`) || strings.Contains(body, "completed") {
		t.Fatalf("non-stream with a failing store: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"hello","stream":true}`)
	events := sseEventTypes(body)
	if resp.StatusCode != 200 || len(events) == 0 || events[len(events)-1] != "response.failed" ||
		!strings.Contains(body, `"code":"store_error"`) || strings.Contains(body, "response.completed") {
		t.Fatalf("stream with a failing store: %d %q\n%s", resp.StatusCode, events, body)
	}
	if s := h.runtime.Stats(); s.Admitted != 0 {
		t.Fatalf("turns still admitted: %+v", s)
	}
}

// sseEventTypes lists the event: names of an SSE body in order.
func sseEventTypes(body string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			out = append(out, name)
		}
	}
	return out
}

// crashSIGTERMStuck: SIGTERM while a turn is held by a long tool or by an
// upstream that sends its headers and then nothing. Shutdown is bounded
// by API_SERVER_SHUTDOWN_GRACE: hermesd exits non-zero soon after it,
// naming the turn it cut short, and the store reopens.
func crashSIGTERMStuck(t *testing.T, bin string) {
	stuckUpstream := newFakeUpstream(t, func(int, *upstreamCall) reply { return reply{Block: true} })
	cases := []struct {
		name, prompt string
		env          []string
	}{
		{"tool", "/tool terminal {\"command\":\"sleep 60\"}", nil},
		{"upstream", "hello", []string{"OPENAI_BASE_URL=" + stuckUpstream.URL + "/v1", "OPENAI_API_KEY=sk-test", "HERMES_MODEL=fake-model"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home, ws := t.TempDir(), t.TempDir()
			const grace = 1500 * time.Millisecond
			p := startProc(t, bin, home, ws, append([]string{"API_SERVER_SHUTDOWN_GRACE=" + grace.String()}, tc.env...)...)
			resp, _ := openStream(t, p, tc.prompt)
			defer resp.Body.Close()
			start := time.Now()
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			code := p.waitExit(t, grace+10*time.Second)
			took := time.Since(start)
			t.Logf("%s: exit %d after %v (grace %v)", tc.name, code, took.Round(time.Millisecond), grace)
			if code == 0 || took > grace+3*time.Second {
				t.Fatalf("exit %d after %v, want non-zero soon after the %v grace\n%s", code, took, grace, p.stderr)
			}
			log := p.stderr.String()
			if !strings.Contains(log, "shutdown incomplete") || !strings.Contains(log, "chatcmpl-") {
				t.Fatalf("the log does not say what was cut short:\n%s", log)
			}
			t.Logf("%s: %s", tc.name, strings.TrimSpace(log[strings.Index(log, "level=ERROR"):]))
			q := startProc(t, bin, home, ws)
			_ = q.cmd.Process.Signal(syscall.SIGTERM)
			if code := q.waitExit(t, 10*time.Second); code != 0 {
				t.Fatalf("restart then clean stop exited %d\n%s", code, q.stderr)
			}
		})
	}
}

// ignoringModel never answers and ignores cancellation, as an upstream
// client stuck in a read would.
type ignoringModel struct{ started, release chan struct{} }

func (m *ignoringModel) Stream(ctx context.Context, _ llm.Request, _ func(string)) (llm.Response, error) {
	m.started <- struct{}{}
	<-m.release
	return llm.Response{}, ctx.Err()
}

// Main.Close is bounded by its context even when a turn ignores being
// cancelled: it returns soon after the grace period with an error naming
// the abandoned turn.
func TestCloseIsBoundedWhenTheModelIgnoresCancel(t *testing.T) {
	home, ws := t.TempDir(), t.TempDir()
	vars := map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": ws}
	m := NewMain()
	if err := m.ParseFlags(nil, lookupIn(vars)); err != nil {
		t.Fatal(err)
	}
	m.Logger = newLogger("text", "error", io.Discard)
	model := &ignoringModel{started: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(model.release)
	m.Model = model
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Listener = ln
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := &hermesd{Main: m, Home: home, Workspace: ws}
	go func() {
		defer func() { _ = recover() }() // the request fails once the server is gone
		h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"hello"}`)
	}()
	<-model.started
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err = m.Close(ctx)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "abandoned 1 turns") || !strings.Contains(err.Error(), "resp_") {
		t.Fatalf("close: %v", err)
	}
	if took > 2500*time.Millisecond {
		t.Fatalf("close took %v with a 1s grace", took)
	}
	t.Logf("close returned after %v: %v", took.Round(time.Millisecond), err)
}
