package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// The official OpenAI Node SDK and the Vercel AI SDK, unchanged, against
// hermesd. The scripts live in testdata/node and print one JSON object of
// observations; the assertions are here. Install their packages with
// .ci/node-deps (npm ci in testdata/node).

const nodeDir = "testdata/node"

// nodeResults is what one script run printed: case name → observation.
type nodeResults map[string]json.RawMessage

// needNode skips the test when node or the installed packages are missing.
func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH; install Node 20+ and run .ci/node-deps")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules")); err != nil {
		t.Skip("cmd/hermesd/testdata/node/node_modules is missing; run .ci/node-deps")
	}
}

// runNode runs `node script mode` against base and decodes its output.
func runNode(t *testing.T, script, mode, base string) nodeResults {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, mode)
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "HERMES_BASE_URL="+base, "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s %s: %v\nstderr:\n%s\nstdout:\n%s", script, mode, err, stderr.String(), stdout.String())
	}
	var res nodeResults
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("node %s %s printed no JSON: %v\nstdout:\n%s\nstderr:\n%s", script, mode, err, stdout.String(), stderr.String())
	}
	return res
}

// get decodes case name into v, failing with the script's error when the
// case threw.
func (r nodeResults) get(t *testing.T, name string, v any) {
	t.Helper()
	raw, ok := r[name]
	if !ok {
		t.Fatalf("case %s: no result", name)
	}
	var failed struct {
		Error  string          `json:"error"`
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	if json.Unmarshal(raw, &failed) == nil && failed.Error != "" {
		t.Fatalf("case %s threw (status %d, body %s):\n%s", name, failed.Status, failed.Body, failed.Error)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("case %s: %v in %s", name, err, raw)
	}
}

// weatherUpstream asks for get_weather until a tool result comes in, then
// answers with it. A user message starting "follow-up" is answered with the
// conversation the model received, one "role=text" entry per message.
func weatherUpstream(t *testing.T) *hermestest.Upstream {
	return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		role, text := call.Last()
		if role == "tool" {
			return hermestest.Reply{Text: "It is " + text + "."}
		}
		if strings.HasPrefix(text, "follow-up") {
			var seen []string
			for i, m := range call.Messages {
				if m.Role == "system" {
					continue
				}
				e := m.Role + "=" + call.Text(i)
				for _, tc := range m.ToolCalls {
					e += "[" + tc.Function.Name + " " + tc.Function.Arguments + "]"
				}
				seen = append(seen, e)
			}
			return hermestest.Reply{Text: strings.Join(seen, " | ")}
		}
		return hermestest.Reply{ToolCalls: [][2]string{{"get_weather", `{"city":"Paris"}`}}}
	})
}

type chatUsage struct {
	Prompt     int `json:"prompt_tokens"`
	Completion int `json:"completion_tokens"`
	Total      int `json:"total_tokens"`
}

type respUsage struct {
	Input  int `json:"input_tokens"`
	Output int `json:"output_tokens"`
	Total  int `json:"total_tokens"`
}

func TestNodeOpenAISDK(t *testing.T) {
	needNode(t)
	t.Run("offline", func(t *testing.T) {
		h := startHermes(t, nil)
		res := runNode(t, "openai.mjs", "offline", h.URL())

		var chat struct {
			ID, Object, Model, Content, Finish string
			Usage                              chatUsage
		}
		res.get(t, "chat", &chat)
		if !strings.HasPrefix(chat.ID, "chatcmpl-") || chat.Object != "chat.completion" || chat.Model != "hermes-agent" ||
			chat.Content != "Hermes (offline model) heard: hello from node" || chat.Finish != "stop" ||
			chat.Usage.Completion == 0 || chat.Usage.Total != chat.Usage.Prompt+chat.Usage.Completion {
			t.Errorf("chat.completions.create: %+v", chat)
		}

		var cs struct {
			Chunks       int
			IDs          []string
			Text, Finish string
			Usage        *chatUsage
		}
		res.get(t, "chatStream", &cs)
		// role chunk, 7 tokens, finish chunk, usage chunk
		if cs.Chunks != 10 || len(cs.IDs) != 1 || cs.Text != "tok1 tok2 tok3 tok4 tok5 tok6 tok7" || cs.Finish != "stop" ||
			cs.Usage == nil || cs.Usage.Completion != 7 || cs.Usage.Total != cs.Usage.Prompt+7 {
			t.Errorf("chat.completions.create stream: %+v usage %+v", cs, cs.Usage)
		}

		var r struct {
			ID, Object, Status, OutputText string
			OutputTypes                    []string
			Usage                          respUsage
		}
		res.get(t, "responses", &r)
		if !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" || r.Status != "completed" ||
			r.OutputText != "Hermes (offline model) heard: hello responses" || strings.Join(r.OutputTypes, ",") != "message" ||
			r.Usage.Output == 0 || r.Usage.Total != r.Usage.Input+r.Usage.Output {
			t.Errorf("responses.create: %+v", r)
		}

		var rs struct {
			Types                            []string
			Seqs                             []int
			Text, CompletedID, CompletedText string
			Usage                            *respUsage
		}
		res.get(t, "responsesStream", &rs)
		want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
		for i := 0; i < 5; i++ {
			want = append(want, "response.output_text.delta")
		}
		want = append(want, "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed")
		if strings.Join(rs.Types, " ") != strings.Join(want, " ") {
			t.Errorf("responses stream events:\n got %v\nwant %v", rs.Types, want)
		}
		for i, s := range rs.Seqs {
			if s != i {
				t.Errorf("sequence numbers %v, want 0,1,2…", rs.Seqs)
				break
			}
		}
		if rs.Text != "tok1 tok2 tok3 tok4 tok5" || rs.CompletedText != rs.Text || !strings.HasPrefix(rs.CompletedID, "resp_") ||
			rs.Usage == nil || rs.Usage.Output != 5 {
			t.Errorf("responses stream: text %q completed %q id %q usage %+v", rs.Text, rs.CompletedText, rs.CompletedID, rs.Usage)
		}

		var hs struct{ Deltas, Status, OutputText string }
		res.get(t, "responsesHelperStream", &hs)
		if hs.Deltas != "tok1 tok2 tok3" || hs.Status != "completed" || hs.OutputText != hs.Deltas {
			t.Errorf("responses.stream helper: %+v", hs)
		}

		var at struct {
			Types, OutputTypes []string
			Status, Text       string
			Call               []struct {
				Name, Args, ServerLabel, Output string
				Error                           *string
			}
		}
		res.get(t, "agentToolStream", &at)
		if at.Status != "completed" || strings.Join(at.OutputTypes, ",") != "mcp_call,message" ||
			len(at.Call) != 1 || at.Call[0].Name != "terminal" || at.Call[0].Args != `{"command":"echo node-was-here"}` ||
			at.Call[0].ServerLabel != "hermes" || at.Call[0].Error != nil ||
			!strings.Contains(at.Call[0].Output, "node-was-here") || !strings.HasPrefix(at.Text, "terminal returned: ") ||
			at.Types[len(at.Types)-1] != "response.completed" {
			t.Errorf("responses.stream with an agent tool: %+v", at)
		}

		var chain struct {
			IDs       []string
			Prev      []*string
			Last      string
			Retrieved struct{ ID, Status, Text, Prev string }
		}
		res.get(t, "chain", &chain)
		if len(chain.IDs) != 3 || chain.Prev[0] != nil || chain.Prev[1] == nil || *chain.Prev[1] != chain.IDs[0] ||
			chain.Prev[2] == nil || *chain.Prev[2] != chain.IDs[1] {
			t.Errorf("chain ids %v previous %v", chain.IDs, chain.Prev)
		}
		wantHist := "user: first marker zebra\nassistant: Hermes (offline model) heard: first marker zebra\n" +
			"user: second marker yak\nassistant: Hermes (offline model) heard: second marker yak\nuser: /echo-history"
		if !strings.HasSuffix(chain.Last, wantHist) {
			t.Errorf("third turn saw history\n%s\nwant it to end with\n%s", chain.Last, wantHist)
		}
		if chain.Retrieved.ID != chain.IDs[2] || chain.Retrieved.Status != "completed" || chain.Retrieved.Text != chain.Last ||
			chain.Retrieved.Prev != chain.IDs[1] {
			t.Errorf("responses.retrieve: %+v", chain.Retrieved)
		}

		var conv struct {
			A, B         string
			Conversation struct{ ID string }
		}
		res.get(t, "conversation", &conv)
		if !strings.HasSuffix(conv.B, "user: remember the walrus\nassistant: "+conv.A+"\nuser: /echo-history") ||
			!strings.HasPrefix(conv.Conversation.ID, "node-conv-") {
			t.Errorf("conversation: %+v", conv)
		}

		var nf struct {
			Status int
			Name   string
		}
		res.get(t, "notFound", &nf)
		if nf.Status != 404 || nf.Name != "NotFoundError" {
			t.Errorf("retrieve unknown: %+v", nf)
		}
	})

	t.Run("tools", func(t *testing.T) {
		up := weatherUpstream(t)
		h := startHermes(t, up.Env())
		res := runNode(t, "openai.mjs", "tools", h.URL())

		var ct struct {
			Finish1, Finish2, Answer string
			Calls                    []struct{ ID, Name, Args string }
		}
		res.get(t, "chatTool", &ct)
		if ct.Finish1 != "tool_calls" || len(ct.Calls) != 1 || ct.Calls[0].Name != "get_weather" || ct.Calls[0].Args != `{"city":"Paris"}` ||
			ct.Finish2 != "stop" || ct.Answer != "It is sunny." {
			t.Errorf("chat tool round trip: %+v", ct)
		}
		var sawAnswer bool
		for _, c := range up.Calls() {
			if role, text := c.Last(); role == "tool" && text == "sunny" && len(ct.Calls) == 1 &&
				c.Messages[len(c.Messages)-1].ToolCallID == ct.Calls[0].ID {
				sawAnswer = true
			}
		}
		if !sawAnswer {
			t.Errorf("upstream never saw the script's tool message answering %+v", ct.Calls)
		}

		var cts struct {
			Finish      string
			Done, Calls []struct{ Name, Args string }
		}
		res.get(t, "chatToolStream", &cts)
		if cts.Finish != "tool_calls" || len(cts.Done) != 1 || cts.Done[0].Name != "get_weather" || cts.Done[0].Args != `{"city":"Paris"}` ||
			len(cts.Calls) != 1 || cts.Calls[0] != cts.Done[0] {
			t.Errorf("chat tool stream: %+v", cts)
		}
	})
}

// vercelText is what the script records of a generateText/streamText result.
type vercelText struct {
	Text, FinishReason, ResponseID string
	Parts, Errors                  []string
	Usage                          struct{ InputTokens, OutputTokens, TotalTokens int }
}

func TestNodeVercelAISDK(t *testing.T) {
	needNode(t)
	t.Run("offline", func(t *testing.T) {
		h := startHermes(t, nil)
		res := runNode(t, "vercel.mjs", "offline", h.URL())

		var at struct {
			Text, FinishReason, FollowText string
			Steps                          int
			Content, FollowSent            []string
			Stream                         struct {
				Parts  []string
				Text   string
				Errors []string
			}
		}
		res.get(t, "agentTool", &at)
		t.Logf("Vercel AI SDK with an agent tool run: content %v; sent back %v; stream parts %v", at.Content, at.FollowSent, at.Stream.Parts)
		if !strings.Contains(at.Text, "vercel-ran") || at.FinishReason != "stop" || at.Steps != 1 ||
			strings.Join(at.Content, ",") != "tool-call:mcp.terminal:provider,tool-result:mcp.terminal:provider,text" ||
			!strings.Contains(at.FollowText, "vercel-ran") || len(at.Stream.Errors) > 0 || !strings.Contains(at.Stream.Text, "vercel-ran") {
			t.Errorf("agent tool run through the Vercel AI SDK: %+v", at)
		}

		for _, model := range []struct{ name, idPrefix string }{{"chat", "chatcmpl-"}, {"responses", "resp_"}, {"default", "resp_"}} {
			var g vercelText
			res.get(t, model.name+"Generate", &g)
			if g.Text != "Hermes (offline model) heard: hello vercel "+model.name || g.FinishReason != "stop" ||
				!strings.HasPrefix(g.ResponseID, model.idPrefix) || g.Usage.OutputTokens == 0 ||
				g.Usage.TotalTokens != g.Usage.InputTokens+g.Usage.OutputTokens {
				t.Errorf("generateText on %s: %+v", model.name, g)
			}
			var s vercelText
			res.get(t, model.name+"Stream", &s)
			if s.Text != "tok1 tok2 tok3 tok4 tok5 tok6" || s.FinishReason != "stop" || len(s.Errors) != 0 ||
				!strings.HasPrefix(s.ResponseID, model.idPrefix) || s.Usage.OutputTokens != 6 ||
				strings.Join(s.Parts, ",") != "start,start-step,text-start,text-delta,text-end,finish-step,finish" {
				t.Errorf("streamText on %s: %+v", model.name, s)
			}
		}

		var chain struct {
			IDs    []string
			Last   string
			Errors []string
		}
		res.get(t, "chain", &chain)
		wantHist := "user: vercel first penguin\nassistant: Hermes (offline model) heard: vercel first penguin\n" +
			"user: vercel second otter\nassistant: Hermes (offline model) heard: vercel second otter\nuser: /echo-history"
		if len(chain.IDs) != 3 || len(chain.Errors) != 0 || !strings.HasSuffix(chain.Last, wantHist) {
			t.Errorf("previousResponseId chain: ids %v errors %v, third turn saw\n%s\nwant it to end with\n%s",
				chain.IDs, chain.Errors, chain.Last, wantHist)
		}

		var ref struct {
			vercelText
			Sent [][]string
		}
		res.get(t, "itemReference", &ref)
		if len(ref.Sent) != 1 || strings.Join(ref.Sent[0], ",") != "message:user,item_reference,message:user" ||
			!strings.HasSuffix(ref.Text, "user: vercel first heron\nassistant: Hermes (offline model) heard: vercel first heron\nuser: /echo-history") {
			t.Errorf("item_reference: sent %v, the model saw\n%s", ref.Sent, ref.Text)
		}

		var msgs vercelText
		res.get(t, "messages", &msgs)
		if !strings.HasSuffix(msgs.Text, "user: vercel one koala\nassistant: noted koala\nuser: /echo-history") {
			t.Errorf("resent messages: the model saw\n%s", msgs.Text)
		}
	})

	t.Run("tools", func(t *testing.T) {
		up := weatherUpstream(t)
		h := startHermes(t, up.Env())
		res := runNode(t, "vercel.mjs", "tools", h.URL())

		var g struct {
			vercelText
			Executed   []string
			Steps      int
			StepFinish []string
			ToolCalls  []struct {
				Name  string
				Input struct{ City string }
			}
			ToolResults []string
			Sent        [][]string
			FollowUp    struct {
				Text string
				Sent [][]string
			}
		}
		res.get(t, "toolGenerate", &g)
		if strings.Join(g.Sent[0], ",") != "message:user" || strings.Join(g.Sent[1], ",") != "message:user,function_call,function_call_output" {
			t.Errorf("the SDK sent input items %v, want the call and its output on step 2", g.Sent)
		}
		wantSeen := `user=weather in Paris? | assistant=[get_weather {"city":"Paris"}] | tool=sunny in Paris | ` +
			`assistant=It is sunny in Paris. | user=follow-up: thanks`
		if g.FollowUp.Text != wantSeen || strings.Join(g.FollowUp.Sent[0], ",") != "message:user,function_call,function_call_output,item_reference,message:user" {
			t.Errorf("next turn with the exchange resent (items %v): the model saw\n%s\nwant\n%s", g.FollowUp.Sent, g.FollowUp.Text, wantSeen)
		}
		if len(g.Executed) != 1 || g.Executed[0] != "Paris" || g.Steps != 2 || strings.Join(g.StepFinish, ",") != "tool-calls,stop" ||
			len(g.ToolCalls) != 1 || g.ToolCalls[0].Name != "get_weather" || g.ToolCalls[0].Input.City != "Paris" ||
			g.Text != "It is sunny in Paris." {
			t.Errorf("generateText with a client tool on responses: %+v", g)
		}

		var s struct {
			vercelText
			Executed []string
			Steps    int
		}
		res.get(t, "toolStream", &s)
		if len(s.Errors) != 0 || len(s.Executed) != 1 || s.Steps != 2 || s.Text != "It is sunny in Paris." || s.FinishReason != "stop" {
			t.Errorf("streamText with a client tool on responses: %+v", s)
		}

		var c struct {
			vercelText
			Executed []string
			Steps    int
		}
		res.get(t, "toolChat", &c)
		if len(c.Executed) != 1 || c.Steps != 2 || c.Text != "It is sunny in Paris." {
			t.Errorf("generateText with a client tool on chat: %+v", c)
		}

		// Each second step reached the model as the call and its result.
		answered := 0
		for _, call := range up.Calls() {
			n := len(call.Messages)
			if role, text := call.Last(); role == "tool" && text == "sunny in Paris" {
				prev := call.Messages[n-2]
				if prev.Role == "assistant" && len(prev.ToolCalls) == 1 && prev.ToolCalls[0].ID == call.Messages[n-1].ToolCallID &&
					prev.ToolCalls[0].Function.Name == "get_weather" {
					answered++
				}
			}
		}
		if answered != 3 {
			t.Errorf("%d upstream calls carried the tool call and its result, want 3", answered)
		}
	})
}

// TestNodeReasoning: a reasoning upstream in each dialect, seen through the
// OpenAI Node SDK (chat reasoning_content, Responses reasoning items and
// events) and the Vercel AI SDK (reasoning parts).
func TestNodeReasoning(t *testing.T) {
	needNode(t)
	up := reasoningUpstream(t)
	h := startHermes(t, up.Env())
	const thought, answer = "The user greets me. I greet back.", "Hello there."

	res := runNode(t, "openai.mjs", "reasoning", h.URL())
	for _, form := range []string{"reasoning_content", "reasoning", "think"} {
		var c struct {
			Content, Reasoning string
			ReasoningTokens    int
		}
		res.get(t, "chat_"+form, &c)
		if c.Content != answer || c.Reasoning != thought || c.ReasoningTokens != 7 {
			t.Errorf("openai chat.completions.create, upstream form %s: %+v", form, c)
		}
		var s struct{ Content, Reasoning string }
		res.get(t, "chatStream_"+form, &s)
		if s.Content != answer || s.Reasoning != thought {
			t.Errorf("openai chat stream, upstream form %s: %+v", form, s)
		}
		t.Logf("openai SDK, upstream %s: message.content %q, reasoning_content %q", form, c.Content, c.Reasoning)
	}
	var rs struct {
		ReasoningText, SummaryText, OutputText string
		OutputTypes                            []string
		Item                                   struct {
			Content, Summary []struct{ Type, Text string }
			Encrypted        bool
		}
		ReasoningTokens int
	}
	res.get(t, "responsesStream", &rs)
	t.Logf("openai SDK responses.stream: %+v", rs)
	if rs.ReasoningText != thought || rs.SummaryText != thought || rs.OutputText != answer ||
		strings.Join(rs.OutputTypes, ",") != "reasoning,message" || !rs.Item.Encrypted || rs.ReasoningTokens != 7 ||
		len(rs.Item.Content) != 1 || rs.Item.Content[0].Type != "reasoning_text" || rs.Item.Content[0].Text != thought ||
		len(rs.Item.Summary) != 1 || rs.Item.Summary[0].Type != "summary_text" {
		t.Errorf("openai responses.stream with reasoning: %+v", rs)
	}

	res = runNode(t, "vercel.mjs", "reasoning", h.URL())
	var g struct {
		Text, ReasoningText string
		Content             []string
	}
	res.get(t, "generate", &g)
	t.Logf("Vercel AI SDK generateText: %+v", g)
	if g.Text != answer || g.ReasoningText != thought || strings.Join(g.Content, ",") != "reasoning,text" {
		t.Errorf("Vercel generateText with reasoning: %+v", g)
	}
	var s struct {
		Parts               []string
		ReasoningText, Text string
	}
	res.get(t, "stream", &s)
	t.Logf("Vercel AI SDK streamText parts: %v", s.Parts)
	if s.Text != answer || s.ReasoningText != thought ||
		!strings.Contains(strings.Join(s.Parts, ","), "reasoning-start,reasoning-delta,reasoning-end,text-start") {
		t.Errorf("Vercel streamText with reasoning: %+v", s)
	}
	var st struct {
		First, Second, Text string
		Sent                [][]string
	}
	res.get(t, "stateless", &st)
	t.Logf("Vercel AI SDK stateless second turn sent %v", st.Sent)
	if st.First != thought || st.Second != thought || st.Text != answer || len(st.Sent) != 1 ||
		!strings.Contains(strings.Join(st.Sent[0], ","), "reasoning") {
		t.Errorf("Vercel stateless turns with reasoning items sent back: %+v", st)
	}
}

// TestNodeFiles: the Node SDK's files.create uploads a file (the SDK's own
// multipart body), retrieve, list (auto-paging), content and delete answer
// it, and the file reaches the model by file_id in a Responses input_file
// and by file_data in a chat file part.
func TestNodeFiles(t *testing.T) {
	needNode(t)
	h := startHermes(t, nil)
	res := runNode(t, "openai.mjs", "files", h.URL())
	var f struct {
		Created struct {
			ID, Object, Filename, Purpose string
			Bytes                         int
		}
		Got, Content, ResponseText, ChatText string
		IDs                                  []string
		Deleted                              struct {
			ID      string
			Deleted bool
		}
	}
	res.get(t, "files", &f)
	c := f.Created
	if !strings.HasPrefix(c.ID, "file-") || c.Object != "file" || c.Filename != "cities.csv" || c.Purpose != "user_data" || c.Bytes != 15 {
		t.Errorf("files.create: %+v", c)
	}
	if f.Got != c.ID || len(f.IDs) != 1 || f.IDs[0] != c.ID || f.Content != "id,city\n1,Lyon\n" {
		t.Errorf("retrieve/list/content: %+v", f)
	}
	if !strings.Contains(f.ResponseText, "--- file: cities.csv ---") || !strings.Contains(f.ResponseText, "1,Lyon") {
		t.Errorf("input_file by file_id: the model saw %q", f.ResponseText)
	}
	if !strings.Contains(f.ChatText, "--- file: notes.md ---") || !strings.Contains(f.ChatText, "node was here") {
		t.Errorf("chat file part: the model saw %q", f.ChatText)
	}
	if !f.Deleted.Deleted || f.Deleted.ID != c.ID {
		t.Errorf("files.delete: %+v", f.Deleted)
	}
}
