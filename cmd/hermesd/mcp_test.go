package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/tooling/mcp"
)

// withMCP is a startHermes setup giving hermesd the test MCP server as
// "test".
func withMCP(t testing.TB, s mcp.Server) func(*Main) {
	s.Command = hermestest.MCPServer(t)
	return func(m *Main) { m.MCPServers = map[string]mcp.Server{"test": s} }
}

// toolEntries is GET /v1/tools as name → server.
func toolEntries(t testing.TB, h *hermesd) map[string]string {
	t.Helper()
	resp, body := h.do(t, "GET", "/v1/tools", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/tools: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Data []struct{ Name, Server string } `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, d := range list.Data {
		out[d.Name] = d.Server
	}
	return out
}

func TestMCPToolThroughTheAgent(t *testing.T) {
	up := planUpstream(t, func(string) [][2]string {
		return [][2]string{{"mcp_test_echo", `{"text":"ping"}`}}
	})
	h := startHermes(t, up.Env(), withMCP(t, mcp.Server{}))

	tools := toolEntries(t, h)
	if tools["mcp_test_echo"] != "test" || tools["terminal"] != "hermes" {
		t.Errorf("GET /v1/tools = %v", tools)
	}
	if got := toolsChat(t, h, openai.UserMessage("echo ping")); !strings.Contains(got, `{"result":"echo: ping"}`) {
		t.Errorf("answer = %q", got)
	}
	call := up.Calls()[0]
	var offered bool
	for _, tl := range call.Tools {
		if tl.Function.Name == "mcp_test_echo" {
			offered = strings.Contains(string(tl.Function.Parameters), `"required":["text"]`) &&
				strings.Contains(tl.Function.Description, "Echoes text back.")
		}
	}
	if !offered {
		t.Errorf("mcp_test_echo not offered with its schema: %v", toolNames(call))
	}

	// Streamed: the progress line names server and tool.
	resp, body := h.do(t, "POST", "/v1/chat/completions",
		`{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"echo ping"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "🔌 test.echo") {
		t.Errorf("stream: %d, want the progress 🔌 test.echo in %s", resp.StatusCode, body)
	}

	// Responses: an mcp_call item labelled with the server's name.
	resp, body = h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"echo ping"}`)
	var out struct {
		Output []map[string]any `json:"output"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || resp.StatusCode != 200 || len(out.Output) < 2 {
		t.Fatalf("responses: %d %s", resp.StatusCode, body)
	}
	// The item names the tool as its server does, not as the model knew it.
	item := out.Output[0]
	if item["type"] != "mcp_call" || item["server_label"] != "test" || item["name"] != "echo" ||
		item["output"] != `{"result":"echo: ping"}` {
		t.Errorf("mcp_call item = %v", item)
	}
	// Streamed, the same.
	_, body = h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"echo ping","stream":true}`)
	if !strings.Contains(body, `"type":"mcp_call","status":"completed","server_label":"test","name":"echo"`) {
		t.Errorf("stream lacks the mcp_call named echo: %s", body)
	}
	// Sent back statelessly, the model sees the call under its own name.
	back, _ := json.Marshal(item)
	before := len(up.Calls())
	resp, body = h.do(t, "POST", "/v1/responses", `{"store":false,"input":[`+string(back)+`,{"role":"user","content":"again"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("replay: %d %s", resp.StatusCode, body)
	}
	replayed := up.Calls()[before]
	var names []string
	for _, m := range replayed.Messages {
		for _, c := range m.ToolCalls {
			names = append(names, c.Function.Name)
		}
	}
	if !reflect.DeepEqual(names, []string{"mcp_test_echo"}) {
		t.Errorf("replayed calls = %v, want [mcp_test_echo]", names)
	}
}

func TestMCPToolSelectionPatterns(t *testing.T) {
	up := planUpstream(t, func(string) [][2]string { return nil })
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{
		"HERMES_TOOLS": "terminal,mcp_test_*", "HERMES_DISABLED_TOOLS": "mcp_test_crash,mcp_test_e*",
	}), withMCP(t, mcp.Server{}))
	var got []string
	for name := range toolEntries(t, h) {
		got = append(got, name)
	}
	want := []string{"mcp_test_add_tool", "mcp_test_fail", "mcp_test_header", "mcp_test_huge", "mcp_test_mixed", "mcp_test_sleep", "mcp_test_structured", "terminal"}
	if sort.Strings(got); !reflect.DeepEqual(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
}

func TestMCPCrashedServerRestartsAndSlowToolTimesOut(t *testing.T) {
	up := planUpstream(t, func(user string) [][2]string {
		switch user {
		case "crash":
			return [][2]string{{"mcp_test_crash", `{}`}}
		case "slow":
			return [][2]string{{"mcp_test_sleep", `{"ms":30000}`}}
		}
		return [][2]string{{"mcp_test_echo", `{"text":"` + user + `"}`}}
	})
	h := startHermes(t, up.Env(), withMCP(t, mcp.Server{Timeout: 500 * time.Millisecond}))
	if got := toolsChat(t, h, openai.UserMessage("crash")); !strings.Contains(got, "the connection failed during the call") {
		t.Errorf("crash answer = %q", got)
	}
	if got := toolsChat(t, h, openai.UserMessage("after")); !strings.Contains(got, `echo: after`) {
		t.Errorf("after the crash = %q", got)
	}
	began := time.Now()
	if got := toolsChat(t, h, openai.UserMessage("slow")); !strings.Contains(got, "timed out: MCP server test did not answer sleep within 500ms") {
		t.Errorf("slow answer = %q", got)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("the slow tool held the turn %s", d)
	}
}

func TestMCPListChangeShowsNextTurn(t *testing.T) {
	up := planUpstream(t, func(user string) [][2]string {
		if user == "add" {
			return [][2]string{{"mcp_test_add_tool", `{"name":"greet"}`}}
		}
		return [][2]string{{"mcp_test_greet", `{}`}}
	})
	h := startHermes(t, up.Env(), withMCP(t, mcp.Server{}))
	if got := toolsChat(t, h, openai.UserMessage("add")); !strings.Contains(got, "added greet") {
		t.Fatalf("add = %q", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for toolEntries(t, h)["mcp_test_greet"] == "" {
		if time.Now().After(deadline) {
			t.Fatal("mcp_test_greet never listed after notifications/tools/list_changed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := toolsChat(t, h, openai.UserMessage("greet")); !strings.Contains(got, "hello from greet") {
		t.Errorf("greet = %q", got)
	}
	if names := toolNames(lastUpstreamCall(t, up)); !contains(names, "mcp_test_greet") {
		t.Errorf("the next turn was not offered mcp_test_greet: %v", names)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A server configured with one of hermesd's secrets that echoes it back
// has it masked like any tool's output.
func TestMCPResultsAreMasked(t *testing.T) {
	const secret = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"
	up := planUpstream(t, func(string) [][2]string { return [][2]string{{"mcp_test_env", `{"name":"GITHUB_TOKEN"}`}} })
	h := startHermes(t, up.Env(), withMCP(t, mcp.Server{Env: map[string]string{"GITHUB_TOKEN": secret}}),
		func(m *Main) { m.Environ = append(m.Environ, "GITHUB_TOKEN="+secret) })
	got := toolsChat(t, h, openai.UserMessage("env"))
	if strings.Contains(got, secret) || !strings.Contains(got, "set=true") {
		t.Errorf("answer = %q", got)
	}
	for _, r := range toolResults(lastUpstreamCall(t, up)) {
		if strings.Contains(r, secret) {
			t.Errorf("the model saw the secret: %s", r)
		}
	}
}

// A server that never answers initialize delays the start by its
// connect_timeout at most, and the other servers serve.
func TestMCPServerThatNeverInitializesDoesNotHoldTheStart(t *testing.T) {
	bin := hermestest.MCPServer(t)
	began := time.Now()
	h := startHermes(t, nil, func(m *Main) {
		m.MCPServers = map[string]mcp.Server{
			"stuck": {Command: bin, Args: []string{"-hang"}, ConnectTimeout: 500 * time.Millisecond},
			"good":  {Command: bin},
		}
	})
	if d := time.Since(began); d > 8*time.Second {
		t.Errorf("start took %s", d)
	}
	tools := toolEntries(t, h)
	if tools["mcp_good_echo"] != "good" {
		t.Errorf("tools = %v", tools)
	}
	for name := range tools {
		if strings.HasPrefix(name, "mcp_stuck_") {
			t.Errorf("tool %s from a server that never initialized", name)
		}
	}
}

// config.yaml's mcp_servers: a stdio server and a remote one whose header
// comes from the environment; the header's token, echoed back by the
// server, is masked.
func TestMCPServersFromConfigFile(t *testing.T) {
	const token = "mcp-token-0123456789abcdef"
	url := hermestest.StartMCPHTTP(t, "-want-header", "Authorization=Bearer "+token)
	home := t.TempDir()
	yaml := fmt.Sprintf(`mcp_servers:
  local:
    command: %s
    timeout: 5s
  remote:
    url: %s
    headers:
      Authorization: "Bearer ${REMOTE_MCP_TOKEN}"
    connect_timeout: 5s
`, hermestest.MCPServer(t), url)
	if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	up := planUpstream(t, func(user string) [][2]string {
		return [][2]string{{"mcp_local_echo", `{"text":"` + user + `"}`}, {"mcp_remote_header", `{"name":"Authorization"}`}}
	})
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"HERMES_HOME": home, "REMOTE_MCP_TOKEN": token}))
	tools := toolEntries(t, h)
	if tools["mcp_local_echo"] != "local" || tools["mcp_remote_header"] != "remote" {
		t.Fatalf("GET /v1/tools = %v", tools)
	}
	got := toolsChat(t, h, openai.UserMessage("hello"))
	if !strings.Contains(got, "echo: hello") || !strings.Contains(got, "Authorization: ") {
		t.Errorf("answer = %q", got)
	}
	if strings.Contains(got, token) || !strings.Contains(got, "Authorization: [REDACTED") {
		t.Errorf("the header's token was not masked: %q", got)
	}
}

// Tool metrics are labelled by the tools that exist: names a model makes
// up are counted as "unknown", not as a series each.
func TestToolMetricsLabelsAreBounded(t *testing.T) {
	h := startHermes(t, nil, withMCP(t, mcp.Server{}))
	for _, input := range []string{
		`/tool made_up_tool_1 {}`, `/tool made_up_tool_2 {}`, `/tool mcp_test_echo {\"text\":\"x\"}`,
	} {
		if resp, body := h.do(t, "POST", "/v1/responses", `{"input":"`+input+`"}`); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", input, resp.StatusCode, body)
		}
	}
	_, body := h.do(t, "GET", "/metrics", "")
	if strings.Contains(body, "made_up_tool") {
		t.Error("a made-up tool name became a metrics label")
	}
	for _, want := range []string{
		`hermes_tool_run_duration_seconds_count{outcome="error",tool="unknown"} 2`,
		`hermes_tool_run_duration_seconds_count{outcome="ok",tool="mcp_test_echo"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A reload (SIGHUP) applies mcp_servers: an added server's tools serve new
// turns, a removed one's leave them, and the removed server stays
// connected until the turn that started before the reload, and calls it
// again after, has ended.
func TestReloadMCPServers(t *testing.T) {
	bin := hermestest.MCPServer(t)
	home := t.TempDir()
	cfg := filepath.Join(home, "config.yaml")
	write := func(servers ...string) {
		yaml := "mcp_servers:\n"
		for _, s := range servers {
			yaml += "  " + s + ":\n    command: " + bin + "\n"
		}
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old")
	hold := make(chan struct{})
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		_, last := call.Last()
		switch {
		case n == 0: // the turn across the reload: a call before it…
			return hermestest.Reply{ToolCalls: [][2]string{{"mcp_old_echo", `{"text":"before"}`}}}
		case n == 1: // …and one after it, held until the reload is done
			return hermestest.Reply{Text: "now ", ToolCalls: [][2]string{{"mcp_old_echo", `{"text":"after"}`}}, Hold: hold}
		case last == "new":
			return hermestest.Reply{ToolCalls: [][2]string{{"mcp_new_echo", `{"text":"fresh"}`}}}
		}
		return hermestest.Reply{Text: "results: " + strings.Join(toolResults(call), " ")}
	})
	var logs hermestest.SyncBuffer
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"HERMES_HOME": home}), func(m *Main) { m.Logger = newLogger("text", "info", &logs) })
	if tools := toolEntries(t, h); tools["mcp_old_echo"] != "old" {
		t.Fatalf("tools at start = %v", tools)
	}
	running := make(chan string, 1)
	go func() {
		_, body := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"across"}]}`)
		running <- body
	}()
	hermestest.Eventually(t, "the turn waits in its second model call", func() bool { return len(up.Calls()) == 2 })

	write("new")
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	tools := toolEntries(t, h)
	if tools["mcp_new_echo"] != "new" || tools["mcp_old_echo"] != "" {
		t.Fatalf("tools after the reload = %v", tools)
	}
	if _, body := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"new"}]}`); !strings.Contains(body, "echo: fresh") {
		t.Errorf("a new turn with the added server: %s", body)
	}
	const closed = "MCP servers the reload removed or changed are closed"
	if strings.Contains(logs.String(), closed) {
		t.Fatal("the removed server was closed while a turn that uses it runs")
	}

	close(hold)
	if body := <-running; !strings.Contains(body, "echo: before") || !strings.Contains(body, "echo: after") {
		t.Errorf("the turn across the reload: %s", body)
	}
	hermestest.Eventually(t, "the removed server is closed after the turn", func() bool { return strings.Contains(logs.String(), closed) })
}
