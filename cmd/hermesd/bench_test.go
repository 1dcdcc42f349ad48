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

// benchMainMock is benchMain whose model is a mockllm with cfg, served on
// loopback TCP.
func benchMainMock(b *testing.B, cfg mockllm.Config) *fasthttp.Client {
	b.Helper()
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go mockllm.New(cfg).Serve(mln)
	b.Cleanup(func() { _ = mln.Close() })
	return benchMain(b, map[string]string{"OPENAI_BASE_URL": "http://" + mln.Addr().String() + "/v1"})
}

// postLoop posts body to chat completions from parallel goroutines until
// b.N requests are done, checking each answer ends with want.
func postLoop(b *testing.B, client *fasthttp.Client, body, want string) {
	postLoopTo(b, client, "/v1/chat/completions", body, want)
}

// postLoopTo is postLoop for the endpoint at path.
func postLoopTo(b *testing.B, client *fasthttp.Client, path, body, want string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://127.0.0.1" + path) // a loopback Host: the DNS rebinding guard refuses others
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
	client := benchMainMock(b, mockllm.Config{Tokens: 16})
	b.SetParallelism(8)
	postLoop(b, client, `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"hello"}]}`, "data: [DONE]\n\n")
}

// BenchmarkMainStreamTokens streams answers through the whole server from
// mockllm over loopback TCP, each token its own chunk (/delay 1µs makes the
// mock write token by token), as chat completions and as Responses
// streams, at 20 and 40 tokens: allocs/op of 40 minus 20, divided by 20,
// is the allocations per streamed token (0 since issue 15).
func BenchmarkMainStreamTokens(b *testing.B) {
	client := benchMainMock(b, mockllm.Config{})
	for _, n := range []string{"20", "40"} {
		prompt := `/tokens ` + n + `\n/delay 1us`
		b.Run("chat-"+n, func(b *testing.B) {
			b.SetParallelism(8)
			postLoop(b, client, `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"`+prompt+`"}]}`, "data: [DONE]\n\n")
		})
		b.Run("responses-"+n, func(b *testing.B) {
			b.SetParallelism(8)
			postLoopTo(b, client, "/v1/responses", `{"model":"hermes-agent","stream":true,"store":false,"input":"`+prompt+`"}`, "data: [DONE]\n\n")
		})
	}
}
