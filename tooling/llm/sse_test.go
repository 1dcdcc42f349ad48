package llm

import (
	"bufio"
	"bytes"
	"context"
	stdjson "encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	hermes "github.com/hermesd/hermesd"
)

func TestStreamDecoderLines(t *testing.T) {
	tests := []struct {
		name   string
		lines  []string
		want   Response
		deltas []string
		done   bool
	}{
		{
			name:   "ignores comments, fields and blanks; data without space",
			lines:  []string{": hi", "", "event: x", "id: 3", "retry: 10", `data:{"choices":[{"delta":{"content":"a"}}]}`, `data: {"choices":[{"delta":{"content":"b"}}]}` + "\r", "data: [DONE]"},
			want:   Response{Text: "ab", Finish: hermes.FinishStop},
			deltas: []string{"a", "b"},
			done:   true,
		},
		{
			name:  "lines after DONE are ignored",
			lines: []string{"data: [DONE]", `data: {"choices":[{"delta":{"content":"late"}}]}`},
			want:  Response{Finish: hermes.FinishStop},
			done:  true,
		},
		{
			name:  "error null is no error",
			lines: []string{`data: {"error":null,"choices":[{"delta":{"content":"x"},"finish_reason":"length"}]}`},
			want:  Response{Text: "x", Finish: hermes.FinishLength}, deltas: []string{"x"},
		},
		{
			name: "calls without index: an id starts a new call",
			lines: []string{
				`data: {"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{"}}]}}]}`,
				`data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}]}`,
				`data: {"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}`,
			},
			want: Response{Finish: hermes.FinishToolCalls, ToolCalls: []hermes.ToolCall{{ID: "a", Name: "f", Arguments: "{}"}, {ID: "b", Name: "g", Arguments: "{}"}}},
		},
		{
			name: "every call at index 0 with distinct ids",
			lines: []string{
				`data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"1"}}]}}]}`,
				`data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"2"}}]}}],"finish_reason":"stop"}`,
			},
			want: Response{Finish: hermes.FinishToolCalls, ToolCalls: []hermes.ToolCall{{ID: "a", Name: "f", Arguments: "1"}, {ID: "b", Name: "g", Arguments: "2"}}},
		},
		{
			name: "repeated name and id, missing id gets one",
			lines: []string{
				`data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\""}}]}}]}`,
				`data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":":1}"}}]}}]}`,
			},
			want: Response{Finish: hermes.FinishToolCalls, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "f", Arguments: `{"a":1}`}}},
		},
		{
			name:  "legacy function_call",
			lines: []string{`data: {"choices":[{"delta":{"function_call":{"name":"f","arguments":"{}"}},"finish_reason":"function_call"}]}`},
			want:  Response{Finish: hermes.FinishToolCalls, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "f", Arguments: "{}"}}},
		},
		{
			name:  "usage repeated: last wins",
			lines: []string{`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, `data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":8}}`},
			want:  Response{Finish: hermes.FinishStop, Usage: hermes.Usage{PromptTokens: 9, CompletionTokens: 8}},
		},
		{
			name:  "index gap: nameless call dropped",
			lines: []string{`data: {"choices":[{"delta":{"tool_calls":[{"index":2,"id":"c","function":{"name":"h"}}]}}]}`},
			want:  Response{Finish: hermes.FinishToolCalls, ToolCalls: []hermes.ToolCall{{ID: "c", Name: "h"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d streamDecoder
			var deltas []string
			for _, l := range tt.lines {
				delta, _, err := d.Line([]byte(l))
				if err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if delta != "" {
					deltas = append(deltas, delta)
				}
			}
			if got := d.response(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("response = %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(deltas, tt.deltas) {
				t.Errorf("deltas = %q, want %q", deltas, tt.deltas)
			}
			if d.done != tt.done {
				t.Errorf("done = %v, want %v", d.done, tt.done)
			}
		})
	}
}

func TestFinishReason(t *testing.T) {
	tests := []struct {
		raw   string
		calls bool
		want  hermes.FinishReason
	}{
		{"stop", false, hermes.FinishStop},
		{"", false, hermes.FinishStop},
		{"content_filter", false, hermes.FinishStop},
		{"length", false, hermes.FinishLength},
		{"tool_calls", false, hermes.FinishToolCalls},
		{"function_call", false, hermes.FinishToolCalls},
		{"stop", true, hermes.FinishToolCalls},
		{"length", true, hermes.FinishToolCalls},
	}
	for _, tt := range tests {
		if got := finishReason(tt.raw, tt.calls); got != tt.want {
			t.Errorf("finishReason(%q, %v) = %q, want %q", tt.raw, tt.calls, got, tt.want)
		}
	}
}

func TestDecodeCompletionToolCalls(t *testing.T) {
	r, err := decodeCompletion([]byte(`{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{}"}},{"type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Response{Finish: hermes.FinishToolCalls, ToolCalls: []hermes.ToolCall{{ID: "x", Name: "f", Arguments: "{}"}, {ID: "call_2", Name: "g", Arguments: "{}"}}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if _, err := decodeCompletion([]byte(`{"error":{"message":"nope"}}`)); hermes.ErrorCode(err) != hermes.EUpstream {
		t.Errorf("error body: err = %v", err)
	}
}

// FuzzStreamDecoder feeds arbitrary streams line by line: the decoder must
// never panic, the deltas must add up to the text, and errors must be
// domain errors.
func FuzzStreamDecoder(f *testing.F) {
	f.Add([]byte("data: " + textChunk("hi") + "\n\ndata: [DONE]\n"))
	f.Add([]byte(": c\nevent: e\ndata:" + finishChunk("stop") + "\r\n"))
	f.Add([]byte(`data: {"choices":[{"delta":{"tool_calls":[{"index":1,"id":"a","function":{"name":"f","arguments":"{"}}]}}]}` + "\n"))
	f.Add([]byte(`data: {"choices":[{"delta":{"tool_calls":[{"index":-1}]}}]}` + "\n"))
	f.Add([]byte(`data: {"error":"x"}` + "\n" + `data: {"usage":{"prompt_tokens":1}}`))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"\\u00e9\"}}]}\ndata: {"))
	f.Add([]byte("data: " + textChunk("<thi") + "\ndata: " + textChunk("nk>a</th") + "\ndata: " + textChunk("ink>b") + "\n"))
	f.Add([]byte(`data: {"choices":[{"delta":{"reasoning_content":"r","reasoning":"r"}}]}` + "\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var d streamDecoder
		var text, reasoning strings.Builder
		for _, line := range bytes.Split(stream, []byte("\n")) {
			delta, thought, err := d.Line(line)
			if err != nil {
				if hermes.ErrorCode(err) != hermes.EUpstream {
					t.Fatalf("error %v is not EUpstream", err)
				}
				break
			}
			text.WriteString(delta)
			reasoning.WriteString(thought)
		}
		tail, thought := d.end()
		text.WriteString(tail)
		reasoning.WriteString(thought)
		r := d.response()
		if r.Text != text.String() || r.Reasoning != reasoning.String() {
			t.Fatalf("text %q, reasoning %q != deltas %q, %q", r.Text, r.Reasoning, text.String(), reasoning.String())
		}
		if len(r.ToolCalls) > maxToolCalls {
			t.Fatalf("%d tool calls", len(r.ToolCalls))
		}
		if len(r.ToolCalls) > 0 && r.Finish != hermes.FinishToolCalls {
			t.Fatalf("calls with finish %q", r.Finish)
		}
	})
}

// stream500 is a 500-chunk text stream with a finish, usage and [DONE].
func stream500() []byte {
	var b bytes.Buffer
	for i := range 500 {
		fmt.Fprintf(&b, "data: %s\n\n", textChunk(fmt.Sprintf("token%d ", i)))
	}
	fmt.Fprintf(&b, "data: %s\n\ndata: %s\n\ndata: [DONE]\n\n", finishChunk("stop"), usageChunk)
	return b.Bytes()
}

func BenchmarkDecodeStream500(b *testing.B) {
	body := stream500()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var d streamDecoder
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			if _, _, err := d.Line(sc.Bytes()); err != nil {
				b.Fatal(err)
			}
		}
		if r := d.response(); r.Usage.PromptTokens != 12 {
			b.Fatalf("bad parse: %+v", r.Usage)
		}
	}
}

// BenchmarkUpstreamStream500 is one whole model call over loopback HTTP.
func BenchmarkUpstreamStream500(b *testing.B) {
	body := stream500()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(body)
	}))
	defer srv.Close()
	u := NewUpstream(UpstreamOptions{BaseURL: srv.URL, Model: "m"})
	req := userRequest("hi")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := u.Stream(context.Background(), req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendJSONString checks the stream's own unquoting of content
// against encoding/json, escapes and surrogate pairs included, and that it
// refuses what is not a JSON string.
func TestAppendJSONString(t *testing.T) {
	for _, lit := range []string{
		`""`, `"plain"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00!"`,
		`"\ud800"`, `"\ud800x"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"wörld"`, `"\u2028"`,
	} {
		var want string
		if err := stdjson.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		var b strings.Builder
		if !appendJSONString(&b, []byte(lit)) || b.String() != want {
			t.Errorf("%s: %q, want %q", lit, b.String(), want)
		}
	}
	for _, lit := range []string{`"\x"`, `"\u12"`, `"\u12g4"`, `"abc`, `"\"`, `12`, `{"a":1}`, `"`, `true`} {
		var b strings.Builder
		if appendJSONString(&b, []byte(lit)) {
			t.Errorf("%s: accepted", lit)
		}
	}
	var b strings.Builder
	if !appendJSONString(&b, []byte("null")) || !appendJSONString(&b, nil) || b.Len() != 0 {
		t.Error("null or absent content is not empty text")
	}
	var d streamDecoder
	if _, _, err := d.Line([]byte(`data: {"choices":[{"delta":{"content":42}}]}`)); hermes.ErrorCode(err) != hermes.EUpstream {
		t.Errorf("content 42: %v, want an upstream error", err)
	}
}

// FuzzAppendJSONString: whatever encoding/json reads as a string (valid
// UTF-8), the stream reads the same.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud83d\ude00"`, `"\u0000\n"`, `"\ud800\u0041"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, lit []byte) {
		var want string
		if stdjson.Unmarshal(lit, &want) != nil || !utf8.Valid(lit) {
			return
		}
		lit = bytes.TrimSpace(lit)
		var b strings.Builder
		if !appendJSONString(&b, lit) || b.String() != want {
			t.Fatalf("%s: %q, want %q", lit, b.String(), want)
		}
	})
}
