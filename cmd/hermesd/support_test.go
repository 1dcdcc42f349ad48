package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// hermesd is a whole server started for one test.
type hermesd struct {
	*Main
	Home, Workspace string
}

// startHermes starts a hermesd on 127.0.0.1:0 with a temp HERMES_HOME and
// workspace. env adds settings (OPENAI_BASE_URL to use a fake upstream);
// setup, when given, changes the Main before it runs (a model of the
// test's own).
func startHermes(t testing.TB, env map[string]string, setup ...func(*Main)) *hermesd {
	t.Helper()
	home, ws := t.TempDir(), t.TempDir()
	vars := map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": ws}
	for k, v := range env {
		vars[k] = v
	}
	m := NewMain()
	if err := m.ParseFlags(nil, lookupIn(vars)); err != nil {
		t.Fatal(err)
	}
	m.Logger = newLogger("text", "error", io.Discard)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Listener = ln
	for _, f := range setup {
		f(m)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return &hermesd{Main: m, Home: home, Workspace: ws}
}

// lookupIn is an environment holding only vars, looked up as
// os.LookupEnv does.
func lookupIn(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// client is the official OpenAI Go SDK pointed at h.
func (h *hermesd) client(opts ...option.RequestOption) *openai.Client {
	return hermestest.Client(h.URL(), opts...)
}

// do sends a raw request to path on h and returns the response and body.
func (h *hermesd) do(t testing.TB, method, path, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	return hermestest.Do(t, method, strings.TrimSuffix(h.URL(), "/v1")+path, body, headers...)
}

// streamText streams a chat completion of one user message through the
// SDK and returns the accumulated answer text.
func streamText(t testing.TB, h *hermesd, prompt string) string {
	t.Helper()
	stream := h.client().Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    "hermes-agent",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	return acc.Choices[0].Message.Content
}
