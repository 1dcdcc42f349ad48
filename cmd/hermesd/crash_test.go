package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// TestCrash runs the real binary as a subprocess: built once, shared by
// the subtests.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds, kills and signals a hermesd process")
	}
	bin := hermestest.Build(t)
	t.Run("SIGKILLLosesNoAcknowledgedResponse", func(t *testing.T) { crashSIGKILL(t, bin) })
	t.Run("SIGTERMDrainsStream", func(t *testing.T) { crashSIGTERM(t, bin) })
	t.Run("SIGTERMBoundedWhenStuck", func(t *testing.T) { crashSIGTERMStuck(t, bin) })
	t.Run("BackgroundAfterCrash", func(t *testing.T) { crashBackground(t, bin) })
}

// respond posts a /v1/responses turn to p and returns the response id on 200.
func respond(p *hermestest.Process, input, previous string, store bool) (string, int, error) {
	body, _ := json.Marshal(map[string]any{"input": input, "previous_response_id": previous, "store": store})
	resp, err := hermestest.HTTP.Post(p.Base+"/v1/responses", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", resp.StatusCode, err
	}
	var r struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if resp.StatusCode != 200 {
		return "", resp.StatusCode, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "completed" {
		return "", resp.StatusCode, fmt.Errorf("bad response %s", b)
	}
	return r.ID, 200, nil
}

// crashSIGKILL: chained writes from several
// clients, SIGKILL at a random moment, restart on the same home: every
// response whose 200 reached a client can be read and continued.
func crashSIGKILL(t *testing.T, bin string) {
	home, ws := t.TempDir(), t.TempDir()
	var acked []string
	for round := 0; round < 3; round++ {
		p := hermestest.StartProcess(t, []string{bin}, home, ws)
		var mu sync.Mutex
		progress := make(chan struct{}, 1024)
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				prev := ""
				for i := 0; ; i++ {
					id, _, err := respond(p, fmt.Sprintf("round %d writer %d turn %d", round, w, i), prev, true)
					if err != nil {
						return // the server died under us: that turn was never acknowledged
					}
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					prev = id
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}(w)
		}
		// Kill once some turns are through, after a random extra moment.
		for i := 0; i < 5; i++ {
			select {
			case <-progress:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: no progress\n%s", round, p.Stderr)
			}
		}
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond) // the random kill moment (not synchronisation)
		if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		<-p.Exited

		q := hermestest.StartProcess(t, []string{bin}, home, ws)
		mu.Lock()
		ids := append([]string(nil), acked...)
		mu.Unlock()
		for _, id := range ids {
			resp, err := hermestest.HTTP.Get(q.Base + "/v1/responses/" + id)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"completed"`) {
				t.Fatalf("round %d: acknowledged %s lost after SIGKILL: %d %s", round, id, resp.StatusCode, b)
			}
			if _, _, err := respond(q, "continue", id, false); err != nil {
				t.Fatalf("round %d: acknowledged %s cannot be continued: %v", round, id, err)
			}
		}
		t.Logf("round %d: %d acknowledged responses survive", round, len(ids))
		_ = q.Cmd.Process.Signal(syscall.SIGTERM)
		if code := q.WaitExit(t, 10*time.Second); code != 0 {
			t.Fatalf("clean stop exited %d\n%s", code, q.Stderr)
		}
	}
}

// openStream starts a streaming chat turn and returns its reader once the
// first frame has arrived.
func openStream(t *testing.T, p *hermestest.Process, content string) (*http.Response, *bufio.Reader) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"stream": true, "messages": []any{map[string]any{"role": "user", "content": content}}})
	resp, err := hermestest.HTTP.Post(p.Base+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return resp, r
}

// crashSIGTERM: SIGTERM during a stream lets it finish
// with [DONE] and the process exits 0; a second SIGTERM exits at once; the
// store reopens cleanly either way.
func crashSIGTERM(t *testing.T, bin string) {
	home, ws := t.TempDir(), t.TempDir()
	p := hermestest.StartProcess(t, []string{bin}, home, ws)
	id, _, err := respond(p, "remember me", "", true)
	if err != nil {
		t.Fatal(err)
	}

	resp, r := openStream(t, p, "/tokens 20\n/delay 30ms")
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	resp.Body.Close()
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") || !strings.Contains(string(rest), "tok20") {
		t.Fatalf("stream cut by SIGTERM: %v %q", err, rest)
	}
	if code := p.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("graceful stop exited %d\n%s", code, p.Stderr)
	}

	// A second SIGTERM while a long turn drains: out at once.
	p = hermestest.StartProcess(t, []string{bin}, home, ws, "API_SERVER_SHUTDOWN_GRACE=30s")
	resp, _ = openStream(t, p, "/tokens 5\n/delay 10s")
	defer resp.Body.Close()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first signal must be handled before the second is sent: wait
	// for the server to stop answering new connections.
	// Polling: no event marks the listener closing.
	hermestest.Eventually(t, "hermesd to stop accepting after SIGTERM", func() bool {
		hr, err := hermestest.HTTP.Get(p.Base + "/health")
		if err == nil {
			hr.Body.Close()
		}
		return err != nil
	})
	start := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.WaitExit(t, 3*time.Second)
	if code == 0 || time.Since(start) > 2*time.Second {
		t.Fatalf("second SIGTERM: exit %d after %v", code, time.Since(start))
	}

	// The store reopens cleanly and still holds what was committed.
	q := hermestest.StartProcess(t, []string{bin}, home, ws)
	gr, err := hermestest.HTTP.Get(q.Base + "/v1/responses/" + id)
	if err != nil {
		t.Fatal(err)
	}
	gr.Body.Close()
	if gr.StatusCode != 200 {
		t.Fatalf("after the forced exit, %s: status %d\n%s", id, gr.StatusCode, q.Stderr)
	}
	if _, _, err := respond(q, "and again", id, true); err != nil {
		t.Fatalf("continue after reopen: %v", err)
	}
}
