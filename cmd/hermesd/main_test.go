package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
)

// TestMain lets a test run this binary as hermesd itself: with
// HERMESD_TEST_MAIN=1 it is main() with the given arguments.
func TestMain(m *testing.M) {
	if os.Getenv("HERMESD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	hermestest.RemoveMCPServer()
	os.Exit(code)
}

// runMain runs main() in a subprocess with args; it returns stdout,
// stderr and the exit code.
func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "HERMESD_TEST_MAIN=1", "HERMES_HOME="+t.TempDir())
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestHelpExitsZero: hermesd --help (and -h) prints the usage on stdout and
// exits 0 without starting; an unknown flag exits 2 and points at --help.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		out, errOut, code := runMain(t, arg)
		if code != 0 || !strings.HasPrefix(out, "Usage: hermesd") || !strings.Contains(out, "-port") || errOut != "" {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", arg, code, out, errOut)
		}
	}
	out, errOut, code := runMain(t, "--no-such-flag")
	if code != 2 || out != "" || !strings.Contains(errOut, "--help") {
		t.Fatalf("unknown flag: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// TestDotEnvQuotedKeyReachesUpstream: OPENAI_API_KEY="…" # comment in
// $HERMES_HOME/.env reaches the upstream without its quotes (it used to
// go out as Bearer "sk-…").
func TestDotEnvQuotedKeyReachesUpstream(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	home := t.TempDir()
	dot := "OPENAI_API_KEY=\"sk-from-dotenv\" # the upstream key\nOPENAI_BASE_URL=\"" + up.URL + "/v1\"\n"
	if err := os.WriteFile(filepath.Join(home, ".env"), []byte(dot), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHermes(t, map[string]string{"HERMES_HOME": home})
	_, err := h.client().Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "hermes-agent", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	calls := up.Calls()
	if len(calls) != 1 {
		t.Fatalf("upstream called %d times, want 1", len(calls))
	}
	if calls[0].Auth != "Bearer sk-from-dotenv" {
		t.Fatalf("upstream got Authorization %q", calls[0].Auth)
	}
}
