package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// TestTerminalBackgroundStoppedAtClose: a command the model leaves
// running with background: true runs past its turn and stops when the
// server shuts down.
func TestTerminalBackgroundStoppedAtClose(t *testing.T) {
	up := planUpstream(t, func(string) [][2]string {
		return [][2]string{{"terminal", `{"command":"exec sleep 1006.1","background":true}`}}
	})
	h := startHermes(t, up.Env())
	toolsChat(t, h, openai.UserMessage("start the server"))
	res := toolResults(lastUpstreamCall(t, up))
	var r struct {
		Pid    int    `json:"pid"`
		Output string `json:"output"`
	}
	if len(res) != 1 || json.Unmarshal([]byte(res[0]), &r) != nil || r.Pid <= 0 || !strings.Contains(r.Output, "running in the background") {
		t.Fatalf("background result %q", res)
	}
	cmdline := "/proc/" + strconv.Itoa(r.Pid) + "/cmdline"
	if b, err := os.ReadFile(cmdline); err != nil || !strings.Contains(string(b), "1006.1") {
		t.Fatalf("background command not running after its turn: %q %v", b, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Close waited for the command to be reaped: its pid is gone (or, at
	// worst, already reused by something else).
	if b, err := os.ReadFile(cmdline); err == nil && strings.Contains(string(b), "1006.1") {
		t.Fatal("background command survived shutdown")
	}
}

// TestTerminalEnvironmentAllowlist: commands run by a whole server see the
// variables HERMES_TERMINAL_ENV names, and no secret of the server's
// environment even when it is listed.
func TestTerminalEnvironmentAllowlist(t *testing.T) {
	t.Setenv("E2E_VISIBLE", "yes")
	t.Setenv("FOO_TOKEN", "foo-token-value-123")
	t.Setenv("BRAVE_API_KEY", "brave-key-value-456")
	t.Setenv("API_SERVER_KEY", "server-key-value-789")
	up := planUpstream(t, func(string) [][2]string {
		return [][2]string{{"terminal", `{"command":"echo \"[$E2E_VISIBLE][$FOO_TOKEN][$BRAVE_API_KEY][$API_SERVER_KEY]\"; printenv BRAVE_API_KEY; echo end"}`}}
	})
	env := up.Env()
	env["HERMES_TERMINAL_ENV"] = "E2E_VISIBLE,FOO_TOKEN,API_SERVER_KEY"
	h := startHermes(t, env)
	toolsChat(t, h, openai.UserMessage("show the environment"))
	res := toolResults(lastUpstreamCall(t, up))
	var r struct {
		Output string `json:"output"`
	}
	if len(res) != 1 || json.Unmarshal([]byte(res[0]), &r) != nil || r.Output != "[yes][][][]\nend\n" {
		t.Fatalf("terminal result %q", res)
	}
}
