package llm

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

func user(s string) hermes.Message { return hermes.Message{Role: hermes.RoleUser, Content: s} }

func TestOffline(t *testing.T) {
	sys := hermes.Message{Role: hermes.RoleSystem, Content: "You are Hermes.\nBe kind."}
	callTerm := hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "terminal", Arguments: "{}"}}}
	resultTerm := hermes.Message{Role: hermes.RoleTool, ToolCallID: "call_1", Content: `{"output":"a.txt"}`}
	long := strings.Repeat("é", 300)
	tests := []struct {
		name       string
		req        Request
		wantText   string
		wantCalls  []hermes.ToolCall
		wantFinish hermes.FinishReason
		wantTokens int // completion tokens; -1: don't check
		wantErr    string
	}{
		{
			name:     "plain text",
			req:      Request{Messages: []hermes.Message{sys, user("hello there")}},
			wantText: "Hermes (offline model) heard: hello there", wantFinish: hermes.FinishStop, wantTokens: 6,
		},
		{
			name:     "long text is cut at 200 chars",
			req:      Request{Messages: []hermes.Message{user(long)}},
			wantText: "Hermes (offline model) heard: " + strings.Repeat("é", 200) + "…", wantFinish: hermes.FinishStop, wantTokens: 5,
		},
		{
			name:     "only the last user message counts",
			req:      Request{Messages: []hermes.Message{user("/fail no"), {Role: hermes.RoleAssistant, Content: "x"}, user("fine")}},
			wantText: "Hermes (offline model) heard: fine", wantFinish: hermes.FinishStop, wantTokens: 5,
		},
		{
			name:     "lone system message",
			req:      Request{Messages: []hermes.Message{{Role: hermes.RoleSystem, Content: "Write a title"}}},
			wantText: "Hermes (offline model) heard: Write a title", wantFinish: hermes.FinishStop, wantTokens: 7,
		},
		{
			name:     "directives only",
			req:      Request{Messages: []hermes.Message{user("/delay 0s")}},
			wantText: offlineNothing, wantFinish: hermes.FinishStop, wantTokens: 7,
		},
		{
			name:       "two tool calls",
			req:        Request{Messages: []hermes.Message{user("/tool terminal {\"command\":\"pwd\"}\n/tool read_file {\"path\":\"a\"}")}},
			wantCalls:  []hermes.ToolCall{{ID: "call_1", Name: "terminal", Arguments: `{"command":"pwd"}`}, {ID: "call_2", Name: "read_file", Arguments: `{"path":"a"}`}},
			wantFinish: hermes.FinishToolCalls, wantTokens: -1,
		},
		{
			name:     "tool results are summarised",
			req:      Request{Messages: []hermes.Message{user("/tool terminal {}"), callTerm, resultTerm}},
			wantText: `terminal returned: {"output":"a.txt"}`, wantFinish: hermes.FinishStop, wantTokens: 3,
		},
		{
			name:     "tool output cut at 2000 chars",
			req:      Request{Messages: []hermes.Message{user("/tool terminal {}"), callTerm, {Role: hermes.RoleTool, Name: "terminal", Content: strings.Repeat("x", 2500)}}},
			wantText: "terminal returned: " + strings.Repeat("x", 2000) + "…", wantFinish: hermes.FinishStop, wantTokens: 3,
		},
		{
			name:       "repeat: second round",
			req:        Request{Messages: []hermes.Message{user("/tool terminal {}\n/repeat 2"), callTerm, resultTerm}},
			wantCalls:  []hermes.ToolCall{{ID: "call_2", Name: "terminal", Arguments: "{}"}},
			wantFinish: hermes.FinishToolCalls, wantTokens: -1,
		},
		{
			name: "repeat: done after K rounds",
			req: Request{Messages: []hermes.Message{user("/tool terminal {}\n/repeat 2"), callTerm, resultTerm,
				{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_2", Name: "terminal", Arguments: "{}"}}},
				{Role: hermes.RoleTool, ToolCallID: "call_2", Content: "two"}}},
			wantText: "terminal returned: {\"output\":\"a.txt\"}\nterminal returned: two", wantFinish: hermes.FinishStop, wantTokens: 6,
		},
		{
			name:     "tool_choice none answers instead",
			req:      Request{Messages: []hermes.Message{user("/tool terminal {}")}, ToolChoice: "none"},
			wantText: offlineNothing, wantFinish: hermes.FinishStop, wantTokens: 7,
		},
		{
			name:     "tokens",
			req:      Request{Messages: []hermes.Message{user("/tokens 5")}},
			wantText: "tok1 tok2 tok3 tok4 tok5", wantFinish: hermes.FinishStop, wantTokens: 5,
		},
		{
			name:     "tokens zero",
			req:      Request{Messages: []hermes.Message{user("/tokens 0")}},
			wantText: "", wantFinish: hermes.FinishStop, wantTokens: 0,
		},
		{
			name:     "max tokens cuts with length",
			req:      Request{Messages: []hermes.Message{user("/tokens 5")}, MaxTokens: 3},
			wantText: "tok1 tok2 tok3 ", wantFinish: hermes.FinishLength, wantTokens: 3,
		},
		{
			name:       "fail",
			req:        Request{Messages: []hermes.Message{user("/fail upstream exploded")}},
			wantErr:    "upstream exploded",
			wantTokens: 0,
		},
		{
			name:     "fail after 2 tokens",
			req:      Request{Messages: []hermes.Message{user("/tokens 5\n/fail-after 2 mid-stream")}},
			wantText: "tok1 tok2 ", wantErr: "mid-stream",
			wantTokens: 2,
		},
		{
			name:     "fail after more tokens than the answer has",
			req:      Request{Messages: []hermes.Message{user("/tokens 2\n/fail-after 9 late")}},
			wantText: "tok1 tok2", wantErr: "late",
			wantTokens: 2,
		},
		{
			name:     "echo system",
			req:      Request{Messages: []hermes.Message{sys, {Role: hermes.RoleSystem, Content: "layer two"}, user("/echo-system")}},
			wantText: "You are Hermes.\nBe kind.\n\nlayer two", wantFinish: hermes.FinishStop, wantTokens: 7,
		},
		{
			name:     "echo system without one",
			req:      Request{Messages: []hermes.Message{user("/echo-system")}},
			wantText: offlineNoSystem, wantFinish: hermes.FinishStop, wantTokens: 3,
		},
		{
			name:       "echo history",
			req:        Request{Messages: []hermes.Message{sys, user("hi"), callTerm, resultTerm, user("/echo-history")}},
			wantText:   "system: You are Hermes. Be kind.\nuser: hi\nassistant:  [call terminal {}]\ntool: {\"output\":\"a.txt\"}\nuser: /echo-history",
			wantFinish: hermes.FinishStop, wantTokens: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var deltas strings.Builder
			n := 0
			resp, err := NewOffline().Stream(context.Background(), tt.req, func(s string) {
				if s == "" {
					t.Error("empty delta")
				}
				deltas.WriteString(s)
				n++
			})
			if tt.wantErr != "" {
				if hermes.ErrorCode(err) != hermes.EUpstream || hermes.AsError(err).Message != tt.wantErr {
					t.Fatalf("err = %v, want EUpstream %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if resp.Text != tt.wantText || deltas.String() != tt.wantText {
				t.Errorf("text = %q, deltas %q, want %q", resp.Text, deltas.String(), tt.wantText)
			}
			if !reflect.DeepEqual(resp.ToolCalls, tt.wantCalls) {
				t.Errorf("calls = %+v, want %+v", resp.ToolCalls, tt.wantCalls)
			}
			if tt.wantErr == "" && resp.Finish != tt.wantFinish {
				t.Errorf("finish = %q, want %q", resp.Finish, tt.wantFinish)
			}
			if tt.wantCalls == nil && resp.Usage.CompletionTokens != n {
				t.Errorf("completion tokens %d != deltas %d", resp.Usage.CompletionTokens, n)
			}
			if tt.wantTokens >= 0 && resp.Usage.CompletionTokens != tt.wantTokens {
				t.Errorf("completion tokens = %d, want %d", resp.Usage.CompletionTokens, tt.wantTokens)
			}
			if resp.Usage.PromptTokens < 1 {
				t.Errorf("prompt tokens = %d", resp.Usage.PromptTokens)
			}
		})
	}
}

func TestOfflineIsDeterministic(t *testing.T) {
	req := Request{Messages: []hermes.Message{{Role: hermes.RoleSystem, Content: "sys"}, user("same input, same answer")}}
	a, errA := NewOffline().Stream(context.Background(), req, nil)
	b, errB := NewOffline().Stream(context.Background(), req, nil)
	if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("%+v %v != %+v %v", a, errA, b, errB)
	}
	if want := (len("sys") + len("same input, same answer")) / 4; a.Usage.PromptTokens != want {
		t.Errorf("prompt tokens = %d, want %d", a.Usage.PromptTokens, want)
	}
}

func TestOfflineTokensCap(t *testing.T) {
	resp, err := NewOffline().Stream(context.Background(), Request{Messages: []hermes.Message{user("/tokens 100000")}}, nil)
	if err != nil || resp.Usage.CompletionTokens != 100000 || !strings.HasSuffix(resp.Text, " tok100000") {
		t.Fatalf("tokens %d err %v", resp.Usage.CompletionTokens, err)
	}
}

func TestOfflineSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewOffline().Stream(ctx, Request{Messages: []hermes.Message{user("/sleep 10m")}}, nil)
	if hermes.ErrorCode(err) != hermes.ECancelled {
		t.Fatalf("err = %v, want ECancelled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestOfflineSleepWaits(t *testing.T) {
	start := time.Now()
	if _, err := NewOffline().Stream(context.Background(), Request{Messages: []hermes.Message{user("/sleep 30ms\nhi")}}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("answered after %v, want at least 30ms", d)
	}
}

func TestOfflineDelayCancelledMidStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := NewOffline().Stream(ctx, Request{Messages: []hermes.Message{user("/tokens 5\n/delay 10m")}}, func(string) { cancel() })
	if hermes.ErrorCode(err) != hermes.ECancelled {
		t.Fatalf("err = %v, want ECancelled", err)
	}
	if resp.Text != "tok1 " || resp.Usage.CompletionTokens != 1 {
		t.Errorf("partial = %q (%d tokens)", resp.Text, resp.Usage.CompletionTokens)
	}
}

func TestOfflineTokenDelay(t *testing.T) {
	o := &Offline{TokenDelay: 5 * time.Millisecond}
	start := time.Now()
	resp, err := o.Stream(context.Background(), Request{Messages: []hermes.Message{user("/tokens 4")}}, nil)
	if err != nil || resp.Usage.CompletionTokens != 4 {
		t.Fatal(resp, err)
	}
	if d := time.Since(start); d < 15*time.Millisecond { // 3 gaps between 4 tokens
		t.Errorf("4 tokens took %v, want at least 15ms", d)
	}
}

func BenchmarkOffline(b *testing.B) {
	req := Request{Messages: []hermes.Message{
		{Role: hermes.RoleSystem, Content: strings.Repeat("You are Hermes, a helpful agent. ", 40)},
		user("What is the capital of France? Answer in one short sentence please."),
	}}
	o := NewOffline()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Stream(ctx, req, func(string) {}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOfflineTokens1000(b *testing.B) {
	req := Request{Messages: []hermes.Message{user("/tokens 1000")}}
	o := NewOffline()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Stream(ctx, req, func(string) {}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOfflineThink(t *testing.T) {
	var order []string
	req := Request{Messages: []hermes.Message{{Role: hermes.RoleUser, Content: "/think weighing the options\nhello"}}}
	req.OnReasoning = func(s string) { order = append(order, "r:"+s) }
	r, err := NewOffline().Stream(context.Background(), req, func(s string) { order = append(order, "t:"+s) })
	if err != nil {
		t.Fatal(err)
	}
	if r.Reasoning != "weighing the options" || r.Text != offlineHeard+"hello" || r.Usage.ReasoningTokens != 3 ||
		r.Usage.CompletionTokens != 3+5 {
		t.Errorf("got %+v", r)
	}
	if strings.Join(order, "|") != "r:weighing |r:the |r:options|t:Hermes |t:(offline |t:model) |t:heard: |t:hello" {
		t.Errorf("deltas %q", order)
	}
	// Before tool calls too.
	req.Messages[0].Content = "/think need a tool\n/tool terminal {}"
	r, err = NewOffline().Stream(context.Background(), req, nil)
	if err != nil || r.Reasoning != "need a tool" || len(r.ToolCalls) != 1 {
		t.Errorf("with a tool: %+v %v", r, err)
	}
	// "/think" alone is text, not a directive.
	r, _ = NewOffline().Stream(context.Background(), Request{Messages: []hermes.Message{{Role: hermes.RoleUser, Content: "/think"}}}, nil)
	if r.Reasoning != "" || r.Text != offlineHeard+"/think" {
		t.Errorf("bare /think: %+v", r)
	}
}
