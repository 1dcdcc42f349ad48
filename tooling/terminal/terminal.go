package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/redact"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout = 180 * time.Second
	MaxTimeout     = 600 * time.Second
	MaxOutput      = 50000
)

// Exit codes of results for commands that did not finish on their own.
const (
	// ExitRefused: the command was not run (blocked, needs approval, bad
	// arguments, could not start).
	ExitRefused = -1
	// ExitTimeout: killed at its timeout, as timeout(1) reports it.
	ExitTimeout = 124
	// ExitCancelled: killed because the turn was cancelled, as a shell
	// reports SIGINT.
	ExitCancelled = 130
)

// backgroundWindow is how long a background: true command runs before the
// call returns with its output so far; one that ends sooner answers like
// any other.
const backgroundWindow = 2 * time.Second

// MaxBackground caps the commands left running with background: true, so
// a model cannot fill the machine with servers.
const MaxBackground = 8

// killGrace bounds the wait for killed processes to die and to let go of
// the pipe.
const killGrace = 2 * time.Second

// watchInterval is how often a running command's processes are listed,
// so one that leaves its session and environment behind is still known
// by its parent.
const watchInterval = 500 * time.Millisecond

// markerVar is set in every command's environment to a value unique to
// the command, so a process that left its session and was reparented can
// still be told apart.
const markerVar = "HERMESD_COMMAND"

var markerSeq atomic.Uint64

func newMarker() string {
	return strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(markerSeq.Add(1), 10)
}

// Options configure the tool.
type Options struct {
	// Workspace is the working directory of commands; it must exist. Empty
	// means the server's current directory.
	Workspace string
	// DefaultTimeout applies when a call gives none (180s when zero);
	// MaxTimeout caps what a call may ask for (600s when zero).
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// MaxOutput is the most characters of output the model sees (50000
	// when zero): the first 40% and the last 60% are kept.
	MaxOutput int
	// Approve is "all" to run commands Check says need approval; anything
	// else refuses them, since the HTTP API has no one to ask.
	Approve string
	// Environ is the server's environment (NAME=value); nil means
	// os.Environ(). Commands see only the variables of it that
	// allowedEnv or PassEnv name, never a secret-looking one or a setting
	// of hermesd.
	Environ []string
	// PassEnv names more variables of Environ that commands may see
	// (HERMES_TERMINAL_ENV).
	PassEnv []string
	// Landlock confines commands' file access to the workspace and the
	// temporary directory (read, write) and the system directories (read,
	// run) with Linux Landlock. Commands are refused where the kernel has
	// no Landlock, rather than run unconfined.
	Landlock bool
	// Env is added to the commands' environment after the tool's own
	// settings, so it wins; it is set by code, not read from Environ.
	Env []string
}

var _ tooling.Tool = (*Tool)(nil)

// Tool runs shell commands. It is safe for concurrent use.
type Tool struct {
	opts   Options
	spec   hermes.ToolSpec
	window time.Duration // backgroundWindow; shorter in tests

	// slots holds one token per background call running or detached,
	// so concurrent calls cannot pass MaxBackground between them.
	slots chan struct{}

	mu     sync.Mutex
	jobs   map[*job]bool // background commands still running; guarded by mu
	closed bool          // Close was called: no new background commands
}

// New returns the terminal tool, filling zero Options with defaults.
func New(opts Options) *Tool {
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = DefaultTimeout
	}
	if opts.MaxTimeout <= 0 {
		opts.MaxTimeout = MaxTimeout
	}
	if opts.DefaultTimeout > opts.MaxTimeout {
		opts.DefaultTimeout = opts.MaxTimeout
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = MaxOutput
	}
	t := &Tool{opts: opts, window: backgroundWindow, slots: make(chan struct{}, MaxBackground), jobs: map[*job]bool{}}
	t.spec = hermes.ToolSpec{
		Name: "terminal",
		Description: "Run a shell command (/bin/sh -c) in the workspace directory and return its combined " +
			"stdout and stderr, exit code and error. Each call is a fresh shell: cd, exported variables and " +
			"background jobs do not carry over, so chain steps with && in one command. Every process a command " +
			"starts is killed when it ends (a trailing &, nohup or setsid does not keep one alive); to keep a " +
			"server running, pass background: true. There is no terminal " +
			"and stdin is empty: use non-interactive flags (-y, --no-pager, --yes) and never start editors, " +
			"pagers or prompts. Long output is cut to the first 40% and last 60% of " +
			strconv.Itoa(opts.MaxOutput) + " characters; filter it (grep, head, tail) when you can. " +
			"Commands that could destroy the machine are refused; do not retry a refused command in another form." +
			confinement(opts),
		Parameters: mustJSON(map[string]any{
			"type": "object",
			"properties": map[string]any{
				"command": map[string]any{
					"type":        "string",
					"description": "The shell command to run, e.g. \"ls -la\" or \"go test ./... 2>&1 | tail -50\".",
				},
				"background": map[string]any{
					"type": "boolean",
					"description": "Keep the command running after the call returns (a dev server, a watcher), " +
						"until the server stops. At most " + strconv.Itoa(MaxBackground) + " at a time; later output is discarded, " +
						"so redirect it to a file to read it later.",
				},
				"timeout": map[string]any{
					"type":    "integer",
					"minimum": 1,
					"maximum": int(opts.MaxTimeout / time.Second),
					"description": fmt.Sprintf("Seconds before the command is killed (default %d, at most %d). "+
						"Raise it for slow builds or test suites.", int(opts.DefaultTimeout/time.Second), int(opts.MaxTimeout/time.Second)),
				},
			},
			"required":             []string{"command"},
			"additionalProperties": false,
		}),
	}
	return t
}

// confinement tells the model where confined commands may write.
func confinement(opts Options) string {
	if !opts.Landlock {
		return ""
	}
	return " Commands may read the system directories but write only the workspace and " + os.TempDir() +
		"; the home directory is out of reach, so point caches (GOCACHE, npm's cache) at " + os.TempDir() + "."
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Spec implements tooling.Tool.
func (t *Tool) Spec() hermes.ToolSpec { return t.spec }

// Emoji implements tooling.Tool.
func (t *Tool) Emoji() string { return "💻" }

// labelMax caps the progress label, in characters.
const labelMax = 80

// Label implements tooling.Tool: the command's first line, shortened and
// with secrets masked, since it is shown to the client and kept in chats.
func (t *Tool) Label(args []byte) string {
	var a struct {
		Command string `json:"command"`
	}
	if json.Unmarshal(args, &a) != nil {
		return ""
	}
	return labelOf(a.Command)
}

// labelOf is a command's first line, shortened, with secrets masked.
func labelOf(command string) string {
	line, _, more := strings.Cut(strings.TrimSpace(command), "\n")
	line = strings.TrimSpace(line)
	if utf8.RuneCountInString(line) > labelMax {
		line = tooling.Truncate(line, labelMax, "…")
	} else if more {
		line += " …"
	}
	return redact.String(line)
}

// Result is the JSON the model sees.
type Result struct {
	Output   string  `json:"output"`
	ExitCode int     `json:"exit_code"`
	Error    *string `json:"error"`
	// Pid is set for a background command still running when the call
	// returns.
	Pid int `json:"pid,omitempty"`
}

func result(output string, code int, errText string) string {
	r := Result{Output: output, ExitCode: code}
	if errText != "" {
		r.Error = &errText
	}
	return tooling.JSONResult(r)
}

type args struct {
	Command    string          `json:"command"`
	Timeout    json.RawMessage `json:"timeout"`
	Background bool            `json:"background"`
}

// timeout reads the call's timeout: seconds as a number (or a numeric
// string, which models sometimes send), clamped to MaxTimeout; missing or
// not positive means DefaultTimeout.
func (t *Tool) timeout(raw json.RawMessage) (time.Duration, error) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" || s == "null" {
		return t.opts.DefaultTimeout, nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) {
		return 0, fmt.Errorf("timeout must be a whole number of seconds, got %s", raw)
	}
	if secs <= 0 {
		return t.opts.DefaultTimeout, nil
	}
	if secs >= t.opts.MaxTimeout.Seconds() {
		return t.opts.MaxTimeout, nil
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// Run implements tooling.Tool.
func (t *Tool) Run(ctx context.Context, call tooling.Call) string {
	var a args
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return result("", ExitRefused, hermes.AsError(err).Message)
	}
	if strings.TrimSpace(a.Command) == "" {
		return result("", ExitRefused, `"command" is required: the shell command to run`)
	}
	timeout, err := t.timeout(a.Timeout)
	if err != nil {
		return result("", ExitRefused, err.Error())
	}
	switch verdict, why := Check(a.Command); {
	case verdict == Blocked:
		return result("", ExitRefused, "BLOCKED: "+why+" — this command is never run by this server. "+
			"Do not retry it or a variant of it; tell the user if it is really needed.")
	case verdict == NeedsApproval && !strings.EqualFold(strings.TrimSpace(t.opts.Approve), "all"):
		return result("", ExitRefused, "NEEDS APPROVAL: "+why+". The HTTP API has no one to approve it; it was not run. "+
			"Ask the user to run it themselves or set HERMES_TERMINAL_APPROVE=all.")
	}
	if t.opts.Workspace != "" {
		if fi, err := os.Stat(t.opts.Workspace); err != nil || !fi.IsDir() {
			return result("", ExitRefused, "the workspace directory "+t.opts.Workspace+" does not exist; the command was not run")
		}
	}
	if err := ctx.Err(); err != nil {
		return result("", ExitCancelled, "command cancelled before it started")
	}
	if a.Background {
		t.mu.Lock()
		closed := t.closed
		t.mu.Unlock()
		if closed {
			return result("", ExitRefused, "the server is stopping; background commands are not started")
		}
		select {
		case t.slots <- struct{}{}: // given back when the command ends
		default:
			return result("", ExitRefused, fmt.Sprintf("%d background commands already run (%s); that is the most "+
				"allowed: stop one (kill its pid) or run this one in the foreground", MaxBackground, t.jobList()))
		}
	}
	return t.exec(ctx, a.Command, timeout, a.Background)
}

// allowedEnv are the variables of the server's environment every command
// sees: what programs need to find things and speak the user's language.
var allowedEnv = set("PATH", "HOME", "LANG", "LANGUAGE", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ")

// hidden reports a variable commands never see, even when PassEnv names
// it: one whose name says it holds a secret, or a setting of hermesd
// (its API key among them).
func hidden(name string) bool {
	if redact.SecretName(name) {
		return true
	}
	for _, p := range []string{"API_SERVER_", "HERMES_", "OPENAI_", "BRAVE_", "TAVILY_", "SEARXNG_", "DUCKDUCKGO_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// env is the commands' environment, built from an allowlist of the
// server's (printenv and /proc/self/environ gave away every key it had),
// with settings that stop tools from waiting for a human.
func (t *Tool) env() []string {
	environ := t.opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	pass := set(t.opts.PassEnv...)
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if (allowedEnv[name] || strings.HasPrefix(name, "LC_") || pass[name]) && !hidden(name) {
			env = append(env, kv)
		}
	}
	env = append(env, "PAGER=cat", "GIT_PAGER=cat", "GIT_TERMINAL_PROMPT=0", "DEBIAN_FRONTEND=noninteractive")
	if t.opts.Workspace != "" {
		env = append(env, "PWD="+t.opts.Workspace)
	}
	return append(env, t.opts.Env...)
}

func (t *Tool) exec(ctx context.Context, command string, timeout time.Duration, background bool) string {
	detached := false
	if background {
		defer func() {
			if !detached {
				<-t.slots
			}
		}()
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return result("", ExitRefused, "could not start the command: "+err.Error())
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = t.opts.Workspace
	marker := newMarker()
	cmd.Env = append(t.env(), markerVar+"="+marker)
	// One pipe for both streams keeps their order; Stdin nil is /dev/null.
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group, so killing -pgid takes its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var tr *tree
	if t.opts.Landlock {
		ws := cmd.Dir
		if ws == "" {
			ws, _ = os.Getwd()
		}
		tr, err = startConfined(cmd, marker, background, []string{ws, os.TempDir()})
	} else {
		tr, err = start(cmd, marker, background)
	}
	if err != nil {
		pr.Close()
		pw.Close()
		return result("", ExitRefused, "could not start the command: "+err.Error())
	}
	pw.Close() // only the children hold the write end now: EOF when they are gone

	out := &sink{c: newCapture(t.opts.MaxOutput)}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 64<<10)
		for {
			n, err := pr.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	watchDone := make(chan struct{})
	go tr.watch(watchDone, watchInterval)
	r := &runningCmd{cmd: cmd, tree: tr, exited: exited, watchDone: watchDone, readDone: readDone, pr: pr}

	limit := timeout
	if background {
		limit = min(timeout, t.window)
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	code, errText := 0, ""
	select {
	case r.waitErr = <-exited:
	case <-timer.C:
		if background {
			detached = true
			return t.detach(r, command, out)
		}
		tr.kill()
		r.waitErr = <-exited
		code, errText = ExitTimeout, "command timed out after "+strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)+"s"
	case <-ctx.Done():
		tr.kill()
		r.waitErr = <-exited
		code, errText = ExitCancelled, "command cancelled: "+ctx.Err().Error()
	}
	r.finish()
	if errText == "" {
		code = exitCode(cmd.ProcessState, r.waitErr)
	}
	return result(redact.String(out.String()), code, errText)
}

// runningCmd is a started command and what waits on it.
type runningCmd struct {
	cmd       *exec.Cmd
	tree      *tree
	exited    <-chan error
	waitErr   error
	watchDone chan struct{}
	readDone  <-chan struct{}
	pr        *os.File
}

// finish runs once the shell has exited: nothing it started may outlive
// it, so its whole tree is killed and reaped, along with orphans no
// command claims. Killed processes let go of the pipe; one that escaped
// every trace and still holds it is cut off by closing our end.
func (r *runningCmd) finish() {
	close(r.watchDone)
	r.tree.kill()
	r.tree.unregister()
	sweepOrphans()
	wait(r.readDone, killGrace)
	r.pr.Close()
	<-r.readDone
}

// job is a background command still running.
type job struct {
	r       *runningCmd
	command string
	done    chan struct{} // closed once it has ended and been cleaned up
}

// detach keeps a background command running past the call: its output
// from now on is read and dropped, and it is stopped at Close or cleaned
// up when it ends on its own.
func (t *Tool) detach(r *runningCmd, command string, out *sink) string {
	j := &job{r: r, command: command, done: make(chan struct{})}
	t.mu.Lock()
	t.jobs[j] = true
	closing := t.closed
	t.mu.Unlock()
	if closing {
		r.tree.kill() // Close ran meanwhile and did not see this job
	}
	go func() {
		r.waitErr = <-r.exited
		r.finish()
		t.mu.Lock()
		delete(t.jobs, j)
		t.mu.Unlock()
		<-t.slots
		close(j.done)
	}()
	text := out.detach()
	pid := r.cmd.Process.Pid
	note := fmt.Sprintf("[running in the background as pid %d; later output is discarded; it is stopped when the server stops. "+
		"Background commands now: %s]", pid, t.jobList())
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return tooling.JSONResult(Result{Output: redact.String(text) + note, Pid: pid})
}

// jobList names the background commands that run now.
func (t *Tool) jobList() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var list []string
	for j := range t.jobs {
		list = append(list, fmt.Sprintf("pid %d (%s)", j.r.cmd.Process.Pid, labelOf(j.command)))
	}
	if len(list) == 0 {
		return "none"
	}
	sort.Strings(list)
	return strings.Join(list, ", ")
}

// Close stops every background command and every process it started,
// waiting for them at most killGrace each. Later background calls are
// refused. The server calls it at shutdown.
func (t *Tool) Close() error {
	t.mu.Lock()
	t.closed = true
	jobs := make([]*job, 0, len(t.jobs))
	for j := range t.jobs {
		jobs = append(jobs, j)
	}
	t.mu.Unlock()
	for _, j := range jobs {
		j.r.tree.kill()
	}
	var stuck []string
	for _, j := range jobs {
		if !wait(j.done, 2*killGrace) {
			stuck = append(stuck, strconv.Itoa(j.r.cmd.Process.Pid))
		}
	}
	if len(stuck) > 0 {
		return fmt.Errorf("terminal: background commands did not stop: pid %s", strings.Join(stuck, ", "))
	}
	return nil
}

// sink is the command's output as the reading goroutine writes it: kept
// until a background command detaches, dropped after.
type sink struct {
	mu      sync.Mutex
	c       *capture // guarded by mu
	dropped bool     // guarded by mu
}

func (s *sink) Write(p []byte) {
	s.mu.Lock()
	if !s.dropped {
		s.c.Write(p)
	}
	s.mu.Unlock()
}

// String is the output, once the writer is done.
func (s *sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.String()
}

// detach returns the output so far and drops what follows.
func (s *sink) detach() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped = true
	return s.c.String()
}

// wait reports whether done closed within d.
func wait(done <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// exitCode reports how the shell ended the way a shell would: its status,
// or 128+signal when a signal killed it.
func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return ExitRefused
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return ExitRefused
	}
	return ps.ExitCode()
}
