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
	h := startHermes(t, up.env())
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
