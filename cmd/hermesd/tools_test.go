package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// planUpstream is a fake model that uses tools: for the latest user message
// u it makes the calls plan(u), one per model call, then answers with every
// tool result of the turn, one per line, after "results:".
func planUpstream(t testing.TB, plan func(user string) [][2]string) *hermestest.Upstream {
	return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		lastUser := -1
		for i, m := range call.Messages {
			if m.Role == "user" {
				lastUser = i
			}
		}
		user := ""
		if lastUser >= 0 {
			user = call.Text(lastUser)
		}
		var results []string
		for i := lastUser + 1; i < len(call.Messages); i++ {
			if call.Messages[i].Role == "tool" {
				results = append(results, call.Text(i))
			}
		}
		if steps := plan(user); len(results) < len(steps) {
			return hermestest.Reply{ToolCalls: [][2]string{steps[len(results)]}}
		}
		return hermestest.Reply{Text: "results:\n" + strings.Join(results, "\n")}
	})
}

// toolResults returns the texts of the tool messages the model saw in call.
func toolResults(call *hermestest.Call) []string {
	var out []string
	for i, m := range call.Messages {
		if m.Role == "tool" {
			out = append(out, call.Text(i))
		}
	}
	return out
}

// lastUpstreamCall is the last request the fake upstream received.
func lastUpstreamCall(t testing.TB, up *hermestest.Upstream) *hermestest.Call {
	t.Helper()
	calls := up.Calls()
	if len(calls) == 0 {
		t.Fatal("the upstream received no request")
	}
	return calls[len(calls)-1]
}

// upstreamSystem returns the system message of call, which must be its first
// and only one.
func upstreamSystem(t testing.TB, call *hermestest.Call) string {
	t.Helper()
	n := 0
	for _, m := range call.Messages {
		if m.Role == "system" {
			n++
		}
	}
	if len(call.Messages) == 0 || call.Messages[0].Role != "system" || n != 1 {
		t.Fatalf("want one leading system message among %d messages, got %d", len(call.Messages), n)
	}
	return call.Text(0)
}

// toolsChat sends messages through the SDK and returns the answer.
func toolsChat(t testing.TB, h *hermesd, msgs ...openai.ChatCompletionMessageParamUnion) string {
	t.Helper()
	got, err := h.client().Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "hermes-agent", Messages: msgs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Choices) != 1 {
		t.Fatalf("%d choices", len(got.Choices))
	}
	return got.Choices[0].Message.Content
}

func toolsWriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func toolNames(call *hermestest.Call) []string {
	var names []string
	for _, tl := range call.Tools {
		names = append(names, tl.Function.Name)
	}
	sort.Strings(names)
	return names
}

func TestToolsWriteThenReadFile(t *testing.T) {
	up := planUpstream(t, func(string) [][2]string {
		return [][2]string{
			{"write_file", `{"path":"notes/hello.txt","content":"alpha\nbeta\ngamma\n"}`},
			{"read_file", `{"path":"notes/hello.txt"}`},
		}
	})
	h := startHermes(t, up.Env())
	answer := toolsChat(t, h, openai.UserMessage("write and read a note"))

	data, err := os.ReadFile(filepath.Join(h.Workspace, "notes", "hello.txt"))
	if err != nil || string(data) != "alpha\nbeta\ngamma\n" {
		t.Fatalf("file in the workspace: %q %v", data, err)
	}
	res := toolResults(lastUpstreamCall(t, up))
	if len(res) != 2 {
		t.Fatalf("model saw %d tool results, want 2: %q", len(res), res)
	}
	var w struct {
		Path         string `json:"path"`
		BytesWritten int    `json:"bytes_written"`
	}
	if err := json.Unmarshal([]byte(res[0]), &w); err != nil || w.Path != "notes/hello.txt" || w.BytesWritten != 17 {
		t.Fatalf("write_file result %s (%v)", res[0], err)
	}
	var r struct {
		Content    string `json:"content"`
		TotalLines int    `json:"total_lines"`
	}
	if err := json.Unmarshal([]byte(res[1]), &r); err != nil {
		t.Fatalf("read_file result %s: %v", res[1], err)
	}
	if r.Content != "1|alpha\n2|beta\n3|gamma\n" || r.TotalLines != 3 {
		t.Fatalf("read_file result %s", res[1])
	}
	if !strings.Contains(answer, `2|beta`) {
		t.Fatalf("answer lacks the numbered line: %q", answer)
	}
}

func TestToolsMemoryReachesNextConversation(t *testing.T) {
	const fact = "The user's cat is named Mochi"
	up := planUpstream(t, func(user string) [][2]string {
		if strings.Contains(user, "remember") {
			return [][2]string{{"memory", `{"action":"add","content":"` + fact + `"}`}}
		}
		return nil
	})
	h := startHermes(t, up.Env())
	answer := toolsChat(t, h, openai.UserMessage("remember my cat's name: Mochi"))
	if !strings.Contains(answer, `"success":true`) {
		t.Fatalf("memory add answer %q", answer)
	}
	if first := up.Calls()[0]; strings.Contains(upstreamSystem(t, first), fact) {
		t.Fatal("the fact was in the prompt before it was saved")
	}
	data, err := os.ReadFile(filepath.Join(h.Home, "memories", "MEMORY.md"))
	if err != nil || !strings.Contains(string(data), fact) {
		t.Fatalf("MEMORY.md: %q %v", data, err)
	}

	before := len(up.Calls())
	toolsChat(t, h, openai.UserMessage("hello again"))
	calls := up.Calls()
	if len(calls) != before+1 {
		t.Fatalf("second conversation made %d upstream calls, want 1", len(calls)-before)
	}
	sys := upstreamSystem(t, calls[before])
	if !strings.Contains(sys, "## Memory (your notes)\n") || !strings.Contains(sys, "<memory-notes>\n"+fact+"\n</memory-notes>") {
		t.Fatalf("new conversation's system prompt lacks the memory:\n%s", sys)
	}
}

const deploySkill = `---
name: deploy
description: Deploy the service to staging with a blue-green switch
tags: [ops, release]
---
# Deploy

1. Run make release-staging.
2. Flip the load balancer once health checks pass.
`

func TestToolsSkillsListAndView(t *testing.T) {
	home := t.TempDir()
	toolsWriteFile(t, filepath.Join(home, "skills", "devops", "deploy", "SKILL.md"), deploySkill)
	up := planUpstream(t, func(string) [][2]string {
		return [][2]string{{"skills_list", `{}`}, {"skill_view", `{"name":"deploy"}`}}
	})
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"HERMES_HOME": home}))
	toolsChat(t, h, openai.UserMessage("how do I deploy?"))

	calls := up.Calls()
	sys := upstreamSystem(t, calls[0])
	if !strings.Contains(sys, "## Skills\n- deploy: Deploy the service to staging with a blue-green switch") {
		t.Fatalf("system prompt lacks the skills index:\n%s", sys)
	}
	res := toolResults(lastUpstreamCall(t, up))
	if len(res) != 2 {
		t.Fatalf("tool results %q", res)
	}
	var list struct {
		Skills []struct {
			Name, Category, Description string
			Tags                        []string
		} `json:"skills"`
	}
	if err := json.Unmarshal([]byte(res[0]), &list); err != nil || len(list.Skills) != 1 {
		t.Fatalf("skills_list result %s (%v)", res[0], err)
	}
	if s := list.Skills[0]; s.Name != "deploy" || s.Category != "devops" || !reflect.DeepEqual(s.Tags, []string{"ops", "release"}) ||
		!strings.Contains(s.Description, "blue-green") {
		t.Fatalf("skills_list entry %+v", s)
	}
	var view struct {
		Name, Content string
	}
	if err := json.Unmarshal([]byte(res[1]), &view); err != nil || view.Name != "deploy" ||
		!strings.Contains(view.Content, "1. Run make release-staging.") {
		t.Fatalf("skill_view result %s (%v)", res[1], err)
	}
}

// terminalResult decodes a terminal tool result.
type terminalResult struct {
	Output   string  `json:"output"`
	ExitCode int     `json:"exit_code"`
	Error    *string `json:"error"`
}

func TestToolsTerminalBlockedAndNeedsApproval(t *testing.T) {
	up := planUpstream(t, func(user string) [][2]string {
		switch {
		case strings.Contains(user, "wipe"):
			return [][2]string{{"terminal", `{"command":"rm -rf /"}`}}
		case strings.Contains(user, "reset"):
			return [][2]string{{"terminal", `{"command":"git reset --hard"}`}}
		}
		return nil
	})
	h := startHermes(t, up.Env())
	keep := filepath.Join(h.Workspace, "keep.txt")
	toolsWriteFile(t, keep, "still here")

	answer := toolsChat(t, h, openai.UserMessage("wipe the disk"))
	res := toolResults(lastUpstreamCall(t, up))
	var tr terminalResult
	if len(res) != 1 || json.Unmarshal([]byte(res[0]), &tr) != nil || tr.Error == nil {
		t.Fatalf("blocked result %q", res)
	}
	if !strings.HasPrefix(*tr.Error, "BLOCKED: ") || tr.ExitCode == 0 || tr.Output != "" {
		t.Fatalf("blocked result %s", res[0])
	}
	if !strings.Contains(answer, "BLOCKED") {
		t.Fatalf("answer %q", answer)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("workspace file gone: %v", err)
	}

	// The server keeps serving.
	resp, body := h.do(t, "GET", "/health", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("health after a blocked command: %d %s", resp.StatusCode, body)
	}
	toolsChat(t, h, openai.UserMessage("reset the repo"))
	res = toolResults(lastUpstreamCall(t, up))
	tr = terminalResult{}
	if len(res) != 1 || json.Unmarshal([]byte(res[0]), &tr) != nil || tr.Error == nil {
		t.Fatalf("approval result %q", res)
	}
	if !strings.HasPrefix(*tr.Error, "NEEDS APPROVAL: ") || !strings.Contains(*tr.Error, "it was not run") ||
		!strings.Contains(*tr.Error, "HERMES_TERMINAL_APPROVE=all") || tr.ExitCode == 0 {
		t.Fatalf("approval result %s", res[0])
	}
}

func TestToolsWorkspaceJail(t *testing.T) {
	up := planUpstream(t, func(string) [][2]string {
		return [][2]string{
			{"read_file", `{"path":"../../etc/passwd"}`},
			{"read_file", `{"path":".env"}`},
			{"read_file", `{"path":"/etc/passwd"}`},
			{"read_file", `{"path":"etc-link/passwd"}`},
			{"write_file", `{"path":"../escaped.txt","content":"x"}`},
			{"write_file", `{"path":"config/.env","content":"A=1"}`},
		}
	})
	h := startHermes(t, up.Env())
	toolsWriteFile(t, filepath.Join(h.Workspace, ".env"), "OPENAI_API_KEY=sk-very-secret-value\n")
	if err := os.Symlink("/etc", filepath.Join(h.Workspace, "etc-link")); err != nil {
		t.Fatal(err)
	}
	answer := toolsChat(t, h, openai.UserMessage("read some files"))

	res := toolResults(lastUpstreamCall(t, up))
	want := []string{
		"path escapes the workspace",
		"access to credential files is denied",
		"path escapes the workspace",
		"path escapes the workspace through a symlink",
		"path escapes the workspace",
		"access to credential files is denied",
	}
	if len(res) != len(want) {
		t.Fatalf("tool results %q", res)
	}
	for i, r := range res {
		var e struct {
			Error   string `json:"error"`
			Content string `json:"content"`
		}
		if err := json.Unmarshal([]byte(r), &e); err != nil || !strings.Contains(e.Error, want[i]) || e.Content != "" {
			t.Fatalf("result %d: %s, want an error with %q", i, r, want[i])
		}
	}
	if strings.Contains(answer, "root:") || strings.Contains(answer, "sk-very-secret") {
		t.Fatalf("jailed content leaked: %q", answer)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(h.Workspace), "escaped.txt")); err == nil {
		t.Fatal("write_file wrote outside the workspace")
	}
	if _, err := os.Stat(filepath.Join(h.Workspace, "config", ".env")); err == nil {
		t.Fatal("write_file wrote a .env file")
	}
}

func listTools(t testing.TB, h *hermesd) []string {
	t.Helper()
	resp, body := h.do(t, "GET", "/v1/tools", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/tools: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || list.Object != "list" {
		t.Fatalf("GET /v1/tools: %s (%v)", body, err)
	}
	var names []string
	for _, d := range list.Data {
		if d.Type != "function" {
			t.Fatalf("tool %q has type %q", d.Name, d.Type)
		}
		names = append(names, d.Name)
	}
	sort.Strings(names)
	return names
}

func TestToolsSelection(t *testing.T) {
	all := []string{"memory", "patch", "read_file", "search_files", "skill_view", "skills_list",
		"terminal", "todo", "web_extract", "web_search", "write_file"}
	without := func(list []string, drop string) []string {
		var out []string
		for _, n := range list {
			if n != drop {
				out = append(out, n)
			}
		}
		return out
	}
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"all", nil, all},
		{"disabled", map[string]string{"HERMES_DISABLED_TOOLS": "terminal"}, without(all, "terminal")},
		{"only", map[string]string{"HERMES_TOOLS": "read_file,memory"}, []string{"memory", "read_file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			toolsWriteFile(t, filepath.Join(home, "skills", "devops", "deploy", "SKILL.md"), deploySkill)
			// The model calls terminal whether or not it was offered.
			up := planUpstream(t, func(string) [][2]string {
				return [][2]string{{"terminal", `{"command":"echo ran > ran.txt"}`}}
			})
			h := startHermes(t, mergeEnv(up.Env(), mergeEnv(tc.env, map[string]string{"HERMES_HOME": home})))
			if got := listTools(t, h); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("GET /v1/tools = %v, want %v", got, tc.want)
			}
			toolsChat(t, h, openai.UserMessage("hi"))
			call := up.Calls()[0]
			if got := toolNames(call); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("model saw tools %v, want %v", got, tc.want)
			}
			enabled := func(name string) bool { return slices.Contains(tc.want, name) }
			// Tool guidance and the skills index follow the selection too.
			sys := upstreamSystem(t, call)
			if got := strings.Contains(sys, "- terminal: "); got != enabled("terminal") {
				t.Fatalf("terminal guidance present=%v in:\n%s", got, sys)
			}
			if got := strings.Contains(sys, "## Skills\n- deploy"); got != enabled("skill_view") {
				t.Fatalf("skills index present=%v with skill_view enabled=%v in:\n%s", got, enabled("skill_view"), sys)
			}
			res := toolResults(lastUpstreamCall(t, up))
			_, err := os.Stat(filepath.Join(h.Workspace, "ran.txt"))
			if enabled("terminal") {
				if len(res) != 1 || !strings.Contains(res[0], `"exit_code":0`) || err != nil {
					t.Fatalf("terminal result %q, ran.txt: %v", res, err)
				}
				return
			}
			if len(res) != 1 || !strings.Contains(res[0], `unknown tool \"terminal\"`) || err == nil {
				t.Fatalf("a disabled tool ran or did not refuse: %q (ran.txt: %v)", res, err)
			}
		})
	}
}

func TestToolsLayeredPrompt(t *testing.T) {
	home, ws := t.TempDir(), t.TempDir()
	toolsWriteFile(t, filepath.Join(home, "SOUL.md"), "You are Testbot. SOUL-MARK identity.\n")
	toolsWriteFile(t, filepath.Join(home, "memories", "MEMORY.md"), "MEMORY-MARK the build uses make\n")
	toolsWriteFile(t, filepath.Join(home, "skills", "lint", "SKILL.md"), "---\nname: lint\ndescription: SKILLS-MARK run the linters\n---\nRun golangci-lint.\n")
	toolsWriteFile(t, filepath.Join(ws, "AGENTS.md"), "AGENTS-MARK: indent with tabs.\n")
	up := planUpstream(t, func(string) [][2]string { return nil })
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": ws}))
	toolsChat(t, h, openai.SystemMessage("CALLER-MARK answer in French."), openai.UserMessage("bonjour"))

	sys := upstreamSystem(t, lastUpstreamCall(t, up))
	// prompt.Builder.Build: identity + tool guidance, caller system, memory,
	// skills index, workspace context files.
	order := []string{
		"You are Testbot. SOUL-MARK identity.",
		"## Using your tools",
		"CALLER-MARK answer in French.",
		"## Memory (your notes)\n",
		"<memory-notes>\nMEMORY-MARK the build uses make\n</memory-notes>",
		"## Skills\n- lint: SKILLS-MARK run the linters",
		"## Project context",
		"### AGENTS.md\nAGENTS-MARK: indent with tabs.",
	}
	if !strings.HasPrefix(sys, order[0]) {
		t.Fatalf("prompt does not start with SOUL.md:\n%s", sys)
	}
	last := -1
	for _, part := range order {
		i := strings.Index(sys, part)
		if i < 0 {
			t.Fatalf("prompt lacks %q:\n%s", part, sys)
		}
		if i <= last {
			t.Fatalf("%q out of order in:\n%s", part, sys)
		}
		if strings.Count(sys, part) != 1 {
			t.Fatalf("%q appears more than once in:\n%s", part, sys)
		}
		last = i
	}
	if strings.Contains(sys, "You are Hermes") {
		t.Fatalf("SOUL.md did not replace the default identity:\n%s", sys)
	}
	if !strings.HasSuffix(sys, order[len(order)-1]) {
		t.Fatalf("prompt does not end with the context files:\n%s", sys)
	}
	// Only the user message follows: the caller's system message is not
	// sent a second time.
	call := lastUpstreamCall(t, up)
	if len(call.Messages) != 2 || call.Messages[1].Role != "user" {
		t.Fatalf("upstream messages: %d", len(call.Messages))
	}

	// Responses: instructions take the caller's place and are not
	// inherited by the next response in the chain.
	c := h.client()
	first, err := c.Responses.New(context.Background(), responses.ResponseNewParams{
		Model:        "hermes-agent",
		Instructions: openai.String("INSTR-MARK be terse."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	if err != nil {
		t.Fatal(err)
	}
	sys = upstreamSystem(t, lastUpstreamCall(t, up))
	guide, instr, mem := strings.Index(sys, "## Using your tools"), strings.Index(sys, "INSTR-MARK be terse."), strings.Index(sys, "## Memory")
	if !(guide < instr && instr < mem) || guide < 0 || strings.Contains(sys, "CALLER-MARK") {
		t.Fatalf("instructions not in the caller's layer:\n%s", sys)
	}
	if _, err := c.Responses.New(context.Background(), responses.ResponseNewParams{
		Model:              "hermes-agent",
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("again")},
		PreviousResponseID: openai.String(first.ID),
	}); err != nil {
		t.Fatal(err)
	}
	if sys = upstreamSystem(t, lastUpstreamCall(t, up)); strings.Contains(sys, "INSTR-MARK") || !strings.Contains(sys, "SOUL-MARK") {
		t.Fatalf("second response's prompt:\n%s", sys)
	}
}

func TestToolsTodoKeptWithResponseChain(t *testing.T) {
	const list = `{"todos":[{"id":"1","content":"write the tests","status":"in_progress"},{"id":"2","content":"ship it","status":"pending"}]}`
	up := planUpstream(t, func(user string) [][2]string {
		switch {
		case strings.Contains(user, "plan"):
			return [][2]string{{"todo", list}}
		case strings.Contains(user, "left"):
			return [][2]string{{"todo", `{}`}}
		}
		return nil
	})
	h := startHermes(t, up.Env())
	c := h.client()
	ctx := context.Background()
	first, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "hermes-agent",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("plan the work")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != "completed" {
		t.Fatalf("turn 1 status %q", first.Status)
	}
	written := toolResults(lastUpstreamCall(t, up))
	if len(written) != 1 {
		t.Fatalf("turn 1 tool results %q", written)
	}
	type todoResult struct {
		Todos []struct {
			ID, Content, Status string
		} `json:"todos"`
		Summary map[string]int `json:"summary"`
	}
	var w todoResult
	if err := json.Unmarshal([]byte(written[0]), &w); err != nil || len(w.Todos) != 2 || w.Summary["in_progress"] != 1 || w.Summary["pending"] != 1 {
		t.Fatalf("todo write result %s (%v)", written[0], err)
	}

	second, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model:              "hermes-agent",
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("what is left?")},
		PreviousResponseID: openai.String(first.ID),
	})
	if err != nil {
		t.Fatal(err)
	}
	res := toolResults(lastUpstreamCall(t, up))
	if len(res) != 2 {
		t.Fatalf("turn 2 saw tool results %q, want turn 1's and its own", res)
	}
	var r todoResult
	if err := json.Unmarshal([]byte(res[1]), &r); err != nil || !reflect.DeepEqual(r, w) {
		t.Fatalf("todo read %s, want %s (%v)", res[1], written[0], err)
	}
	if !strings.Contains(second.OutputText(), "write the tests") {
		t.Fatalf("turn 2 answer %q", second.OutputText())
	}

	// The list belongs to the chain: a fresh conversation has none.
	if _, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "hermes-agent",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("anything left?")},
	}); err != nil {
		t.Fatal(err)
	}
	res = toolResults(lastUpstreamCall(t, up))
	if len(res) != 1 || json.Unmarshal([]byte(res[0]), &r) != nil || len(r.Todos) != 0 {
		t.Fatalf("fresh conversation's todo read %q", res)
	}
}

// searchItem is one normalized web_search result.
type searchItem struct {
	Title       string `json:"title"`
	URL         string `json:"url"`
	Description string `json:"description"`
	Position    int    `json:"position"`
}

func TestToolsProgressLabelsAndWebSearch(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	searx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/search" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		queries = append(queries, r.URL.Query().Get("q")+"|"+r.URL.Query().Get("format"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"query":"golang generics","results":[` +
			`{"title":"<b>Go</b> generics &amp; you","url":" https://go.dev/doc/tutorial/generics ","content":"A <em>tutorial</em>\n  on   type parameters"},` +
			`{"title":"no url","url":"","content":"dropped"},` +
			`{"title":"Second","url":"https://example.com/2","content":"two"}]}`))
	}))
	defer searx.Close()

	home := t.TempDir()
	toolsWriteFile(t, filepath.Join(home, "skills", "devops", "deploy", "SKILL.md"), deploySkill)
	steps := []struct {
		call   [2]string
		marker string
	}{
		{[2]string{"read_file", `{"path":"src/main.go","offset":2,"limit":3}`}, "📖 src/main.go:2-4"},
		{[2]string{"web_search", `{"query":"golang generics"}`}, "🔍 golang generics"},
		{[2]string{"write_file", `{"path":"out/new.txt","content":"x"}`}, "✍️ out/new.txt"},
		{[2]string{"patch", `{"path":"out/new.txt","old_string":"x","new_string":"y"}`}, "🔧 out/new.txt"},
		{[2]string{"search_files", `{"pattern":"println","glob":"*.go"}`}, "🔎 println (*.go)"},
		{[2]string{"terminal", `{"command":"echo hi"}`}, "💻 echo hi"},
		{[2]string{"web_extract", `{"urls":["` + searx.URL + `/page"]}`}, "📄 " + searx.URL + "/page"},
		{[2]string{"memory", `{"action":"add","target":"user","content":"likes Go"}`}, "🧠 add user"},
		{[2]string{"skills_list", `{}`}, "📚 skills"},
		{[2]string{"skill_view", `{"name":"deploy"}`}, "📚 deploy"},
		{[2]string{"todo", `{"todos":[{"id":"1","content":"a","status":"pending"}]}`}, "📋 1 task"},
	}
	up := planUpstream(t, func(string) [][2]string {
		var calls [][2]string
		for _, s := range steps {
			calls = append(calls, s.call)
		}
		return calls
	})
	h := startHermes(t, mergeEnv(up.Env(), map[string]string{"HERMES_HOME": home,
		"HERMES_WEB_BACKEND": "searxng", "SEARXNG_URL": searx.URL}))
	toolsWriteFile(t, filepath.Join(h.Workspace, "src", "main.go"), "package main\n\nfunc main() {\n\tprintln(1)\n}\n")

	text := streamText(t, h, "look it up")
	last := -1
	for _, s := range steps {
		i := strings.Index(text, "\n`"+s.marker+"`\n")
		if i <= last {
			t.Fatalf("marker %q missing or out of order in %q", s.marker, text)
		}
		last = i
	}

	mu.Lock()
	got := append([]string(nil), queries...)
	mu.Unlock()
	if !reflect.DeepEqual(got, []string{"golang generics|json"}) {
		t.Fatalf("searxng saw %q", got)
	}
	res := toolResults(lastUpstreamCall(t, up))
	if len(res) != len(steps) {
		t.Fatalf("tool results %q", res)
	}
	var ex struct {
		Results []struct {
			URL, Content, Error string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(res[6]), &ex); err != nil || len(ex.Results) != 1 || ex.Results[0].Content != "" ||
		!strings.Contains(ex.Results[0].Error, "private, loopback or reserved address") {
		t.Fatalf("web_extract of a loopback URL was not refused: %s (%v)", res[6], err)
	}
	if data, err := os.ReadFile(filepath.Join(h.Workspace, "out", "new.txt")); err != nil || string(data) != "y" {
		t.Fatalf("write_file then patch left %q (%v)", data, err)
	}
	if !strings.Contains(res[5], `"output":"hi\n"`) {
		t.Fatalf("terminal result %s", res[5])
	}
	var rf struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal([]byte(res[0]), &rf); err != nil || rf.Content != "2|\n3|func main() {\n4|\tprintln(1)\n" {
		t.Fatalf("read_file result %s (%v)", res[0], err)
	}
	var ws struct {
		Backend string       `json:"backend"`
		Query   string       `json:"query"`
		Results []searchItem `json:"results"`
	}
	if err := json.Unmarshal([]byte(res[1]), &ws); err != nil {
		t.Fatalf("web_search result %s: %v", res[1], err)
	}
	want := []searchItem{
		{"Go generics & you", "https://go.dev/doc/tutorial/generics", "A tutorial on type parameters", 1},
		{"Second", "https://example.com/2", "two", 2},
	}
	if ws.Backend != "searxng" || ws.Query != "golang generics" || !reflect.DeepEqual(ws.Results, want) {
		t.Fatalf("web_search result %s", res[1])
	}
}
