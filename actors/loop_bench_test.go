package actors

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/png"
	"strconv"
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/llm"
)

// instantModel answers every call at once, as a model whose cost is nil.
type instantModel struct{}

func (instantModel) Stream(_ context.Context, req llm.Request, onDelta func(string)) (llm.Response, error) {
	onDelta("ok")
	return llm.Response{Text: "ok", Finish: hermes.FinishStop, Usage: hermes.Usage{PromptTokens: 2600, CompletionTokens: 1}}, nil
}

// BenchmarkAgentRun is what a turn's agent loop costs around one model
// call that costs nothing: the prompt, the context-window estimate before
// the call and the calibration after it, with an 11-tool registry and a
// 1.5 KB system prompt as hermesd's own, for a text message and for one
// carrying a 1600x1200 PNG as a data URL.
func BenchmarkAgentRun(b *testing.B) {
	var tools []tooling.Tool
	for i := range 11 {
		tools = append(tools, &testTool{name: "tool_" + strconv.Itoa(i)})
	}
	system := strings.Repeat("You are Hermes, an agent. ", 60)
	a := &Agent{Model: instantModel{}, Tools: tooling.NewRegistry(tools, nil), Prompt: func(string) string { return system },
		Window: llm.NewWindow(128000), Estimator: &llm.Estimator{}}
	emit := func(hermes.Event) bool { return true }
	// A photo's data URL is hundreds of kilobytes: a blank PNG, padded.
	var img bytes.Buffer
	if err := png.Encode(&img, image.NewGray(image.Rect(0, 0, 1600, 1200))); err != nil {
		b.Fatal(err)
	}
	img.Write(make([]byte, 300<<10))
	photo := "data:image/png;base64," + base64.StdEncoding.EncodeToString(img.Bytes())
	for _, tc := range []struct {
		name  string
		input hermes.Message
	}{
		{"text", hermes.Message{Role: hermes.RoleUser, Content: "hello"}},
		{"image", hermes.Message{Role: hermes.RoleUser, Parts: []hermes.Part{{Type: "text", Text: "look"}, {Type: "image_url", ImageURL: photo}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				res := a.Run(context.Background(), nil, &hermes.TurnRequest{ResponseID: "resp_1", Input: []hermes.Message{tc.input}}, emit)
				if res.Err != nil || res.Text != "ok" {
					b.Fatalf("%+v", res)
				}
			}
		})
	}
}
