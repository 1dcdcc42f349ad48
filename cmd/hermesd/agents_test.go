package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// Real agent clients against hermesd: the Codex CLI and the OpenAI Agents
// SDK. Both treat a function_call item as a call they must run; hermesd's
// own tool runs must reach them as hosted items (mcp_call) they only
// record. Installed by .ci/node-deps; skipped, with the reason, without
// node or the packages.

// recorder is a reverse proxy in front of hermesd that keeps the bodies of
// the POSTs a client sent, to show what it sent back.
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newRecorder(t *testing.T, target string) *recorder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1 // pass SSE frames through as they come
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			rec.mu.Lock()
			rec.bodies = append(rec.bodies, string(b))
			rec.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

// sent returns the item types of each recorded request's input.
func (r *recorder) sent(t *testing.T) [][]string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]string
	for _, b := range r.bodies {
		var req struct {
			Input []struct {
				Type string `json:"type"`
				Role string `json:"role"`
			} `json:"input"`
		}
		_ = json.Unmarshal([]byte(b), &req)
		var types []string
		for _, it := range req.Input {
			typ := it.Type
			if typ == "" || typ == "message" {
				typ = "message:" + it.Role
			}
			types = append(types, typ)
		}
		out = append(out, types)
	}
	return out
}

// agentUpstream scripts the model for the agent-client tests. A prompt
// naming a tool ("use-tool terminal {…}") calls it once; a tool result is
// answered "tool said: …"; "follow-up" is answered with the transcript the
// model received, one role[=tool] entry per message.
func agentUpstream(t *testing.T) *hermestest.Upstream {
	return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		role, text := call.Last()
		if role == "tool" {
			return hermestest.Reply{Text: "tool said: " + text}
		}
		if strings.HasPrefix(text, "follow-up") {
			var seen []string
			for i, m := range call.Messages {
				if m.Role == "system" {
					continue
				}
				e := m.Role
				for _, tc := range m.ToolCalls {
					e += "[" + tc.Function.Name + "]"
				}
				if m.Role == "user" && strings.Contains(call.Text(i), "use-tool") {
					e += "(use-tool)"
				}
				seen = append(seen, e)
			}
			return hermestest.Reply{Text: "seen " + strings.Join(seen, " ")}
		}
		if _, rest, ok := strings.Cut(text, "use-tool "); ok {
			name, args, _ := strings.Cut(rest, " ")
			return hermestest.Reply{ToolCalls: [][2]string{{name, args}}}
		}
		return hermestest.Reply{Text: "plain answer"}
	})
}

// codexEvent is one line of `codex exec --json`.
type codexEvent struct {
	Type string `json:"type"`
	Item struct {
		Type             string `json:"type"`
		Text             string `json:"text"`
		Command          string `json:"command"`
		AggregatedOutput string `json:"aggregated_output"`
		Status           string `json:"status"`
		Message          string `json:"message"`
	} `json:"item"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
	Message string `json:"message"`
}

func needCodex(t *testing.T) string {
	t.Helper()
	needNode(t)
	bin, err := filepath.Abs(filepath.Join(nodeDir, "node_modules", ".bin", "codex"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("the Codex CLI is not installed in cmd/hermesd/testdata/node; run .ci/node-deps")
	}
	return bin
}

// runCodex runs `codex exec --json args…` with a private CODEX_HOME whose
// config points a custom provider at base, and returns its events.
func runCodex(t *testing.T, bin, home, ws, base string, args ...string) (events []codexEvent, output string) {
	t.Helper()
	config := "model = \"hermes-agent\"\nmodel_provider = \"hermes\"\ncheck_for_update_on_startup = false\n\n" +
		"[model_providers.hermes]\nname = \"hermes\"\nbase_url = \"" + base + "\"\nwire_api = \"responses\"\n"
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	full := append([]string{"exec", "--json", "--skip-git-repo-check", "-s", "danger-full-access", "-C", ws}, args...)
	if args[0] == "resume" {
		full = append([]string{"exec", "resume", "--json", "--skip-git-repo-check"}, args[1:]...)
	}
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Dir = ws
	cmd.Env = append(os.Environ(), "CODEX_HOME="+home, "HOME="+home, "NO_COLOR=1", "RUST_LOG=error")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	output = stdout.String() + "\n--- stderr ---\n" + stderr.String()
	if err != nil {
		t.Fatalf("codex %v: %v\n%s", full, err, output)
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev codexEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type != "" {
			events = append(events, ev)
		}
	}
	return events, output
}

// agentMessages returns the texts of Codex's agent_message items.
func agentMessages(evs []codexEvent) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == "item.completed" && ev.Item.Type == "agent_message" {
			out = append(out, ev.Item.Text)
		}
	}
	return out
}

// checkCodexClean fails on any error Codex reported, except its notice
// that it has no metadata for a model named hermes-agent.
func checkCodexClean(t *testing.T, evs []codexEvent, out string) {
	t.Helper()
	for _, ev := range evs {
		failed := ev.Type == "turn.failed" || ev.Type == "error" ||
			(ev.Item.Type == "error" && !strings.HasPrefix(ev.Item.Message, "Model metadata for"))
		if failed {
			t.Fatalf("Codex reported an error (%s):\n%s", ev.Type, out)
		}
	}
	if strings.Contains(out, "unsupported call") {
		t.Fatalf("Codex tried to run a call it does not have:\n%s", out)
	}
}

func TestCodexCLI(t *testing.T) {
	bin := needCodex(t)
	up := agentUpstream(t)
	h := startHermes(t, up.Env())
	rec := newRecorder(t, strings.TrimSuffix(h.URL(), "/v1"))
	home, ws := t.TempDir(), t.TempDir()
	base := rec.URL + "/v1"

	// 1. hermesd runs its own terminal tool in the turn: Codex records the
	// mcp_call and shows one answer, no "unsupported call".
	evs, out := runCodex(t, bin, home, ws, base, `use-tool terminal {"command":"echo hermes-ran"}`)
	msgs := agentMessages(evs)
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "tool said: ") || !strings.Contains(msgs[0], "hermes-ran") {
		t.Fatalf("hermesd's tool run: answers %q\n%s", msgs, out)
	}
	checkCodexClean(t, evs, out)
	if sent := rec.sent(t); len(sent) != 1 {
		t.Fatalf("Codex sent %d requests for one turn (did it try to run hermesd's tool?): %v", len(sent), sent)
	}

	// 2. exec resume of that session: Codex sends the session back (store:
	// false); hermesd accepts it and the model sees each turn once. Codex
	// keeps hosted items it has no type for out of what it resends, so the
	// tool run lives on in the answer that quoted it.
	evs, out = runCodex(t, bin, home, ws, base, "resume", "--last", "follow-up")
	checkCodexClean(t, evs, out)
	msgs = agentMessages(evs)
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "seen ") || strings.Count(msgs[0], "(use-tool)") != 1 ||
		strings.Count(msgs[0], "assistant") != 1 {
		t.Fatalf("resume: answers %q\n%s", msgs, out)
	}
	t.Logf("the model saw on resume: %s", msgs[0])

	// 3. The model calls Codex's own exec_command: hermesd hands it back
	// as a function_call, Codex runs it and sends the output back.
	evs, out = runCodex(t, bin, home, ws, base, `use-tool exec_command {"cmd":"echo codex-ran"}`)
	var ran bool
	for _, ev := range evs {
		if ev.Type == "item.completed" && ev.Item.Type == "command_execution" && strings.Contains(ev.Item.AggregatedOutput, "codex-ran") {
			ran = true
		}
	}
	checkCodexClean(t, evs, out)
	msgs = agentMessages(evs)
	if !ran || len(msgs) != 1 || !strings.Contains(msgs[0], "codex-ran") {
		t.Fatalf("Codex's exec_command: ran %v, answers %q\n%s", ran, msgs, out)
	}
	sent := rec.sent(t)
	last := sent[len(sent)-1]
	if len(sent) != 4 || !strings.Contains(strings.Join(last, ","), "function_call,function_call_output") {
		t.Fatalf("requests %v", sent)
	}

	// 4. A tool Codex groups in a namespace (multi_agent_v1's close_agent):
	// the call comes back under the tool's own name with its namespace,
	// and Codex runs it (its answer is an error about the bogus id, not
	// "unsupported call").
	evs, out = runCodex(t, bin, home, ws, base, `use-tool close_agent {"target":"no-such-agent"}`)
	checkCodexClean(t, evs, out)
	msgs = agentMessages(evs)
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "tool said: ") {
		t.Fatalf("namespaced tool: answers %q\n%s", msgs, out)
	}
	rec.mu.Lock()
	lastBody := rec.bodies[len(rec.bodies)-1]
	rec.mu.Unlock()
	if !strings.Contains(lastBody, `"namespace":"multi_agent_v1"`) {
		t.Fatalf("Codex did not send the namespaced call back: %.2000s", lastBody)
	}
	t.Logf("Codex sent, per request: %v", rec.sent(t))
}

// agentsSDKUpstream: "use-tools" calls hermesd's terminal; after its
// result, the client's get_weather; after that, the final answer.
func agentsSDKUpstream(t *testing.T) *hermestest.Upstream {
	return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		role, text := call.Last()
		if role != "tool" {
			if strings.Contains(text, "use-tools") {
				return hermestest.Reply{ToolCalls: [][2]string{{"terminal", `{"command":"echo hermes-ran"}`}}}
			}
			return hermestest.Reply{Text: "plain answer"}
		}
		prev := call.Messages[len(call.Messages)-2]
		if len(prev.ToolCalls) > 0 && prev.ToolCalls[0].Function.Name == "terminal" {
			if !strings.Contains(text, "hermes-ran") {
				return hermestest.Reply{Text: "the terminal result was lost: " + text}
			}
			return hermestest.Reply{ToolCalls: [][2]string{{"get_weather", `{"city":"Paris"}`}}}
		}
		return hermestest.Reply{Text: "final: " + text}
	})
}

func TestNodeAgentsSDK(t *testing.T) {
	needNode(t)
	up := agentsSDKUpstream(t)
	h := startHermes(t, up.Env())
	rec := newRecorder(t, strings.TrimSuffix(h.URL(), "/v1"))
	res := runNode(t, "agents.mjs", "", rec.URL+"/v1")
	type run struct {
		Final       string
		Items       []string
		ClientCalls int
		Responses   int
		RawEvents   []string
	}
	for _, name := range []string{"responses", "responsesStream", "chat"} {
		var r run
		res.get(t, name, &r)
		t.Logf("%s: items %v, raw events %v", name, r.Items, r.RawEvents)
		if r.Final != "final: sunny in Paris" || r.ClientCalls != 1 {
			t.Errorf("%s: final %q after %d client tool runs (items %v)", name, r.Final, r.ClientCalls, r.Items)
		}
		var hosted, fnCalls int
		for _, it := range r.Items {
			if strings.Contains(it, "hosted_tool_call") {
				hosted++
			}
			if strings.Contains(it, "function_call:get_weather") {
				fnCalls++
			}
			if strings.Contains(it, "terminal") && !strings.Contains(it, "hosted") {
				t.Errorf("%s: hermesd's terminal run reached the SDK as a call to run: %v", name, r.Items)
			}
		}
		if fnCalls != 1 || (name != "chat" && hosted != 1) {
			t.Errorf("%s: %d hosted items, %d get_weather calls: %v", name, hosted, fnCalls, r.Items)
		}
	}
	// The SDK sends mcp_call items back without their output; the model
	// still sees the terminal's result, from the stored response.
	for _, c := range up.Calls() {
		for i, m := range c.Messages {
			if m.Role == "tool" && i > 0 && len(c.Messages[i-1].ToolCalls) > 0 &&
				c.Messages[i-1].ToolCalls[0].Function.Name == "terminal" && !strings.Contains(c.Text(i), "hermes-ran") {
				t.Errorf("the model saw the terminal result as %q", c.Text(i))
			}
		}
	}
	t.Logf("the SDK sent, per request: %v", rec.sent(t))
}
