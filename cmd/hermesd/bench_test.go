package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/bench/mockllm"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// benchMain starts a whole hermesd as main wires it (store, every tool,
// the layered prompt, logging) on an in-memory listener, with env added to
// its settings, and returns a client for it.
func benchMain(b *testing.B, env map[string]string) *fasthttp.Client {
	b.Helper()
	vars := map[string]string{"HERMES_HOME": b.TempDir(), "HERMES_WORKSPACE": b.TempDir(), "API_SERVER_MAX_CONCURRENT_TURNS": "100000"}
	for k, v := range env {
		vars[k] = v
	}
	m := NewMain()
	if err := m.ParseFlags(nil, lookupIn(vars)); err != nil {
		b.Fatal(err)
	}
	m.Logger = newLogger("json", "info", io.Discard)
	ln := fasthttputil.NewInmemoryListener()
	m.Listener = ln
	if err := m.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

// postLoop posts body to chat completions from parallel goroutines until
// b.N requests are done, checking each answer ends with want.
func postLoop(b *testing.B, client *fasthttp.Client, body, want string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://bench/v1/chat/completions")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.SetBodyString(body)
			if err := client.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), want) {
				b.Fatalf("%d %s", resp.StatusCode(), resp.Body())
			}
		}
	})
}

// BenchmarkMainChat answers non-stream chat completions with the offline
// model.
func BenchmarkMainChat(b *testing.B) {
	client := benchMain(b, nil)
	postLoop(b, client, `{"model":"hermes-agent","messages":[{"role":"user","content":"/tokens 16"}]}`, "tok16")
}

// BenchmarkMainChatStreamUpstream is a streamed chat completion whose model
// is a real OpenAI-compatible upstream (bench/mockllm) over loopback TCP:
// the path of a production stream, 16 tokens.
func BenchmarkMainChatStreamUpstream(b *testing.B) {
	mock := mockllm.New(mockllm.Config{Tokens: 16})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go mock.Serve(mln)
	defer mln.Close()
	client := benchMain(b, map[string]string{"OPENAI_BASE_URL": "http://" + mln.Addr().String() + "/v1"})
	b.SetParallelism(8)
	postLoop(b, client, `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"hello"}]}`, "data: [DONE]\n\n")
}
