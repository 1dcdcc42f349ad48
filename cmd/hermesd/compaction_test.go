package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// windowUpstream is an OpenAI-compatible model with a context window: a
// prompt over it (a quarter of its characters, tools included) is refused
// with OpenAI's own error body. It summarises deterministically (the user
// lines and earlier summaries it is given), answers "what is my …?" from
// "my … is X" anywhere in its prompt, and otherwise reads blob.txt once per
// user turn, then answers.
type windowUpstream struct {
	*httptest.Server
	window int

	mu       sync.Mutex
	refused  int
	summary  int
	maxSeen  int
	lastSeen string
}

var factRe = regexp.MustCompile(`my ([a-z ]+?) is ([A-Za-z]+)`)

func newWindowUpstream(t *testing.T, window int) *windowUpstream {
	u := &windowUpstream{window: window}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *windowUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Messages []struct {
			Role      string          `json:"role"`
			Content   json.RawMessage `json:"content"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"messages"`
		Tools json.RawMessage `json:"tools"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	chars := len(req.Tools)
	texts := make([]string, len(req.Messages))
	for i, m := range req.Messages {
		_ = json.Unmarshal(m.Content, &texts[i])
		chars += len(texts[i]) + len(m.ToolCalls)
	}
	tokens := chars/4 + 4*len(req.Messages)
	u.mu.Lock()
	u.maxSeen = max(u.maxSeen, tokens)
	if tokens > u.window {
		u.refused++
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":{"message":"This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`, u.window, tokens)
		return
	}
	u.mu.Unlock()

	var text string
	var call bool
	last := len(req.Messages) - 1
	switch {
	case strings.HasPrefix(texts[0], "You are compacting"):
		var lines []string
		for i, m := range req.Messages[1:last] {
			switch {
			case m.Role == "user":
				line := texts[i+1]
				if len(line) > 60 {
					line = line[:60] // a summary, not a copy
				}
				lines = append(lines, "user said: "+line)
			case strings.HasPrefix(texts[i+1], "[Summary of"):
				lines = append(lines, strings.TrimPrefix(texts[i+1][strings.Index(texts[i+1], "\n")+1:], "SUMMARY: "))
			}
		}
		text = "SUMMARY: " + strings.Join(lines, " | ")
		u.mu.Lock()
		u.summary++
		u.mu.Unlock()
	case req.Messages[last].Role == "user" && strings.HasPrefix(texts[last], "what is my "):
		what := strings.TrimSuffix(strings.TrimPrefix(texts[last], "what is my "), "?")
		text = "I do not know your " + what
		for _, s := range texts {
			for _, m := range factRe.FindAllStringSubmatch(s, -1) {
				if m[1] == what {
					text = "Your " + what + " is " + m[2]
				}
			}
		}
	case req.Messages[last].Role == "user":
		call = true
	default:
		text = "done"
	}
	u.mu.Lock()
	u.lastSeen = texts[0]
	u.mu.Unlock()

	w.Header().Set("Content-Type", "text/event-stream")
	bw := bufio.NewWriter(w)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(bw, "data: %s\n\n", b)
	}
	choice := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": "c", "object": "chat.completion.chunk", "choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	if call {
		send(choice(map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{"index": 0, "id": fmt.Sprintf("call_%d", len(req.Messages)),
			"type": "function", "function": map[string]any{"name": "read_file", "arguments": `{"path":"blob.txt"}`}}}}, nil))
		send(choice(map[string]any{}, "tool_calls"))
	} else {
		send(choice(map[string]any{"role": "assistant", "content": text}, nil))
		send(choice(map[string]any{}, "stop"))
	}
	send(map[string]any{"id": "c", "object": "chat.completion.chunk", "choices": []any{},
		"usage": map[string]any{"prompt_tokens": tokens, "completion_tokens": 5, "total_tokens": tokens + 5}})
	fmt.Fprint(bw, "data: [DONE]\n\n")
	bw.Flush()
}

type respObj struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  any    `json:"error"`
	Output []struct {
		ID               string `json:"id"`
		Type             string `json:"type"`
		EncryptedContent string `json:"encrypted_content"`
		Content          []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
}

func (r *respObj) text() string {
	var b strings.Builder
	for _, o := range r.Output {
		for _, c := range o.Content {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// TestLongConversationCompacts is issue 12's end-to-end test: 300 turns of
// a named conversation, each reading an 8 KB file, through a 16k-token
// window: every turn completes; a fact stated in turn 1 and another in the
// middle are answered in turn 300; a stream carries the compaction item; a
// stateless client handing that item back continues from it; a tampered
// item is 400.
func TestLongConversationCompacts(t *testing.T) {
	if testing.Short() {
		t.Skip("300 turns")
	}
	up := newWindowUpstream(t, 16000)
	env := map[string]string{"OPENAI_BASE_URL": up.URL + "/v1", "OPENAI_API_KEY": "sk-test", "HERMES_MODEL": "m",
		"HERMES_CONTEXT_WINDOW": "16000"}
	h := startHermes(t, env)
	if err := os.WriteFile(filepath.Join(h.Workspace, "blob.txt"), []byte(strings.Repeat(strings.Repeat("x", 80)+"\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	post := func(body string) respObj {
		t.Helper()
		resp, out := h.do(t, "POST", "/v1/responses", body)
		var r respObj
		if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &r) != nil || r.Status != "completed" {
			t.Fatalf("POST %.200s: %d %.500s", body, resp.StatusCode, out)
		}
		return r
	}
	compactions := 0
	for i := 1; i < 300; i++ {
		input := fmt.Sprintf("turn %d", i)
		switch i {
		case 1:
			input = "my name is Ada"
		case 150:
			input = "my colour is teal"
		}
		r := post(fmt.Sprintf(`{"conversation":"long","input":%q}`, input))
		for _, o := range r.Output {
			if o.Type == "compaction" {
				compactions++
				if !strings.HasPrefix(o.ID, "cmp_") || o.EncryptedContent == "" || strings.Contains(o.EncryptedContent, "SUMMARY") {
					t.Fatalf("turn %d: compaction item %+v", i, o)
				}
			}
		}
	}
	r := post(`{"conversation":"long","input":"what is my name?"}`)
	if !strings.Contains(r.text(), "Your name is Ada") {
		t.Errorf("turn 300 answered %q", r.text())
	}
	r = post(`{"conversation":"long","input":"what is my colour?"}`)
	if !strings.Contains(r.text(), "Your colour is teal") {
		t.Errorf("the fact of turn 150 is lost: %q", r.text())
	}
	if compactions == 0 {
		t.Fatal("300 turns of 8 KB through a 16k window never compacted")
	}
	up.mu.Lock()
	t.Logf("%d compactions, %d summaries, %d prompts refused by the upstream, largest prompt %d tokens", compactions, up.summary, up.refused, up.maxSeen)
	up.mu.Unlock()

	// A stream asked to compact early carries the compaction item.
	resp, body := h.do(t, "POST", "/v1/responses", `{"conversation":"long","input":"turn s","stream":true,"context_management":[{"type":"compaction","compact_threshold":1000}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"type":"response.output_item.added"`) || !strings.Contains(body, `"type":"compaction"`) {
		t.Fatalf("stream: %d, no compaction item:\n%.2000s", resp.StatusCode, body)
	}
	enc := regexp.MustCompile(`"encrypted_content":"([^"]+)"`).FindStringSubmatch(body)
	if enc == nil {
		t.Fatal("no encrypted_content in the stream")
	}

	// A stateless client hands the item back: the summary stands in.
	item := fmt.Sprintf(`{"type":"compaction","encrypted_content":%q}`, enc[1])
	r = post(`{"store":false,"input":[` + item + `,{"role":"user","content":"what is my colour?"}]}`)
	if !strings.Contains(r.text(), "Your colour is teal") {
		t.Errorf("stateless continuation from the compaction item answered %q", r.text())
	}
	tampered := []byte(enc[1])
	tampered[len(tampered)/2] ^= 1
	for _, bad := range []string{string(tampered), "", "hcmp1.AAAA", strings.Repeat("A", 5000)} {
		resp, body := h.do(t, "POST", "/v1/responses", fmt.Sprintf(`{"store":false,"input":[{"type":"compaction","encrypted_content":%q},{"role":"user","content":"hi"}]}`, bad))
		if resp.StatusCode != 400 || !strings.Contains(body, "encrypted_content") {
			t.Errorf("tampered item %.20q: %d %s", bad, resp.StatusCode, body)
		}
	}
	// truncation "disabled" with a prompt that cannot fit: 400 before any call.
	up.mu.Lock()
	before := up.maxSeen
	up.mu.Unlock()
	huge := strings.Repeat("word ", 20000)
	resp, body = h.do(t, "POST", "/v1/responses", fmt.Sprintf(`{"store":false,"truncation":"disabled","input":%q}`, huge))
	if resp.StatusCode != 400 || !strings.Contains(body, "context_length_exceeded") {
		t.Errorf("disabled truncation over the window: %d %.300s", resp.StatusCode, body)
	}
	up.mu.Lock()
	if up.maxSeen != before {
		t.Error("the over-long prompt reached the upstream")
	}
	up.mu.Unlock()
}

// TestInputTokens: POST /v1/responses/input_tokens estimates what the
// model call would receive, history included, without running a turn.
func TestInputTokens(t *testing.T) {
	up := newWindowUpstream(t, 1_000_000)
	h := startHermes(t, map[string]string{"OPENAI_BASE_URL": up.URL + "/v1", "OPENAI_API_KEY": "k", "HERMES_MODEL": "m"})
	count := func(body string) int {
		t.Helper()
		resp, out := h.do(t, "POST", "/v1/responses/input_tokens", body)
		var r struct {
			Object      string `json:"object"`
			InputTokens int    `json:"input_tokens"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &r) != nil || r.Object != "response.input_tokens" {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, out)
		}
		return r.InputTokens
	}
	small := count(`{"input":"what is my name?"}`)
	big := count(fmt.Sprintf(`{"input":%q}`, strings.Repeat("word ", 4000)))
	if big < small+4500 || big > small+5500 {
		t.Errorf("20,000 more characters counted %d more tokens, want about 5,000", big-small)
	}
	// The estimate is what the upstream then receives, within a quarter.
	resp, out := h.do(t, "POST", "/v1/responses", fmt.Sprintf(`{"input":%q}`, strings.Repeat("word ", 4000)))
	var r respObj
	if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("turn: %d %s", resp.StatusCode, out)
	}
	up.mu.Lock()
	seen := up.maxSeen
	up.mu.Unlock()
	if big < seen*3/4 || big > seen*5/4 {
		t.Errorf("estimated %d tokens; the upstream counted %d", big, seen)
	}
	// A previous response's history counts.
	if n := count(fmt.Sprintf(`{"input":"what is my name?","previous_response_id":%q}`, r.ID)); n < small+4500 {
		t.Errorf("with a 5,000-token history: %d, alone %d", n, small)
	}
	for _, bad := range []struct {
		body   string
		status int
	}{
		{`{"input":"x","previous_response_id":"resp_nope"}`, 400},
		{`{"input":`, 400},
		{`[]`, 400},
		{`{"input":"x","truncation":"sometimes"}`, 400},
	} {
		if resp, out := h.do(t, "POST", "/v1/responses/input_tokens", bad.body); resp.StatusCode != bad.status {
			t.Errorf("%s: %d %s, want %d", bad.body, resp.StatusCode, out, bad.status)
		}
	}
}

// TestChatCompletionsOverflow: a chat completion whose messages outgrow the
// window is compacted for the upstream call (the summary carries the middle,
// the first user message stays), or refused with 400 context_length_exceeded
// under API_SERVER_CHAT_OVERFLOW=error.
func TestChatCompletionsOverflow(t *testing.T) {
	msgs := []map[string]string{{"role": "user", "content": "my name is Ada"}, {"role": "assistant", "content": "hello Ada"}}
	for i := range 30 {
		msgs = append(msgs, map[string]string{"role": "user", "content": fmt.Sprintf("question %d %s", i, strings.Repeat("q", 1000))},
			map[string]string{"role": "assistant", "content": strings.Repeat("a", 1000)})
		if i == 10 {
			msgs = append(msgs, map[string]string{"role": "user", "content": "my colour is teal"}, map[string]string{"role": "assistant", "content": "noted"})
		}
	}
	ask := func(h *hermesd, q string) (*http.Response, string) {
		body, _ := json.Marshal(map[string]any{"model": "m", "messages": append(msgs[:len(msgs):len(msgs)], map[string]string{"role": "user", "content": q})})
		return h.do(t, "POST", "/v1/chat/completions", string(body))
	}
	env := func(up *windowUpstream, extra ...string) map[string]string {
		e := map[string]string{"OPENAI_BASE_URL": up.URL + "/v1", "OPENAI_API_KEY": "k", "HERMES_MODEL": "m",
			"HERMES_CONTEXT_WINDOW": "8000", "HERMES_TOOLS": "read_file"}
		for i := 0; i+1 < len(extra); i += 2 {
			e[extra[i]] = extra[i+1]
		}
		return e
	}

	up := newWindowUpstream(t, 8000)
	h := startHermes(t, env(up))
	for q, want := range map[string]string{"what is my name?": "Your name is Ada", "what is my colour?": "Your colour is teal"} {
		resp, body := ask(h, q)
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %.300s", q, resp.StatusCode, body)
		}
	}
	up.mu.Lock()
	if up.refused != 0 || up.summary == 0 {
		t.Errorf("%d prompts refused, %d summaries; want none refused and the middle summarised", up.refused, up.summary)
	}
	up.mu.Unlock()

	up = newWindowUpstream(t, 8000)
	h = startHermes(t, env(up, "API_SERVER_CHAT_OVERFLOW", "error"))
	resp, body := ask(h, "what is my name?")
	if resp.StatusCode != 400 || !strings.Contains(body, `"code":"context_length_exceeded"`) {
		t.Errorf("overflow=error: %d %.300s", resp.StatusCode, body)
	}
	up.mu.Lock()
	if up.maxSeen != 0 {
		t.Error("the over-long prompt reached the upstream")
	}
	up.mu.Unlock()
}

// TestCompactEndpoint: POST /v1/responses/compact returns the Open
// Responses response.compaction object for a chain plus new input; its
// output, sent back as input, continues the conversation.
func TestCompactEndpoint(t *testing.T) {
	up := newWindowUpstream(t, 1_000_000)
	h := startHermes(t, map[string]string{"OPENAI_BASE_URL": up.URL + "/v1", "OPENAI_API_KEY": "k", "HERMES_MODEL": "m", "HERMES_TOOLS": "read_file"})
	prev := ""
	for _, in := range []string{"my name is Ada", "my colour is teal", "what is my name?", "what is my colour?"} {
		resp, out := h.do(t, "POST", "/v1/responses", fmt.Sprintf(`{"input":%q,"previous_response_id":%q}`, in, prev))
		var r respObj
		if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%s: %d %s", in, resp.StatusCode, out)
		}
		prev = r.ID
	}
	resp, out := h.do(t, "POST", "/v1/responses/compact", fmt.Sprintf(`{"model":"m","previous_response_id":%q,"input":"thanks","instructions":"be brief"}`, prev))
	var c struct {
		ID        string            `json:"id"`
		Object    string            `json:"object"`
		Output    []json.RawMessage `json:"output"`
		CreatedAt int64             `json:"created_at"`
		Usage     struct {
			InputTokens int `json:"input_tokens"`
		} `json:"usage"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &c) != nil {
		t.Fatalf("compact: %d %s", resp.StatusCode, out)
	}
	if c.Object != "response.compaction" || !strings.HasPrefix(c.ID, "cmp_") || c.CreatedAt == 0 || c.Usage.InputTokens == 0 || len(c.Output) < 2 {
		t.Fatalf("compaction object: %s", out)
	}
	if !strings.Contains(string(c.Output[0]), "my name is Ada") || !strings.Contains(out, `"type":"compaction"`) || strings.Contains(out, "SUMMARY") {
		t.Errorf("output: want the first user message kept, then a sealed compaction item: %s", out)
	}
	// The output goes back as input: the conversation continues from it.
	input := "[" + string(c.Output[0])
	for _, o := range c.Output[1:] {
		input += "," + string(o)
	}
	input += `,{"role":"user","content":"what is my colour?"}]`
	resp, out = h.do(t, "POST", "/v1/responses", `{"store":false,"input":`+input+`}`)
	if resp.StatusCode != 200 || !strings.Contains(out, "Your colour is teal") {
		t.Errorf("continuing from the compacted output: %d %.400s", resp.StatusCode, out)
	}
	for _, bad := range []string{`{"previous_response_id":"resp_nope","input":"x"}`, `{"input":`, `{"input":[{"type":"compaction","encrypted_content":"hcmp1.forged"}]}`} {
		if resp, out := h.do(t, "POST", "/v1/responses/compact", bad); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s, want 400", bad, resp.StatusCode, out)
		}
	}
}

// TestInputTokensCountFilesAndImages: input_tokens counts a file's text as
// the turn would send it (text files and PDFs read, not their bytes or
// nothing) and an image by its detail and size, as the estimate before a
// model call does; compact summarises a file's text. Neither saves the
// file in the workspace (HERMES_UPLOADS=workspace): no turn runs.
func TestInputTokensCountFilesAndImages(t *testing.T) {
	up := hermestest.NewUpstream(t, func(int, *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "SUMMARY"} })
	env := up.Env()
	env["HERMES_UPLOADS"] = "workspace"
	env["HERMES_CONTEXT_WINDOW"] = "8192" // so compact summarises the file's turn rather than keep it as recent
	h := startHermes(t, env)
	count := func(parts string) int {
		t.Helper()
		resp, out := h.do(t, "POST", "/v1/responses/input_tokens", `{"input":[{"role":"user","content":[{"type":"input_text","text":"read this"}`+parts+`]}]}`)
		var r struct {
			InputTokens int `json:"input_tokens"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%.200s: %d %s", parts, resp.StatusCode, out)
		}
		return r.InputTokens
	}
	file := func(name, ctype string, data []byte) string {
		return fmt.Sprintf(`,{"type":"input_file","filename":%q,"file_data":"data:%s;base64,%s"}`, name, ctype, base64.StdEncoding.EncodeToString(data))
	}
	base := count("")
	if n := count(file("notes.txt", "text/plain", []byte(strings.Repeat("word ", 8000)))); n < base+9500 || n > base+11000 {
		t.Errorf("a 40,000-character text file counts %d tokens more, want about 10,000", n-base)
	}
	pdf := hermestest.PDF([]string{strings.Repeat("alpha ", 400), strings.Repeat("beta ", 400)}, "")
	if n := count(file("report.pdf", "application/pdf", pdf)); n < base+900 || n > base+1300 {
		t.Errorf("a PDF of 4,400 characters of text counts %d tokens more, want about 1,100", n-base)
	}
	// A 1 MB photo at low detail is 85 tokens, not a quarter million.
	ihdr := []byte("IHDR\x00\x00\x08\x00\x00\x00\x06\x00\x08\x00\x00\x00\x00") // 2048×1536, 8-bit grey
	photo := binary.BigEndian.AppendUint32(append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), ihdr...), crc32.ChecksumIEEE(ihdr))
	photo = append(photo, make([]byte, 1<<20)...)
	img := `,{"type":"input_image","image_url":"data:image/png;base64,` + base64.StdEncoding.EncodeToString(photo) + `"`
	if n := count(img + `,"detail":"low"}`); n < base+85 || n > base+90 {
		t.Errorf("a low-detail image counts %d tokens more, want 85", n-base)
	}
	// 2048×1536 at high detail: 1024×768, 2×2 tiles.
	if n := count(img + `,"detail":"high"}`); n < base+765 || n > base+770 {
		t.Errorf("a 2048x1536 image counts %d tokens more, want 765", n-base)
	}

	marker := "the-launch-code-is-teal"
	resp, out := h.do(t, "POST", "/v1/responses/compact", `{"input":[{"role":"user","content":"my name is Ada"},{"role":"assistant","content":"hello Ada"},`+
		`{"role":"user","content":[{"type":"input_text","text":"keep this"}`+file("secret.md", "text/markdown", []byte(marker+strings.Repeat(" filler", 2000)))+`]},{"role":"assistant","content":"kept"},{"role":"user","content":"thanks"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("compact: %d %s", resp.StatusCode, out)
	}
	summarised := false
	for _, c := range up.Calls() {
		for i := range c.Messages {
			summarised = summarised || strings.Contains(string(c.Messages[i].Content), marker)
		}
	}
	if !summarised {
		t.Errorf("the summarising call never saw the file's text: %d calls", len(up.Calls()))
	}
	if entries, _ := os.ReadDir(filepath.Join(h.Workspace, "uploads")); len(entries) != 0 {
		t.Errorf("input_tokens or compact saved %d files in the workspace", len(entries))
	}
}

// TestStatelessHugeInputCompacts: a Responses request with no stored
// history whose input is larger than the window is compacted like a
// stored chain, not refused: the first user message stays, the middle is
// summarised (its facts survive) or, with truncation "auto", dropped, and
// no prompt over the window reaches the upstream. Stored, the response
// keeps its output apart from its input and can be continued. truncation
// "disabled" is still 400 context_length_exceeded before any upstream call.
func TestStatelessHugeInputCompacts(t *testing.T) {
	up := newWindowUpstream(t, 16000)
	h := startHermes(t, map[string]string{"OPENAI_BASE_URL": up.URL + "/v1", "OPENAI_API_KEY": "sk-test", "HERMES_MODEL": "m",
		"HERMES_CONTEXT_WINDOW": "16000"})
	filler := strings.Repeat("lorem ipsum dolor sit amet ", 80) // ~2 KB, ~540 tokens
	items := []string{`{"role":"user","content":"my name is Ada"}`, `{"role":"assistant","content":"noted"}`}
	for i := range 60 {
		user := fmt.Sprintf("turn %d %s", i, filler)
		if i == 20 {
			user = "my colour is teal " + filler
		}
		items = append(items, fmt.Sprintf(`{"role":"user","content":%q}`, user), fmt.Sprintf(`{"role":"assistant","content":%q}`, "ok "+filler))
	}
	input := func(question string) string {
		return "[" + strings.Join(items, ",") + fmt.Sprintf(`,{"role":"user","content":%q}]`, question)
	}
	post := func(body string) (int, respObj, string) {
		t.Helper()
		resp, out := h.do(t, "POST", "/v1/responses", body)
		var r respObj
		_ = json.Unmarshal([]byte(out), &r)
		return resp.StatusCode, r, out
	}

	for _, tc := range []struct {
		truncation string
		question   string
		answer     string
		item       bool // a compaction item in the output
	}{
		{"", "what is my colour?", "Your colour is teal", true},
		{`,"truncation":"auto"`, "what is my name?", "Your name is Ada", false},
	} {
		code, r, body := post(`{"store":false` + tc.truncation + `,"input":` + input(tc.question) + `}`)
		if code != 200 || r.Status != "completed" {
			t.Fatalf("truncation %q: %d %.400s", tc.truncation, code, body)
		}
		if !strings.Contains(r.text(), tc.answer) {
			t.Errorf("truncation %q: answered %q, want %q", tc.truncation, r.text(), tc.answer)
		}
		hasItem := false
		for _, o := range r.Output {
			hasItem = hasItem || o.Type == "compaction"
		}
		if hasItem != tc.item {
			t.Errorf("truncation %q: compaction item in the output: %v, want %v", tc.truncation, hasItem, tc.item)
		}
	}
	up.mu.Lock()
	if up.refused != 0 || up.maxSeen > 16000 {
		t.Errorf("%d prompts refused by the upstream, largest %d tokens: the input was sent as it came", up.refused, up.maxSeen)
	}
	up.mu.Unlock()

	// Stored: the output is the answer alone, and the chain continues.
	code, r, body := post(`{"input":` + input("what is my name?") + `}`)
	if code != 200 || !strings.Contains(r.text(), "Your name is Ada") {
		t.Fatalf("stored: %d %.400s", code, body)
	}
	for _, o := range r.Output {
		if o.Type != "compaction" && o.Type != "message" {
			t.Errorf("stored: output item of type %q: the input leaked into the output", o.Type)
		}
	}
	if n := len(r.Output); n != 2 {
		t.Errorf("stored: %d output items, want the compaction item and the answer", n)
	}
	code, r2, body := post(fmt.Sprintf(`{"previous_response_id":%q,"input":"what is my colour?"}`, r.ID))
	if code != 200 || !strings.Contains(r2.text(), "Your colour is teal") {
		t.Errorf("continuing the compacted response: %d %.400s", code, body)
	}

	// truncation "disabled": refused before any upstream call.
	up.mu.Lock()
	calls := up.summary + up.refused
	seen := up.maxSeen
	up.mu.Unlock()
	code, _, body = post(`{"store":false,"truncation":"disabled","input":` + input("what is my name?") + `}`)
	if code != 400 || !strings.Contains(body, "context_length_exceeded") {
		t.Errorf("truncation disabled: %d %.300s", code, body)
	}
	up.mu.Lock()
	if up.summary+up.refused != calls || up.maxSeen != seen {
		t.Error("truncation disabled: the upstream was called")
	}
	up.mu.Unlock()
}
