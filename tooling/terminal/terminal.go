package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// drainDelay is how long output may keep flowing after the shell exits: a
// background child (sleep 30 &) holding the pipe would otherwise keep the
// tool waiting for as long as it lives. After it the process group is killed.
const drainDelay = 2 * time.Second

// killGrace bounds the wait for killed processes to let go of the pipe.
const killGrace = 2 * time.Second

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
	// Env is added to the server's environment (minus API_SERVER_KEY) for
	// commands, after the tool's own settings, so it wins.
	Env []string
}

var _ tooling.Tool = (*Tool)(nil)

// Tool runs shell commands. It is safe for concurrent use.
type Tool struct {
	opts  Options
	spec  hermes.ToolSpec
	drain time.Duration
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
	t := &Tool{opts: opts, drain: drainDelay}
	t.spec = hermes.ToolSpec{
		Name: "terminal",
		Description: "Run a shell command (/bin/sh -c) in the workspace directory and return its combined " +
			"stdout and stderr, exit code and error. Each call is a fresh shell: cd, exported variables and " +
			"background jobs do not carry over, so chain steps with && in one command. There is no terminal " +
			"and stdin is empty: use non-interactive flags (-y, --no-pager, --yes) and never start editors, " +
			"pagers or prompts. Long output is cut to the first 40% and last 60% of " +
			strconv.Itoa(opts.MaxOutput) + " characters; filter it (grep, head, tail) when you can. " +
			"Commands that could destroy the machine are refused; do not retry a refused command in another form.",
		Parameters: mustJSON(map[string]any{
			"type": "object",
			"properties": map[string]any{
				"command": map[string]any{
					"type":        "string",
					"description": "The shell command to run, e.g. \"ls -la\" or \"go test ./... 2>&1 | tail -50\".",
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
	line, _, more := strings.Cut(strings.TrimSpace(a.Command), "\n")
	line = strings.TrimSpace(line)
	if utf8.RuneCountInString(line) > labelMax {
		line = string([]rune(line)[:labelMax-1]) + "…"
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
}

func result(output string, code int, errText string) string {
	r := Result{Output: output, ExitCode: code}
	if errText != "" {
		r.Error = &errText
	}
	return tooling.JSONResult(r)
}

type args struct {
	Command string          `json:"command"`
	Timeout json.RawMessage `json:"timeout"`
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
	return t.exec(ctx, a.Command, timeout)
}

// env is the commands' environment: the server's, without its own API key,
// with settings that stop tools from waiting for a human.
func (t *Tool) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "API_SERVER_KEY=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PAGER=cat", "GIT_PAGER=cat", "GIT_TERMINAL_PROMPT=0", "DEBIAN_FRONTEND=noninteractive")
	if t.opts.Workspace != "" {
		env = append(env, "PWD="+t.opts.Workspace)
	}
	return append(env, t.opts.Env...)
}

func (t *Tool) exec(ctx context.Context, command string, timeout time.Duration) string {
	pr, pw, err := os.Pipe()
	if err != nil {
		return result("", ExitRefused, "could not start the command: "+err.Error())
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = t.opts.Workspace
	cmd.Env = t.env()
	// One pipe for both streams keeps their order; Stdin nil is /dev/null.
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group, so killing -pgid takes its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return result("", ExitRefused, "could not start the command: "+err.Error())
	}
	pw.Close() // only the children hold the write end now: EOF when they are gone
	pgid := cmd.Process.Pid
	killGroup := func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }

	out := newCapture(t.opts.MaxOutput)
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

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var waitErr error
	code, errText := 0, ""
	select {
	case waitErr = <-exited:
	case <-timer.C:
		killGroup()
		waitErr = <-exited
		code, errText = ExitTimeout, "command timed out after "+strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)+"s"
	case <-ctx.Done():
		killGroup()
		waitErr = <-exited
		code, errText = ExitCancelled, "command cancelled: "+ctx.Err().Error()
	}
	// Wait for the output only briefly once the shell is gone: whatever
	// still holds the pipe is then killed, and its death, which closes the
	// pipe, awaited as briefly; a process that left the group (setsid) is
	// cut off by closing our end.
	if !wait(readDone, t.drain) {
		killGroup()
		wait(readDone, killGrace)
	}
	pr.Close()
	<-readDone

	if errText == "" {
		code = exitCode(cmd.ProcessState, waitErr)
	}
	return result(redact.String(out.String()), code, errText)
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
