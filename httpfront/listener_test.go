package httpfront

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const emfileChildEnv = "HERMES_TEST_EMFILE_CHILD"

// TestServeSurvivesEMFILE runs a server in a child process whose descriptor
// limit is 64, fills every descriptor, and connects: accept fails with
// "too many open files". fasthttp's Serve used to return on that and leave
// the process deaf; now the accept is retried, and once descriptors are
// freed the waiting connection is served.
func TestServeSurvivesEMFILE(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "1" {
		emfileChild()
		return
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed: cannot lower the child's descriptor limit")
	}
	cmd := exec.Command(prlimit, "--nofile=64:64", os.Args[0], "-test.run=^TestServeSurvivesEMFILE$")
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok || !strings.HasPrefix(l, prefix) {
				t.Fatalf("child said %q, want %q…\n%s", l, prefix, stderr.String())
			}
			return strings.TrimPrefix(l, prefix)
		case <-time.After(20 * time.Second):
			t.Fatalf("child did not say %q\n%s", prefix, stderr.String())
		}
		return ""
	}
	addr := next("addr ")
	next("full")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second) // completes in the kernel's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "cannot accept connections; retrying") {
		if strings.Contains(stderr.String(), "serve returned") || time.Now().After(deadline) {
			t.Fatalf("no retried accept error:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the child's log: nothing signals it
	}
	if !strings.Contains(stderr.String(), "too many open files") || !strings.Contains(stderr.String(), "level=ERROR") {
		t.Fatalf("the accept error is not logged at error with its cause:\n%s", stderr.String())
	}
	fmt.Fprintln(stdin, "free")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer once descriptors were freed: %v\n%s", err, stderr.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
}

// emfileChild serves /health, then opens descriptors until none is left,
// frees them when told to, and exits when stdin closes.
func emfileChild() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen", err)
		os.Exit(2)
	}
	s := New(Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	go func() {
		err := s.Serve(ln)
		fmt.Fprintln(os.Stderr, "serve returned:", err)
		os.Exit(3)
	}()
	fmt.Println("addr", ln.Addr())
	var filler []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			fmt.Println("open", err)
			os.Exit(2)
		}
		filler = append(filler, f)
	}
	fmt.Println("full")
	in := bufio.NewReader(os.Stdin)
	if l, _ := in.ReadString('\n'); l == "free\n" {
		for _, f := range filler {
			f.Close()
		}
	}
	_, _ = io.Copy(io.Discard, in) // the test's end closes stdin
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
