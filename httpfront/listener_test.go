package httpfront

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
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
	stderrPipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines, logLines := scanLines(stdout), scanLines(stderrPipe)
	var log []string // the child's log so far, for failure messages
	next := func(from <-chan string, prefix string) string {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-from:
				if !ok {
					t.Fatalf("child ended before %q\n%s", prefix, strings.Join(log, "\n"))
				}
				if from == logLines {
					log = append(log, l)
					if !strings.Contains(l, prefix) {
						continue
					}
					return l
				}
				if !strings.HasPrefix(l, prefix) {
					t.Fatalf("child said %q, want %q…", l, prefix)
				}
				return strings.TrimPrefix(l, prefix)
			case <-timeout:
				t.Fatalf("child did not say %q\n%s", prefix, strings.Join(log, "\n"))
			}
		}
	}
	addr := next(lines, "addr ")
	next(lines, "full")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second) // completes in the kernel's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Before the fix the child's log said "serve returned" here, and nothing
	// more: the wait below timed out.
	if l := next(logLines, "cannot accept connections"); !strings.Contains(l, "too many open files") || !strings.Contains(l, "level=ERROR") {
		t.Fatalf("the accept error is not logged at error with its cause: %s", l)
	}
	fmt.Fprintln(stdin, "free")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer once descriptors were freed: %v\n%s", err, strings.Join(log, "\n"))
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	stdin.Close()
	for l := range logLines { // to the end, so Wait finds the pipes drained
		log = append(log, l)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, strings.Join(log, "\n"))
	}
}

// scanLines sends r's lines until it ends.
func scanLines(r io.Reader) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
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
