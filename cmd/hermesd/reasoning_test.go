package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/bench/mockllm"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/tooling/llm"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

// reasoningUpstream thinks before every answer, in the form the user's
// message names ("form=think", "form=reasoning"; reasoning_content
// otherwise); a message asking for weather gets a get_weather call first
// (after its own reasoning), then the answer.
func reasoningUpstream(t *testing.T) *hermestest.Upstream {
	return hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		form := "reasoning_content"
		var user string
		for i, m := range call.Messages {
			if m.Role == "user" {
				user = call.Text(i)
			}
		}
		for _, f := range []string{"think", "reasoning"} {
			if strings.Contains(user, "form="+f) {
				form = f
			}
		}
		if role, _ := call.Last(); role == "user" && strings.Contains(user, "weather") {
			return hermestest.Reply{Reasoning: "I should check the weather.", ReasoningForm: form, ToolCalls: [][2]string{{"terminal", `{"command":"echo sunny"}`}}}
		}
		return hermestest.Reply{Reasoning: "The user greets me. I greet back.", ReasoningForm: form, Text: "Hello there."}
	})
}

// chatChunks posts a streaming chat completion and returns its chunks'
// reasoning_content and content, concatenated, and the usage chunk.
func chatChunks(t *testing.T, h *hermesd, body string) (reasoning, content string, usage map[string]any) {
	t.Helper()
	resp, raw := h.do(t, "POST", "/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(strings.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var r, c strings.Builder
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta map[string]any `json:"delta"`
			} `json:"choices"`
			Usage map[string]any `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		if ch.Usage != nil {
			usage = ch.Usage
		}
		for _, choice := range ch.Choices {
			if s, ok := choice.Delta["reasoning_content"].(string); ok {
				if _, both := choice.Delta["content"]; both {
					t.Errorf("a chunk carries content and reasoning together: %s", data)
				}
				r.WriteString(s)
			}
			if s, ok := choice.Delta["content"].(string); ok {
				c.WriteString(s)
			}
		}
	}
	return r.String(), c.String(), usage
}

func TestReasoningChatCompletions(t *testing.T) {
	up := reasoningUpstream(t)
	h := startHermes(t, up.Env())
	for _, form := range []string{"reasoning_content", "reasoning", "think"} {
		t.Run(form, func(t *testing.T) {
			msg := `{"model":"m","messages":[{"role":"user","content":"hi form=` + form + `"}]`
			reasoning, content, usage := chatChunks(t, h, msg+`,"stream":true,"stream_options":{"include_usage":true}}`)
			want := "The user greets me. I greet back."
			if reasoning != want || content != "Hello there." {
				t.Errorf("stream: reasoning %q content %q", reasoning, content)
			}
			details, _ := usage["completion_tokens_details"].(map[string]any)
			if details["reasoning_tokens"] != float64(7) {
				t.Errorf("usage %v, want 7 reasoning tokens", usage)
			}

			resp, raw := h.do(t, "POST", "/v1/chat/completions", msg+"}")
			var c struct {
				Choices []struct {
					Message map[string]any `json:"message"`
				} `json:"choices"`
			}
			if err := json.Unmarshal([]byte(raw), &c); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, raw)
			}
			if m := c.Choices[0].Message; m["content"] != "Hello there." || m["reasoning_content"] != want {
				t.Errorf("message %v", m)
			}
		})
	}

	t.Run("reasoning then an agent tool", func(t *testing.T) {
		reasoning, content, _ := chatChunks(t, h, `{"model":"m","stream":true,"messages":[{"role":"user","content":"weather form=think"}]}`)
		// content has the inline progress marker of the tool run, then the
		// answer; never the reasoning.
		if reasoning != "I should check the weather.The user greets me. I greet back." || !strings.HasSuffix(content, "echo sunny`\nHello there.") {
			t.Errorf("reasoning %q content %q", reasoning, content)
		}
		// The second model call got the first one's tool call, without its
		// reasoning: the model is not configured to take reasoning back.
		calls := up.Calls()
		last := calls[len(calls)-1]
		for _, m := range last.Messages {
			if m.ReasoningContent != nil || strings.Contains(string(m.Content), "check the weather") {
				t.Errorf("reasoning went back upstream: %+v", last.Messages)
			}
		}
	})

	t.Run("no reasoning, no field", func(t *testing.T) {
		hh := startHermes(t, nil)
		_, raw := hh.do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		if strings.Contains(raw, "reasoning_content") {
			t.Errorf("a plain answer carries reasoning_content: %s", raw)
		}
	})
}

func TestReasoningResponses(t *testing.T) {
	h := startHermes(t, nil)
	sealer, err := llm.LoadSealer(filepath.Join(h.Home, "compaction.key"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("events", func(t *testing.T) {
		body := `{"model":"m","stream":true,"reasoning":{"summary":"auto"},"include":["reasoning.encrypted_content"],"input":"/think weighing it\nhi"}`
		evs, done := rawResponseStream(t, h, body)
		if !done {
			t.Fatal("no [DONE]")
		}
		got := strings.Join(rawTypes(evs), "\n")
		want := strings.Join([]string{"response.created", "response.in_progress",
			"response.output_item.added", "response.content_part.added", "response.reasoning_summary_part.added",
			"response.reasoning_text.delta", "response.reasoning_summary_text.delta",
			"response.reasoning_text.delta", "response.reasoning_summary_text.delta",
			"response.reasoning_text.done", "response.content_part.done",
			"response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
			"response.output_item.added", "response.content_part.added"}, "\n")
		if !strings.HasPrefix(got, want) {
			t.Fatalf("events:\n%s\nwant them to start with\n%s", got, want)
		}
		done1 := evs[13].field(t, "item").(map[string]any)
		final := evs[len(evs)-1].field(t, "response").(map[string]any)
		output := final["output"].([]any)
		if jsonOf(output[0]) != jsonOf(done1) || len(output) != 2 || output[1].(map[string]any)["type"] != "message" {
			t.Fatalf("final output %s\nreasoning item done %s", jsonOf(output), jsonOf(done1))
		}
		if jsonOf(done1["content"]) != `[{"text":"weighing it","type":"reasoning_text"}]` ||
			jsonOf(done1["summary"]) != `[{"text":"weighing it","type":"summary_text"}]` || !strings.HasPrefix(done1["id"].(string), "rs_") {
			t.Errorf("reasoning item %s", jsonOf(done1))
		}
		text, err := sealer.OpenReasoning(done1["encrypted_content"].(string))
		if err != nil || text != "weighing it" {
			t.Errorf("encrypted_content opens to %q, %v", text, err)
		}
		// The answer holds no reasoning.
		if msg := jsonOf(output[1]); strings.Contains(msg, "weighing") {
			t.Errorf("reasoning in the message: %s", msg)
		}
		// GET renders the same items.
		_, raw := h.do(t, "GET", "/v1/responses/"+final["id"].(string), "")
		var got2 map[string]any
		_ = json.Unmarshal([]byte(raw), &got2)
		if jsonOf(got2["output"]) != jsonOf(output) {
			t.Errorf("GET output %s\nstream final %s", jsonOf(got2["output"]), jsonOf(output))
		}
		usage := final["usage"].(map[string]any)["output_tokens_details"].(map[string]any)
		if usage["reasoning_tokens"] != float64(2) {
			t.Errorf("usage %v", final["usage"])
		}
	})

	t.Run("summary empty unless asked, no encrypted content unless included", func(t *testing.T) {
		r := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":"/think quietly\nhi"}`)
		rs := r["output"].([]any)[0].(map[string]any)
		if jsonOf(rs["summary"]) != `[]` || rs["encrypted_content"] != nil || jsonOf(rs["content"]) != `[{"text":"quietly","type":"reasoning_text"}]` {
			t.Errorf("reasoning item %s", jsonOf(rs))
		}
		evs, _ := rawResponseStream(t, h, `{"model":"m","stream":true,"input":"/think quietly\nhi"}`)
		for _, e := range evs {
			if strings.Contains(e.Type, "summary") {
				t.Errorf("summary event without reasoning.summary: %s", e.Data)
			}
		}
	})

	t.Run("kept in the chain", func(t *testing.T) {
		a := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":"/think first thought\nhi"}`)
		b := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","previous_response_id":"`+a["id"].(string)+`","input":"/echo-history"}`)
		// The model saw the answer, not the reasoning (not configured to
		// take it back): "first thought" only in the user's message…
		text := b["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)["text"].(string)
		if strings.Count(text, "first thought") != 1 || !strings.Contains(text, "user: /think first thought hi\nassistant: Hermes (offline model) heard: hi\n") {
			t.Errorf("the model saw %q", text)
		}
		// …and the stored turn still has it.
		_, raw := h.do(t, "GET", "/v1/responses/"+a["id"].(string), "")
		if !strings.Contains(raw, `"type":"reasoning"`) || !strings.Contains(raw, "first thought") {
			t.Errorf("stored response lost its reasoning: %s", raw)
		}
	})

	t.Run("sent back by a stateless client", func(t *testing.T) {
		a := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","store":false,"include":["reasoning.encrypted_content"],"input":"/think sealed thought\nhi"}`)
		rs := a["output"].([]any)[0].(map[string]any)
		enc := rs["encrypted_content"].(string)
		tampered := enc[:len(enc)-2] + "AA"
		for _, tc := range []struct{ enc, want string }{{enc, "sealed thought"}, {tampered, ""}, {"gAAAAABopenai-sealed", ""}} {
			b := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":[{"role":"user","content":"hi"},`+
				`{"type":"reasoning","id":"rs_x","summary":[],"encrypted_content":"`+tc.enc+`"},`+
				`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hello"}]},{"role":"user","content":"more"}]}`)
			_, raw := h.do(t, "GET", "/v1/responses/"+b["id"].(string)+"/input_items?order=asc", "")
			var list struct{ Data []map[string]any }
			_ = json.Unmarshal([]byte(raw), &list)
			var got string
			for _, it := range list.Data {
				if it["type"] == "reasoning" {
					got = it["content"].([]any)[0].(map[string]any)["text"].(string)
				}
			}
			if got != tc.want {
				t.Errorf("encrypted_content %.20q…: the transcript keeps reasoning %q, want %q (%s)", tc.enc, got, tc.want, raw)
			}
		}
	})

	t.Run("bad summary", func(t *testing.T) {
		resp, raw := h.do(t, "POST", "/v1/responses", `{"model":"m","input":"x","reasoning":{"summary":"verbose"}}`)
		if resp.StatusCode != 400 || !strings.Contains(raw, `"param":"reasoning.summary"`) {
			t.Errorf("%d %s", resp.StatusCode, raw)
		}
	})
}

// TestReasoningHostileUpstream: odd and hostile reasoning from an upstream
// ends where it belongs — an unterminated <think> as reasoning, a stray
// </think> as text — and a huge reasoning passes through whole.
func TestReasoningHostileUpstream(t *testing.T) {
	huge := strings.Repeat(strings.Repeat("thinking", 128)+" ", 2000) // 2 MB in 2,000 chunks
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		_, user := call.Last()
		switch user {
		case "unterminated":
			return hermestest.Reply{Text: "<think>I was cut off while"}
		case "stray":
			return hermestest.Reply{Text: "Use </think> to close a tag."}
		case "huge":
			return hermestest.Reply{Reasoning: huge, Text: "done"}
		}
		return hermestest.Reply{Text: "?"}
	})
	h := startHermes(t, up.Env())
	for _, tc := range []struct{ user, reasoning, content string }{
		{"unterminated", "I was cut off while", ""},
		{"stray", "", "Use </think> to close a tag."},
		{"huge", huge, "done"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			r, c, _ := chatChunks(t, h, `{"model":"m","stream":true,"messages":[{"role":"user","content":"`+tc.user+`"}]}`)
			if r != tc.reasoning || c != tc.content {
				t.Errorf("reasoning %d bytes %.60q, content %.60q; want %d bytes, %q", len(r), r, c, len(tc.reasoning), tc.content)
			}
		})
	}
	if !slices.ContainsFunc(up.Calls(), func(c *hermestest.Call) bool { return c.Stream }) {
		t.Error("no streamed upstream call")
	}
}

// reasoning_effort reaches only models marked `reasoning: true`: OpenAI's
// other models answer 400 to it. A model marked false, one with no mark
// (the environment-only setup without HERMES_REASONING included) and a
// fallback that is not marked get none, from Responses' reasoning.effort
// and from chat's reasoning_effort alike.
func TestReasoningEffortOnlyToReasoningModels(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if call.Model == "upstream-down" {
			return hermestest.Reply{Status: 503}
		}
		return hermestest.Reply{Text: "ok"}
	})
	h := startWithConfig(t, `
models:
  - id: thinker
    base_url: {{U}}
    model: upstream-thinker
    reasoning: true
  - id: plain
    base_url: {{U}}
    model: upstream-plain
    reasoning: false
  - id: unmarked
    base_url: {{U}}
    model: upstream-unmarked
  - id: flaky
    base_url: {{U}}
    model: upstream-down
    reasoning: true
    fallbacks: [unmarked]
`, map[string]string{"U": up.URL + "/v1"}, nil)
	want := map[string]string{"thinker": "high", "plain": "", "unmarked": "", "flaky": ""}
	for _, model := range []string{"thinker", "plain", "unmarked", "flaky"} {
		for _, body := range []string{
			`{"model":"` + model + `","input":"hi","reasoning":{"effort":"high"}}`,
			`{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"high"}`,
		} {
			path := "/v1/responses"
			if strings.Contains(body, "messages") {
				path = "/v1/chat/completions"
			}
			before := len(up.Calls())
			if resp, out := h.do(t, "POST", path, body); resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d %s", path, body, resp.StatusCode, out)
			}
			calls := up.Calls()[before:]
			last := calls[len(calls)-1]
			if last.ReasoningEffort != want[model] {
				t.Errorf("%s via %s: the upstream %s got reasoning_effort %q, want %q", model, path, last.Model, last.ReasoningEffort, want[model])
			}
			if model == "flaky" && (len(calls) != 2 || calls[0].ReasoningEffort != "high") {
				t.Errorf("flaky: %d calls, the first with effort %q; want the marked model asked with it, then its fallback without", len(calls), calls[0].ReasoningEffort)
			}
		}
	}
	if resp, out := h.do(t, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"reasoning_effort":"extreme"}`); resp.StatusCode != 400 ||
		!strings.Contains(out, `"param":"reasoning_effort"`) {
		t.Fatalf("an unknown effort: %d %s", resp.StatusCode, out)
	}

	env := hermestest.NewUpstream(t, func(int, *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	h = startHermes(t, env.Env())
	if resp, out := h.do(t, "POST", "/v1/responses", `{"input":"hi","reasoning":{"effort":"low"}}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if got := env.Calls()[0].ReasoningEffort; got != "" {
		t.Errorf("the environment-only model without HERMES_REASONING got reasoning_effort %q", got)
	}
}

// TestReasoningFromMockLLM: bench/mockllm's /think, in each of its forms,
// reaches a chat client through hermesd as reasoning_content apart from
// the answer, as hermes-bench -think and manual runs against it show.
func TestReasoningFromMockLLM(t *testing.T) {
	for _, form := range mockllm.ThinkForms {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = mockllm.New(mockllm.Config{Tokens: 3, ReasoningForm: form}).Serve(ln) }()
		t.Cleanup(func() { ln.Close() })
		h := startHermes(t, map[string]string{"OPENAI_BASE_URL": "http://" + ln.Addr().String() + "/v1", "HERMES_MODEL": "mock-model"})
		reasoning, content, usage := chatChunks(t, h, `{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi\n/think Weighing the fox."}]}`)
		if reasoning != "Weighing the fox." || content != "The quick brown " {
			t.Errorf("%s: reasoning %q, content %q", form, reasoning, content)
		}
		if d, _ := usage["completion_tokens_details"].(map[string]any); d["reasoning_tokens"] != float64(3) {
			t.Errorf("%s: usage %v", form, usage)
		}
	}
}

// TestReasoningGoSDK: the openai-go SDK reads hermesd's reasoning in each
// upstream dialect: Responses streams (reasoning_text and summary events,
// the completed reasoning item with its encrypted_content before the
// message) and a chat completion's reasoning_content, which the SDK keeps
// as an extra field of the message.
func TestReasoningGoSDK(t *testing.T) {
	up := reasoningUpstream(t)
	h := startHermes(t, up.Env())
	const thought, answer = "The user greets me. I greet back.", "Hello there."
	c := h.client()
	for _, form := range []string{"reasoning_content", "reasoning", "think"} {
		stream := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
			Model:     "m",
			Input:     responses.ResponseNewParamsInputUnion{OfString: openai.String("hi form=" + form)},
			Reasoning: shared.ReasoningParam{Summary: shared.ReasoningSummaryAuto},
			Include:   []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent},
		})
		var text, summary, out strings.Builder
		var done *responses.Response
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "response.reasoning_text.delta":
				text.WriteString(ev.Delta)
			case "response.reasoning_summary_text.delta":
				summary.WriteString(ev.Delta)
			case "response.output_text.delta":
				out.WriteString(ev.Delta)
			case "response.completed":
				r := ev.AsResponseCompleted().Response
				done = &r
			}
		}
		if err := stream.Err(); err != nil || done == nil {
			t.Fatalf("%s: %v, completed %v", form, err, done != nil)
		}
		if text.String() != thought || summary.String() != thought || out.String() != answer {
			t.Errorf("%s: reasoning %q, summary %q, text %q", form, text.String(), summary.String(), out.String())
		}
		if len(done.Output) != 2 || done.Output[0].Type != "reasoning" || done.Output[1].Type != "message" {
			t.Fatalf("%s: output %s", form, done.RawJSON())
		}
		item := done.Output[0].AsReasoning()
		if len(item.Content) != 1 || item.Content[0].Text != thought || len(item.Summary) != 1 || item.Summary[0].Text != thought ||
			item.EncryptedContent == "" || done.Usage.OutputTokensDetails.ReasoningTokens != 7 || done.OutputText() != answer {
			t.Errorf("%s: reasoning item %s, usage %s", form, item.RawJSON(), done.Usage.RawJSON())
		}

		cc, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi form=" + form)},
			ReasoningEffort: shared.ReasoningEffortLow,
		})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		_ = json.Unmarshal([]byte(cc.Choices[0].Message.JSON.ExtraFields["reasoning_content"].Raw()), &got)
		if cc.Choices[0].Message.Content != answer || got != thought || cc.Usage.CompletionTokensDetails.ReasoningTokens != 7 {
			t.Errorf("%s: chat message %s", form, cc.Choices[0].Message.RawJSON())
		}
	}
}

// TestFrontendShapes: chat requests shaped as Open WebUI and LibreChat
// send them (their sampling fields, user, stream_options, a pasted image
// as an image_url data URL, reasoning_effort; shapes written from the
// clients' request builders, not captured from running ones) stream the
// reasoning as reasoning_content chunks before the answer's content,
// which is what both render as a collapsible thinking block; the image and
// the effort reach a model marked as reasoning.
func TestFrontendShapes(t *testing.T) {
	up := reasoningUpstream(t)
	env := up.Env()
	env["HERMES_REASONING"] = "true"
	h := startHermes(t, env)
	img := `{"type":"image_url","image_url":{"url":"` + pngDataURL + `"%s}}`
	for name, body := range map[string]string{
		"Open WebUI": `{"model":"hermes-agent","stream":true,"stream_options":{"include_usage":true},"temperature":0.7,"top_p":0.9,"max_tokens":512,` +
			`"reasoning_effort":"medium","messages":[{"role":"system","content":"You are helpful."},` +
			`{"role":"user","content":[{"type":"text","text":"what is in this picture?"},` + fmt.Sprintf(img, "") + `]}]}`,
		"LibreChat": `{"model":"hermes-agent","user":"6650f1e2c1a2b3c4d5e6f708","stream":true,"temperature":1,"top_p":1,"presence_penalty":0,"frequency_penalty":0,` +
			`"reasoning_effort":"medium","messages":[{"role":"user","content":[{"type":"text","text":"describe this"},` + fmt.Sprintf(img, `,"detail":"auto"`) + `]}]}`,
	} {
		reasoning, content, _ := chatChunks(t, h, body)
		if reasoning != "The user greets me. I greet back." || content != "Hello there." {
			t.Errorf("%s: reasoning_content %q, content %q", name, reasoning, content)
		}
		calls := up.Calls()
		last := calls[len(calls)-1]
		if got := imageParts(t, last); len(got) != 1 || got[0]["url"] != pngDataURL || last.ReasoningEffort != "medium" {
			t.Errorf("%s: the upstream got images %v and reasoning_effort %q", name, got, last.ReasoningEffort)
		}
	}
}
