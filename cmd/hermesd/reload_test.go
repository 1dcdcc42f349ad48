package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// TestReloadOnSIGHUP, on a real hermesd process: SIGHUP swaps in the new
// config.yaml's models for new turns while a turn started before finishes
// on the model it started with (its second model call still goes to the
// old upstream); a file that does not validate is logged and the running
// configuration stays.
func TestReloadOnSIGHUP(t *testing.T) {
	hold := make(chan struct{})
	old := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if _, text := call.Last(); text == "slow" && n == 0 {
			return hermestest.Reply{Text: "working ", ToolCalls: [][2]string{{"todo", `{"todos":[]}`}}, Hold: hold}
		}
		return hermestest.Reply{Text: "from old"}
	})
	fresh := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "from new"} })
	home, ws := t.TempDir(), t.TempDir()
	cfg := filepath.Join(home, "config.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("models:\n  - id: m\n    base_url: " + old.URL + "/v1\n")
	p := hermestest.StartProcess(t, []string{os.Args[0]}, home, ws, "HERMESD_TEST_MAIN=1")

	post := func(body string) (int, string) {
		resp, err := hermestest.HTTP.Post(p.Base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	running := make(chan string, 1)
	go func() {
		_, out := post(`{"model":"m","messages":[{"role":"user","content":"slow"}]}`)
		running <- out
	}()
	hermestest.Eventually(t, "the first turn reaches the old upstream", func() bool { return len(old.Calls()) == 1 })

	write("models:\n  - id: m\n    base_url: " + fresh.URL + "/v1\n  - id: added\n    base_url: " + fresh.URL + "/v1\n")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	models := func() string {
		resp, err := hermestest.HTTP.Get(p.Base + "/v1/models")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	hermestest.Eventually(t, "the reloaded models are listed", func() bool { return strings.Contains(models(), `"id":"added"`) })
	if code, out := post(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`); code != 200 || !strings.Contains(out, "from new") {
		t.Fatalf("a new turn after the reload: %d %s", code, out)
	}

	close(hold)
	var v map[string]any
	out := <-running
	json.Unmarshal([]byte(out), &v)
	if !strings.Contains(out, "from old") || len(old.Calls()) != 2 || len(fresh.Calls()) != 1 {
		t.Fatalf("the running turn: %s\nold upstream calls %d, new %d", out, len(old.Calls()), len(fresh.Calls()))
	}

	// A change of MCP servers applies: the added one is connected (here,
	// tried: nothing listens there).
	write("models:\n  - id: m\n    base_url: " + fresh.URL + "/v1\n  - id: added\n    base_url: " + fresh.URL + "/v1\n" +
		"mcp_servers:\n  x:\n    url: http://127.0.0.1:1/mcp\n")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hermestest.Eventually(t, "the added MCP server is tried", func() bool {
		return strings.Contains(p.Stderr.String(), "MCP server failed to connect") && strings.Contains(p.Stderr.String(), "mcp_server=x")
	})

	// A broken file is refused, and the running configuration stays.
	write("models:\n  - id: m\n    base_url: " + fresh.URL + "/v1\n    fallbacks: [nowhere]\n")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hermestest.Eventually(t, "the refusal is logged", func() bool {
		return strings.Contains(p.Stderr.String(), "configuration reload refused") && strings.Contains(p.Stderr.String(), "config.yaml:2")
	})
	if !strings.Contains(models(), `"id":"added"`) {
		t.Fatalf("the refused file changed the models: %s\n%s", models(), p.Stderr)
	}
	if code, out := post(`{"model":"added","messages":[{"role":"user","content":"hi"}]}`); code != 200 || !strings.Contains(out, "from new") {
		t.Fatalf("after a refused reload: %d %s", code, out)
	}
}
