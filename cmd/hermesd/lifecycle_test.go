package main

// End-to-end tests of the runtime's own faults: a store that fails its
// writes, and what a client is told then.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
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
	stuckUpstream := hermestest.NewUpstream(t, func(int, *hermestest.Call) hermestest.Reply { return hermestest.Reply{Block: true} })
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
			p := hermestest.StartProcess(t, []string{bin}, home, ws, append([]string{"API_SERVER_SHUTDOWN_GRACE=" + grace.String()}, tc.env...)...)
			resp, _ := openStream(t, p, tc.prompt)
			defer resp.Body.Close()
			start := time.Now()
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			code := p.WaitExit(t, grace+10*time.Second)
			took := time.Since(start)
			t.Logf("%s: exit %d after %v (grace %v)", tc.name, code, took.Round(time.Millisecond), grace)
			if code == 0 || took > grace+3*time.Second {
				t.Fatalf("exit %d after %v, want non-zero soon after the %v grace\n%s", code, took, grace, p.Stderr)
			}
			log := p.Stderr.String()
			if !strings.Contains(log, "shutdown incomplete") || !strings.Contains(log, "chatcmpl-") {
				t.Fatalf("the log does not say what was cut short:\n%s", log)
			}
			t.Logf("%s: %s", tc.name, strings.TrimSpace(log[strings.Index(log, "level=ERROR"):]))
			q := hermestest.StartProcess(t, []string{bin}, home, ws)
			_ = q.Cmd.Process.Signal(syscall.SIGTERM)
			if code := q.WaitExit(t, 10*time.Second); code != 0 {
				t.Fatalf("restart then clean stop exited %d\n%s", code, q.Stderr)
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
	model := &ignoringModel{started: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(model.release)
	h := startHermes(t, nil, func(m *Main) { m.Model = model })
	go func() {
		defer func() { _ = recover() }() // the request fails once the server is gone
		h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"hello"}`)
	}()
	<-model.started
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err := h.Close(ctx)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "abandoned 1 turns") || !strings.Contains(err.Error(), "resp_") {
		t.Fatalf("close: %v", err)
	}
	if took > 2500*time.Millisecond {
		t.Fatalf("close took %v with a 1s grace", took)
	}
	t.Logf("close returned after %v: %v", took.Round(time.Millisecond), err)
}

// procJSON sends a request to p and decodes its JSON answer.
func procJSON(t *testing.T, p *hermestest.Process, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, p.Base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hermestest.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// crashBackground: background responses running and queued when hermesd
// is SIGKILLed are failed with server_restarted at the next start (they
// used to stay in_progress and queued for ever), and cancelling one then
// answers 409 with the reason (it used to answer 200, changing nothing).
func crashBackground(t *testing.T, bin string) {
	home, ws := t.TempDir(), t.TempDir()
	p := hermestest.StartProcess(t, []string{bin}, home, ws)
	_, running := procJSON(t, p, "POST", "/v1/responses", `{"input":"/sleep 60s","background":true}`)
	runID, _ := running["id"].(string)
	// Polling: no event marks the turn starting.
	hermestest.Eventually(t, "the background response to start", func() bool {
		_, r := procJSON(t, p, "GET", "/v1/responses/"+runID, "")
		return r["status"] == "in_progress"
	})
	_, queued := procJSON(t, p, "POST", "/v1/responses",
		`{"input":"after it","background":true,"previous_response_id":"`+runID+`"}`)
	queuedID, _ := queued["id"].(string)
	if queued["status"] != "queued" {
		t.Fatalf("second background response: %v", queued)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Exited

	q := hermestest.StartProcess(t, []string{bin}, home, ws)
	for _, id := range []string{runID, queuedID} {
		st, r := procJSON(t, q, "GET", "/v1/responses/"+id, "")
		e, _ := r["error"].(map[string]any)
		if st != 200 || r["status"] != "failed" || e["code"] != "server_restarted" {
			t.Fatalf("%s after the crash: %d %v", id, st, r)
		}
		st, r = procJSON(t, q, "POST", "/v1/responses/"+id+"/cancel", "")
		e, _ = r["error"].(map[string]any)
		msg, _ := e["message"].(string)
		if st != 409 || !strings.Contains(msg, "is failed, not running") {
			t.Fatalf("cancel of %s after the crash: %d %v", id, st, r)
		}
	}
	_ = q.Cmd.Process.Signal(syscall.SIGTERM)
	if code := q.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("clean stop exited %d\n%s", code, q.Stderr)
	}
	if !strings.Contains(q.Stderr.String(), "server_restarted") || !strings.Contains(q.Stderr.String(), "count=2") {
		t.Fatalf("the restart does not log what it marked:\n%s", q.Stderr)
	}
}

// Cancel of a background response that already finished is 409 with the
// reason; a repeated cancel of a cancelled one answers it again (200).
func TestCancelNotRunningIsConflict(t *testing.T) {
	h := startHermes(t, nil)
	post := func(path, body string) (int, map[string]any) {
		resp, b := h.do(t, "POST", path, body)
		var out map[string]any
		if err := json.Unmarshal([]byte(b), &out); err != nil {
			t.Fatalf("%s: %v %s", path, err, b)
		}
		return resp.StatusCode, out
	}
	_, done := post("/v1/responses", `{"input":"quick","background":true}`)
	id, _ := done["id"].(string)
	// Polling: no event marks the record stored.
	hermestest.Eventually(t, "the background response to complete", func() bool {
		rec, err := h.runtime.Response(id)
		return err == nil && rec.Status == "completed"
	})
	st, r := post("/v1/responses/"+id+"/cancel", "")
	e, _ := r["error"].(map[string]any)
	if st != 409 || e["code"] != "conflict" || !strings.Contains(e["message"].(string), "is completed, not running") {
		t.Fatalf("cancel of a completed response: %d %v", st, r)
	}

	_, slow := post("/v1/responses", `{"input":"/sleep 60s","background":true}`)
	id, _ = slow["id"].(string)
	for i := 0; i < 2; i++ {
		st, r := post("/v1/responses/"+id+"/cancel", "")
		if st != 200 || r["status"] != "cancelled" {
			t.Fatalf("cancel %d of a running response: %d %v", i+1, st, r)
		}
	}
}
