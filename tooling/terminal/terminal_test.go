//go:build linux

package terminal

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/tooling"
)

func newTool(t *testing.T, opts Options) *Tool {
	t.Helper()
	if opts.Workspace == "" {
		opts.Workspace = t.TempDir()
	}
	return New(opts)
}

// run calls the tool and decodes its result, checking its exact shape.
func run(t *testing.T, tool *Tool, ctx context.Context, args string) Result {
	t.Helper()
	out := tool.Run(ctx, tooling.Call{ID: "call_1", Args: []byte(args)})
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("result is not JSON: %v: %s", err, out)
	}
	if len(raw) != 3 || raw["output"] == nil || raw["exit_code"] == nil || raw["error"] == nil {
		t.Fatalf("result keys: %s", out)
	}
	var r Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func cmdArgs(command string) string {
	b, _ := json.Marshal(map[string]string{"command": command})
	return string(b)
}

func errText(r Result) string {
	if r.Error == nil {
		return ""
	}
	return *r.Error
}

func TestRunBasics(t *testing.T) {
	// Not parallel: it sets the environment.
	ws := t.TempDir()
	// Approve: the signal row kills its own shell by a pid found at run
	// time, which needs approval ($$ itself is blocked).
	tool := newTool(t, Options{Workspace: ws, Approve: "all"})
	tests := []struct {
		name    string
		command string
		output  string
		code    int
	}{
		{"pwd is the workspace", "pwd", ws + "\n", 0},
		{"exit code", "echo out; exit 3", "out\n", 3},
		{"false", "false", "", 1},
		{"stderr merged in order", "echo one; echo two >&2; echo three", "one\ntwo\nthree\n", 0},
		{"stdin is empty", "cat; echo end", "end\n", 0},
		{"killed by a signal", "kill -TERM $(sh -c 'echo $PPID')", "", 128 + int(syscall.SIGTERM)},
		{"extra env", "echo $HERMES_TEST_VAR", "\n", 0},
		{"api key not inherited", "echo \"[$API_SERVER_KEY]\"", "[]\n", 0},
		{"redacted", "echo OPENAI_API_KEY=abc123; echo sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "OPENAI_API_KEY=[REDACTED]\nsk-proj-[REDACTED]\n", 0},
	}
	t.Setenv("API_SERVER_KEY", "server-secret")
	for _, tt := range tests {
		r := run(t, tool, context.Background(), cmdArgs(tt.command))
		if r.Output != tt.output || r.ExitCode != tt.code || r.Error != nil {
			t.Errorf("%s: %q → output %q code %d error %q; want %q %d null", tt.name, tt.command, r.Output, r.ExitCode, errText(r), tt.output, tt.code)
		}
	}
}

func TestRunEnv(t *testing.T) {
	t.Parallel()
	tool := newTool(t, Options{Env: []string{"HERMES_TEST_VAR=hello", "PAGER=less"}})
	r := run(t, tool, context.Background(), cmdArgs("echo $HERMES_TEST_VAR $PAGER $GIT_TERMINAL_PROMPT"))
	if r.Output != "hello less 0\n" {
		t.Fatalf("output %q", r.Output)
	}
}

func TestRunBadArguments(t *testing.T) {
	t.Parallel()
	tool := newTool(t, Options{})
	for _, args := range []string{`{}`, `{"command": "   "}`, `not json`, `{"command": "ls", "timeout": "soon"}`} {
		r := run(t, tool, context.Background(), args)
		if r.ExitCode != ExitRefused || r.Error == nil || r.Output != "" {
			t.Errorf("%s: %+v", args, r)
		}
	}
}

func TestRunMissingWorkspace(t *testing.T) {
	t.Parallel()
	tool := New(Options{Workspace: filepath.Join(t.TempDir(), "gone")})
	r := run(t, tool, context.Background(), cmdArgs("pwd"))
	if r.ExitCode != ExitRefused || !strings.Contains(errText(r), "does not exist") {
		t.Fatalf("%+v", r)
	}
}

func TestTimeoutArgument(t *testing.T) {
	tool := New(Options{DefaultTimeout: 30 * time.Second, MaxTimeout: 60 * time.Second})
	tests := []struct {
		raw  string
		want time.Duration
	}{
		{``, 30 * time.Second},
		{`null`, 30 * time.Second},
		{`0`, 30 * time.Second},
		{`-5`, 30 * time.Second},
		{`10`, 10 * time.Second},
		{`"10"`, 10 * time.Second},
		{`2.5`, 2500 * time.Millisecond},
		{`60`, 60 * time.Second},
		{`3600`, 60 * time.Second},
	}
	for _, tt := range tests {
		got, err := tool.timeout(json.RawMessage(tt.raw))
		if err != nil || got != tt.want {
			t.Errorf("timeout(%s) = %v, %v; want %v", tt.raw, got, err, tt.want)
		}
	}
}

// exitsWithin reports whether process pid has exited (a zombie counts: a
// container's init may never reap it) or exits within d. A killed process
// closes its files a moment before it becomes a zombie, so this waits for
// the kernel's exit notification on a pidfd instead of looking once.
func exitsWithin(t *testing.T, pid int, d time.Duration) bool {
	t.Helper()
	const sysPidfdOpen = 434 // the same on every Linux architecture
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno == syscall.ESRCH {
		return true
	}
	if errno != 0 {
		t.Fatalf("pidfd_open: %v", errno)
	}
	defer syscall.Close(int(fd))
	var set syscall.FdSet
	set.Bits[fd/64] |= 1 << (fd % 64)
	tv := syscall.NsecToTimeval(d.Nanoseconds())
	for {
		n, err := syscall.Select(int(fd)+1, &set, nil, nil, &tv)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("select: %v", err)
		}
		return n > 0 // a pidfd is readable once its process has exited
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	tool := newTool(t, Options{Workspace: ws})
	start := time.Now()
	r := run(t, tool, context.Background(), `{"command": "echo started; sleep 100 & echo $! > child.pid; wait", "timeout": 1}`)
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("took %v", elapsed)
	}
	if r.ExitCode != ExitTimeout || errText(r) != "command timed out after 1s" || r.Output != "started\n" {
		t.Fatalf("%+v (%s)", r, errText(r))
	}
	if pid := readPid(t, filepath.Join(ws, "child.pid")); !exitsWithin(t, pid, 5*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("background child %d survived the timeout", pid)
	}
}

func TestRunCancelKillsGroup(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	fifo := filepath.Join(ws, "pid.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tool := newTool(t, Options{Workspace: ws})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pids := make(chan int, 1)
	go func() {
		// Opening blocks until the command opens the fifo to write: the
		// child is running once the pid arrives.
		b, err := os.ReadFile(fifo)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			pid = -1
		}
		pids <- pid
		cancel()
	}()
	r := run(t, tool, ctx, cmdArgs("sleep 100 & echo $! > pid.fifo; wait"))
	pid := <-pids
	if pid <= 0 {
		t.Fatal("no pid from the command")
	}
	if r.ExitCode != ExitCancelled || !strings.HasPrefix(errText(r), "command cancelled") {
		t.Fatalf("%+v (%s)", r, errText(r))
	}
	if !exitsWithin(t, pid, 5*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("child %d survived cancellation", pid)
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	tool := newTool(t, Options{Workspace: ws})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := run(t, tool, ctx, cmdArgs("touch ran"))
	if r.ExitCode != ExitCancelled {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(ws, "ran")); err == nil {
		t.Fatal("command ran after cancellation")
	}
}

func TestRunBackgroundChildDoesNotHang(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	tool := newTool(t, Options{Workspace: ws})
	start := time.Now()
	r := run(t, tool, context.Background(), cmdArgs("sleep 30 & echo $! > bg.pid; echo spawned"))
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("waited %v for a background child", elapsed)
	}
	if r.ExitCode != 0 || r.Error != nil || r.Output != "spawned\n" {
		t.Fatalf("%+v", r)
	}
	if pid := readPid(t, filepath.Join(ws, "bg.pid")); !exitsWithin(t, pid, 5*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("background child %d holding the pipe was left running", pid)
	}
}

// alive lists the live (not zombie) processes whose command line holds
// arg: each test sleeps for its own odd duration to find its processes.
func alive(arg string) []int {
	var pids []int
	for pid, p := range readProcs() {
		if p.zombie {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err == nil && strings.Contains(string(b), "\x00"+arg+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// gone waits, bounded, until no live process has arg on its command line.
func gone(t *testing.T, arg string) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := alive(arg)
		if len(pids) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return false
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling the process table, not synchronising
	}
}

// TestRunLeavesNothingRunning: whatever a command starts dies with it —
// in the background, under nohup, in a new session, with its environment
// cleared, double-forked — within the call, and the orphans reparented to
// the server (a subreaper in TestMain, as hermesd is) are reaped.
//
// Not parallel: a process that clears its environment and leaves its
// session at once is told from a background command's only by its start
// time, and the background tests run theirs (see sweepOrphans).
func TestRunLeavesNothingRunning(t *testing.T) {
	tool := newTool(t, Options{})
	for i, form := range []string{
		"sleep %s >/dev/null 2>&1 &",
		"nohup sleep %s >/dev/null 2>&1 &",
		"setsid sleep %s",
		"setsid sleep %s >/dev/null 2>&1 &",
		"setsid env -i sleep %s >/dev/null 2>&1 &",
		"(sleep %s &) >/dev/null 2>&1",
		"sh -c 'setsid sh -c \"sleep %s >/dev/null 2>&1 &\" &'; sleep 1",
		"sleep %s & exit 3",
	} {
		arg := fmt.Sprintf("1001.%d", i)
		cmd := strings.ReplaceAll(form, "%s", arg)
		start := time.Now()
		// setsid in the foreground does not fork: the shell waits for it
		// until the timeout, which must take it down all the same.
		b, _ := json.Marshal(map[string]any{"command": cmd, "timeout": 2})
		r := run(t, tool, context.Background(), string(b))
		if r.Error != nil && r.ExitCode != ExitTimeout || time.Since(start) > 8*time.Second {
			t.Errorf("%q: %+v %s after %v", cmd, r, errText(r), time.Since(start))
		}
		if !gone(t, arg) {
			t.Errorf("%q left a process running", cmd)
		}
	}
	// Orphans the kill made are reaped: no zombie children of ours stay.
	hermestest.Eventually(t, "zombie children reaped", func() bool {
		for _, p := range readProcs() {
			if p.ppid == os.Getpid() && p.zombie {
				return false
			}
		}
		return true
	})
}

// TestRunTimeoutLeavesNothingRunning: a command killed at its timeout
// takes a new-session child with it.
func TestRunTimeoutLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	tool := newTool(t, Options{})
	r := run(t, tool, context.Background(), `{"command": "setsid sleep 1002.1 >/dev/null 2>&1 & sleep 1002.2", "timeout": 0.5}`)
	if r.ExitCode != ExitTimeout {
		t.Fatalf("%+v", r)
	}
	if !gone(t, "1002.1") || !gone(t, "1002.2") {
		t.Fatal("a process outlived the timeout")
	}
}

// bgResult decodes a result that may carry a pid.
func bgRun(t *testing.T, tool *Tool, args string) Result {
	t.Helper()
	var r Result
	out := tool.Run(context.Background(), tooling.Call{ID: "call_1", Args: []byte(args)})
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return r
}

// TestRunBackground: background: true keeps a command running past the
// call, says its pid, lists it, and Close stops it and what it started.
func TestRunBackground(t *testing.T) {
	t.Parallel()
	tool := newTool(t, Options{})
	tool.window = 300 * time.Millisecond
	r := bgRun(t, tool, `{"command": "echo started; sleep 1003.1 >/dev/null 2>&1 & exec sleep 1003.2", "background": true}`)
	if r.Pid <= 0 || r.ExitCode != 0 || r.Error != nil || !strings.HasPrefix(r.Output, "started\n[running in the background as pid "+strconv.Itoa(r.Pid)) {
		t.Fatalf("%+v", r)
	}
	if len(alive("1003.1")) != 1 || len(alive("1003.2")) != 1 {
		t.Fatal("the background command does not run")
	}
	// A second one lists the first.
	r2 := bgRun(t, tool, `{"command": "exec sleep 1003.3", "background": true}`)
	if !strings.Contains(r2.Output, fmt.Sprintf("pid %d (echo started; sleep 1003.1", r.Pid)) || !strings.Contains(r2.Output, fmt.Sprintf("pid %d (exec sleep 1003.3)", r2.Pid)) {
		t.Fatalf("not listed: %+v", r2)
	}
	// One that ends within the window answers like any command.
	r3 := bgRun(t, tool, `{"command": "echo quick; exit 4", "background": true}`)
	if r3.Pid != 0 || r3.ExitCode != 4 || r3.Output != "quick\n" {
		t.Fatalf("%+v", r3)
	}
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"1003.1", "1003.2", "1003.3"} {
		if !gone(t, arg) {
			t.Fatalf("sleep %s survived Close", arg)
		}
	}
	if r := bgRun(t, tool, `{"command": "sleep 1", "background": true}`); r.ExitCode != ExitRefused || !strings.Contains(errText(r), "stopping") {
		t.Fatalf("after Close: %+v", r)
	}
}

// TestRunBackgroundHostile: background takes a boolean only, and at most
// MaxBackground commands run at once.
func TestRunBackgroundHostile(t *testing.T) {
	t.Parallel()
	tool := newTool(t, Options{})
	tool.window = 50 * time.Millisecond
	defer tool.Close()
	for _, args := range []string{`{"command": "ls", "background": "yes"}`, `{"command": "ls", "background": 1}`, `{"command": "ls", "background": [true]}`} {
		if r := bgRun(t, tool, args); r.ExitCode != ExitRefused || r.Error == nil {
			t.Errorf("%s: %+v", args, r)
		}
	}
	// Twice the cap at once: exactly the cap runs, the rest is refused.
	results := make(chan Result, 2*MaxBackground)
	for i := range 2 * MaxBackground {
		go func() {
			var r Result
			out := tool.Run(context.Background(), tooling.Call{ID: "call_1", Args: []byte(fmt.Sprintf(`{"command": "exec sleep 1004.%d", "background": true}`, i))})
			_ = json.Unmarshal([]byte(out), &r)
			results <- r
		}()
	}
	started, refused := 0, 0
	for range 2 * MaxBackground {
		switch r := <-results; {
		case r.Pid > 0:
			started++
		case r.ExitCode == ExitRefused && strings.Contains(errText(r), "that is the most allowed"):
			refused++
		default:
			t.Errorf("unexpected %+v", r)
		}
	}
	if started != MaxBackground || refused != MaxBackground {
		t.Fatalf("%d started, %d refused; want %d each", started, refused, MaxBackground)
	}
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * MaxBackground {
		if !gone(t, fmt.Sprintf("1004.%d", i)) {
			t.Fatalf("sleep 1004.%d survived Close", i)
		}
	}
}

func TestRunTruncation(t *testing.T) {
	t.Parallel()
	tool := newTool(t, Options{MaxOutput: 100})
	r := run(t, tool, context.Background(), cmdArgs("seq 1 1000"))
	var full strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&full, "%d\n", i)
	}
	all := full.String()
	want := all[:40] + fmt.Sprintf("\n\n... [output truncated: %d characters omitted] ...\n\n", len(all)-100) + all[len(all)-60:]
	if r.Output != want || r.ExitCode != 0 {
		t.Fatalf("got %q\nwant %q", r.Output, want)
	}
	// At the limit nothing is cut.
	r = run(t, tool, context.Background(), cmdArgs("printf '%0100d' 0"))
	if r.Output != strings.Repeat("0", 100) {
		t.Fatalf("100 characters: %q", r.Output)
	}
}

func TestCaptureRunes(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"fits", 10, []string{"héllo", "wörld"}, "héllowörld"},
		{"split multibyte head and tail", 10, []string{"ααααα", "ββββββ", "γγγγγγ"},
			"αααα\n\n... [output truncated: 7 characters omitted] ...\n\nγγγγγγ"},
		{"rune split across writes", 5, []string{"ab\xe2", "\x82\xac", "cdefgh€"},
			"ab\n\n... [output truncated: 5 characters omitted] ...\n\ngh€"},
		{"head ends in a split rune", 5, []string{"a\xe2", "\x82\xacbcdef"},
			"a€\n\n... [output truncated: 2 characters omitted] ...\n\ndef"},
		{"empty", 10, nil, ""},
	}
	for _, tt := range tests {
		c := newCapture(tt.max)
		for _, w := range tt.writes {
			c.Write([]byte(w))
		}
		if got := c.String(); got != tt.want {
			t.Errorf("%s: got %q want %q", tt.name, got, tt.want)
		}
	}
}

func TestRunHugeOutputBounded(t *testing.T) {
	// Not parallel: it measures allocation.
	tool := newTool(t, Options{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	// 50 MB keeps the test quick under -race, which slows the byte
	// counting twentyfold; without it 200 MB takes about 0.2s.
	const size = 50_000_000
	r := run(t, tool, context.Background(), cmdArgs(fmt.Sprintf("yes | head -c %d", size)))
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if r.ExitCode != 0 || r.Error != nil {
		t.Fatalf("%+v", r)
	}
	wantMarker := fmt.Sprintf("[output truncated: %d characters omitted]", size-MaxOutput)
	if !strings.Contains(r.Output, wantMarker) || !strings.HasPrefix(r.Output, "y\ny\n") || !strings.HasSuffix(r.Output, "y\ny\n") {
		t.Fatalf("output head %q tail %q", r.Output[:20], r.Output[len(r.Output)-20:])
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("allocated %d MB for %d MB of output", alloc>>20, size/1_000_000)
	}
	t.Logf("%d MB of output in %v, %d KB allocated", size/1_000_000, elapsed, (after.TotalAlloc-before.TotalAlloc)>>10)
}

func TestRunRefusals(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	strict := newTool(t, Options{Workspace: ws})
	lax := newTool(t, Options{Workspace: ws, Approve: "all"})

	// Needs approval: refused by default, with words a model stops at.
	r := run(t, strict, context.Background(), cmdArgs("mkdir -p build/x && rm -rf build"))
	if r.ExitCode != ExitRefused || r.Output != "" || !strings.HasPrefix(errText(r), "NEEDS APPROVAL: it deletes files recursively") ||
		!strings.Contains(errText(r), "it was not run") || !strings.Contains(errText(r), "HERMES_TERMINAL_APPROVE=all") {
		t.Fatalf("strict: %+v %s", r, errText(r))
	}
	if _, err := os.Stat(filepath.Join(ws, "build")); err == nil {
		t.Fatal("refused command ran")
	}
	// ... and run with Approve=all.
	r = run(t, lax, context.Background(), cmdArgs("mkdir -p build/x && rm -rf build && echo gone"))
	if r.ExitCode != 0 || r.Output != "gone\n" || r.Error != nil {
		t.Fatalf("approved: %+v %s", r, errText(r))
	}
	// Blocked stays blocked.
	for _, tool := range []*Tool{strict, lax} {
		r = run(t, tool, context.Background(), cmdArgs("touch marker; rm -rf ~"))
		if r.ExitCode != ExitRefused || !strings.HasPrefix(errText(r), "BLOCKED: it recursively deletes ~") ||
			!strings.Contains(errText(r), "never run by this server") {
			t.Fatalf("blocked: %+v %s", r, errText(r))
		}
	}
	if _, err := os.Stat(filepath.Join(ws, "marker")); err == nil {
		t.Fatal("part of a blocked command ran")
	}
}

func TestSpecLabelEmoji(t *testing.T) {
	tool := New(Options{})
	spec := tool.Spec()
	if spec.Name != "terminal" || tool.Emoji() != "💻" || spec.Description == "" {
		t.Fatalf("%+v", spec)
	}
	var schema struct {
		Type       string                     `json:"type"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal(spec.Parameters, &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Type != "object" || schema.Properties["command"] == nil || schema.Properties["timeout"] == nil ||
		len(schema.Required) != 1 || schema.Required[0] != "command" {
		t.Fatalf("schema %s", spec.Parameters)
	}

	long := strings.Repeat("x", 200)
	tests := []struct{ args, want string }{
		{cmdArgs("ls -la"), "ls -la"},
		{cmdArgs("  cd src\n  make\n"), "cd src …"},
		{cmdArgs(long), strings.Repeat("x", 79) + "…"},
		{cmdArgs("export OPENAI_API_KEY=abc123"), "export OPENAI_API_KEY=[REDACTED]"},
		{`{"command": 5}`, ""},
		{`garbage`, ""},
	}
	for _, tt := range tests {
		if got := tool.Label([]byte(tt.args)); got != tt.want {
			t.Errorf("Label(%s) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// fakeBin puts a fake rm and mv first on PATH for the tool: each records
// its arguments in the returned marker file instead of touching anything,
// so a guard test proves nothing ran by the file's absence.
func fakeBin(t *testing.T) (env []string, marker string) {
	t.Helper()
	dir := t.TempDir()
	marker = filepath.Join(dir, "ran")
	for _, name := range []string{"rm", "mv"} {
		script := "#!/bin/sh\necho " + name + " \"$@\" >> " + marker + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"PATH=" + dir + ":/usr/local/bin:/usr/bin:/bin"}, marker
}

// TestRunGuardBypassesRefused drives every bypass of issue 9 through the
// tool with real /bin/sh behind it: each is refused and the fake rm/mv
// never runs. The first command proves the fakes are the ones found.
func TestRunGuardBypassesRefused(t *testing.T) {
	t.Parallel()
	env, marker := fakeBin(t)
	tool := newTool(t, Options{Env: env})
	r := run(t, tool, context.Background(), cmdArgs("rm -f probe"))
	if b, err := os.ReadFile(marker); r.ExitCode != 0 || err != nil || string(b) != "rm -f probe\n" {
		t.Fatalf("the fake rm is not first on PATH: %+v %q %v", r, b, err)
	}
	os.Remove(marker)
	for _, cmd := range []string{
		"X=rm; $X -rf /",
		"$(echo rm) -rf /",
		"`echo rm` -rf /",
		"${RM:-rm} -rf /",
		"function f { rm -rf /; }; f",
		"sh <<< 'rm -rf /'",
		"echo 'rm -rf /' | sh",
		`python3 -c "import subprocess; subprocess.run(['rm','-rf','/'])"`,
		`perl -e "system('rm -rf /')"`,
		"echo 'rm -rf /' > x.sh; sh x.sh",
		"mv /etc /tmp/hermes-guard-test",
		"kill -9 $PPID",
		"kill -9 " + strconv.Itoa(os.Getpid()),
		"f(){ rm -rf /tmp/x | f & }; f",
	} {
		r := run(t, tool, context.Background(), cmdArgs(cmd))
		e := errText(r)
		if r.ExitCode != ExitRefused || !(strings.HasPrefix(e, "BLOCKED: ") || strings.HasPrefix(e, "NEEDS APPROVAL: ")) {
			t.Errorf("%q was not refused: %+v %s", cmd, r, e)
		}
		if b, err := os.ReadFile(marker); err == nil {
			t.Fatalf("%q ran: %s", cmd, b)
		}
	}
}

// TestRunEnvAllowlist: commands see only allowlisted variables and those
// HERMES_TERMINAL_ENV names; secret-looking names and hermesd's own
// settings never, even when listed (printenv BRAVE_API_KEY and echo
// $FOO_TOKEN gave them away).
func TestRunEnvAllowlist(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	environ := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/h", "LANG=C.UTF-8", "LC_ALL=C", "LC_TIME=C", "TERM=xterm",
		"USER=u", "SHELL=/bin/sh", "TMPDIR=/tmp", "GOPATH=/go", "NODE_ENV=dev", "RANDOM_VAR=r",
		"BRAVE_API_KEY=brave-secret", "FOO_TOKEN=foo-secret", "DB_PASSWORD=pw-secret", "AWS_SECRET_ACCESS_KEY=aws-secret",
		"GH_CREDENTIALS=cred-secret", "API_SERVER_KEY=server-secret", "HERMES_MODEL=m-secret", "OPENAI_BASE_URL=u-secret",
		"TAVILY_BASE_URL=t-secret", "SSH_AUTH_SOCK=/tmp/agent", "LD_PRELOAD=/evil.so",
	}
	tool := newTool(t, Options{Workspace: ws, Environ: environ,
		PassEnv: []string{"GOPATH", "NODE_ENV", "FOO_TOKEN", "API_SERVER_KEY", "HERMES_MODEL", "OPENAI_BASE_URL", "NOT_SET"}})
	r := run(t, tool, context.Background(), cmdArgs("env; cat /proc/self/environ | tr '\\0' '\\n'"))
	if r.ExitCode != 0 {
		t.Fatalf("%+v", r)
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(r.Output), "\n") {
		name, _, _ := strings.Cut(line, "=")
		got[name] = true
	}
	want := []string{"PATH", "HOME", "LANG", "LC_ALL", "LC_TIME", "TERM", "USER", "SHELL", "TMPDIR", "GOPATH", "NODE_ENV",
		"PAGER", "GIT_PAGER", "GIT_TERMINAL_PROMPT", "DEBIAN_FRONTEND", "PWD", markerVar}
	for _, name := range want {
		if !got[name] {
			t.Errorf("%s missing from the command's environment", name)
		}
		delete(got, name)
	}
	delete(got, "OLDPWD") // the shell's own
	if len(got) != 0 {
		t.Errorf("unexpected variables: %v\n%s", got, r.Output)
	}
	if strings.Contains(r.Output, "secret") {
		t.Errorf("a secret reached the command:\n%s", r.Output)
	}
}
