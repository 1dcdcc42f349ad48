package hermestest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build compiles hermesd into a temporary directory of t and returns the
// binary's path. Build once per test and share it: a build takes seconds.
func Build(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hermesd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hermesd/hermesd/cmd/hermesd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Process is a whole hermesd running as a child process.
type Process struct {
	Cmd    *exec.Cmd
	Base   string      // http://127.0.0.1:port
	Stderr *SyncBuffer // read while the process still writes it
	Exited chan struct{}
	Err    error // cmd.Wait's result, valid once Exited is closed
}

// HTTP is a client for Process tests: no keep-alive, so a connection never
// outlives the process it was made to, and a bounded wait.
var HTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// StartProcess runs argv (the binary, or a command line that runs it, under
// prlimit for example) with home and ws as HERMES_HOME and HERMES_WORKSPACE
// on a free loopback port, and waits until it answers /health. The
// caller's OPENAI_, API_SERVER_ and HERMES_ variables are not passed on;
// extra (NAME=value) adds settings. The process is killed when the test
// ends.
func StartProcess(t testing.TB, argv []string, home, ws string, extra ...string) *Process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &Process{Base: fmt.Sprintf("http://127.0.0.1:%d", port), Stderr: &SyncBuffer{}, Exited: make(chan struct{})}
	p.Cmd = exec.Command(argv[0], argv[1:]...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENAI_") && !strings.HasPrefix(kv, "API_SERVER_") && !strings.HasPrefix(kv, "HERMES_") {
			env = append(env, kv)
		}
	}
	p.Cmd.Env = append(env, "HERMES_HOME="+home, "HERMES_WORKSPACE="+ws, "API_SERVER_HOST=127.0.0.1",
		fmt.Sprintf("API_SERVER_PORT=%d", port), "API_SERVER_MAX_STORED_RESPONSES=100000", "HERMES_LOG_LEVEL=warn")
	p.Cmd.Env = append(p.Cmd.Env, extra...)
	p.Cmd.Stderr = p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Err = p.Cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.Exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := HTTP.Get(p.Base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.Exited:
			t.Fatalf("hermesd exited at start: %v\n%s", p.Err, p.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hermesd did not come up: %v\n%s", err, p.Stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling: nothing signals readiness
	}
}

// WaitExit waits up to d for the process to exit and returns its code.
func (p *Process) WaitExit(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.Exited:
	case <-time.After(d):
		t.Fatalf("hermesd did not exit within %v\n%s", d, p.Stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.Err, &ee) {
		return ee.ExitCode()
	}
	if p.Err != nil {
		t.Fatalf("wait: %v", p.Err)
	}
	return 0
}

// SyncBuffer is a bytes.Buffer safe for one writer (a process, a logger)
// and the test reading it meanwhile.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Bytes returns a copy of what was written so far.
func (s *SyncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

func (s *SyncBuffer) String() string { return string(s.Bytes()) }
