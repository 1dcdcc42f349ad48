package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// buildHermesd builds ./cmd/hermesd into a temp directory of t.
func buildHermesd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hermesd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestCrash runs the real binary as a subprocess: built once, shared by
// the subtests.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds, kills and signals a hermesd process")
	}
	bin := buildHermesd(t)
	t.Run("SIGKILLLosesNoAcknowledgedResponse", func(t *testing.T) { crashSIGKILL(t, bin) })
	t.Run("SIGTERMDrainsStream", func(t *testing.T) { crashSIGTERM(t, bin) })
	t.Run("SIGTERMBoundedWhenStuck", func(t *testing.T) { crashSIGTERMStuck(t, bin) })
	t.Run("BackgroundAfterCrash", func(t *testing.T) { crashBackground(t, bin) })
}

// proc is a hermesd process.
type proc struct {
	cmd    *exec.Cmd
	base   string      // http://127.0.0.1:port
	stderr *syncBuffer // read while the process still writes it
	exited chan struct{}
	err    error // cmd.Wait's result, valid once exited is closed
}

var crashClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// startProc starts the binary on home and a free port and waits until it
// answers /health.
func startProc(t *testing.T, bin, home, ws string, extra ...string) *proc {
	t.Helper()
	return startProcArgv(t, []string{bin}, home, ws, extra...)
}

// startProcArgv is startProc for a command line that runs the binary
// (under prlimit, for example).
func startProcArgv(t *testing.T, argv []string, home, ws string, extra ...string) *proc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &proc{base: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENAI_") && !strings.HasPrefix(kv, "API_SERVER_") && !strings.HasPrefix(kv, "HERMES_") {
			env = append(env, kv)
		}
	}
	p.cmd.Env = append(env, "HERMES_HOME="+home, "HERMES_WORKSPACE="+ws, "API_SERVER_HOST=127.0.0.1",
		fmt.Sprintf("API_SERVER_PORT=%d", port), "API_SERVER_MAX_STORED_RESPONSES=100000", "HERMES_LOG_LEVEL=warn")
	p.cmd.Env = append(p.cmd.Env, extra...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := crashClient.Get(p.base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("hermesd exited at start: %v\n%s", p.err, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hermesd did not come up: %v\n%s", err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling: nothing signals readiness
	}
}

// waitExit waits up to d for the process to exit and returns its code.
func (p *proc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("hermesd did not exit within %v\n%s", d, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// respond posts a /v1/responses turn and returns the response id on 200.
func (p *proc) respond(input, previous string, store bool) (string, int, error) {
	body, _ := json.Marshal(map[string]any{"input": input, "previous_response_id": previous, "store": store})
	resp, err := crashClient.Post(p.base+"/v1/responses", "application/json", bytes.NewReader(body))
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
		p := startProc(t, bin, home, ws)
		var mu sync.Mutex
		progress := make(chan struct{}, 1024)
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				prev := ""
				for i := 0; ; i++ {
					id, _, err := p.respond(fmt.Sprintf("round %d writer %d turn %d", round, w, i), prev, true)
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
				t.Fatalf("round %d: no progress\n%s", round, p.stderr)
			}
		}
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond) // the random kill moment (not synchronisation)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		<-p.exited

		q := startProc(t, bin, home, ws)
		mu.Lock()
		ids := append([]string(nil), acked...)
		mu.Unlock()
		for _, id := range ids {
			resp, err := crashClient.Get(q.base + "/v1/responses/" + id)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"completed"`) {
				t.Fatalf("round %d: acknowledged %s lost after SIGKILL: %d %s", round, id, resp.StatusCode, b)
			}
			if _, _, err := q.respond("continue", id, false); err != nil {
				t.Fatalf("round %d: acknowledged %s cannot be continued: %v", round, id, err)
			}
		}
		t.Logf("round %d: %d acknowledged responses survive", round, len(ids))
		_ = q.cmd.Process.Signal(syscall.SIGTERM)
		if code := q.waitExit(t, 10*time.Second); code != 0 {
			t.Fatalf("clean stop exited %d\n%s", code, q.stderr)
		}
	}
}

// openStream starts a streaming chat turn and returns its reader once the
// first frame has arrived.
func openStream(t *testing.T, p *proc, content string) (*http.Response, *bufio.Reader) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"stream": true, "messages": []any{map[string]any{"role": "user", "content": content}}})
	resp, err := crashClient.Post(p.base+"/v1/chat/completions", "application/json", bytes.NewReader(body))
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
	p := startProc(t, bin, home, ws)
	id, _, err := p.respond("remember me", "", true)
	if err != nil {
		t.Fatal(err)
	}

	resp, r := openStream(t, p, "/tokens 20\n/delay 30ms")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	resp.Body.Close()
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") || !strings.Contains(string(rest), "tok20") {
		t.Fatalf("stream cut by SIGTERM: %v %q", err, rest)
	}
	if code := p.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("graceful stop exited %d\n%s", code, p.stderr)
	}

	// A second SIGTERM while a long turn drains: out at once.
	p = startProc(t, bin, home, ws, "API_SERVER_SHUTDOWN_GRACE=30s")
	resp, _ = openStream(t, p, "/tokens 5\n/delay 10s")
	defer resp.Body.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first signal must be handled before the second is sent: wait
	// for the server to stop answering new connections.
	// Polling: no event marks the listener closing.
	hermestest.Eventually(t, "hermesd to stop accepting after SIGTERM", func() bool {
		hr, err := crashClient.Get(p.base + "/health")
		if err == nil {
			hr.Body.Close()
		}
		return err != nil
	})
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.waitExit(t, 3*time.Second)
	if code == 0 || time.Since(start) > 2*time.Second {
		t.Fatalf("second SIGTERM: exit %d after %v", code, time.Since(start))
	}

	// The store reopens cleanly and still holds what was committed.
	q := startProc(t, bin, home, ws)
	gr, err := crashClient.Get(q.base + "/v1/responses/" + id)
	if err != nil {
		t.Fatal(err)
	}
	gr.Body.Close()
	if gr.StatusCode != 200 {
		t.Fatalf("after the forced exit, %s: status %d\n%s", id, gr.StatusCode, q.stderr)
	}
	if _, _, err := q.respond("and again", id, true); err != nil {
		t.Fatalf("continue after reopen: %v", err)
	}
}
