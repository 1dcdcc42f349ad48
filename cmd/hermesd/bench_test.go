package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/bench/mockllm"
	"github.com/hermesd/hermesd/internal/hermestest"
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
			postOnce(b, client, req, resp, path, body, want)
		}
	})
}

// postSerialTo posts body to the endpoint at path b.N times, one request
// after another: the cost of one request with nothing else running.
func postSerialTo(b *testing.B, client *fasthttp.Client, path, body, want string) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	postOnce(b, client, req, resp, path, body, want) // the connection, warm
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := hermestest.CPUTime()
	for range b.N {
		postOnce(b, client, req, resp, path, body, want)
	}
	// The client and the model are in this process too: the figure moves
	// with hermesd's cost, not equals it.
	b.ReportMetric(float64((hermestest.CPUTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// postOnce sends one request and checks it answers 200 with want in its body.
func postOnce(b *testing.B, client *fasthttp.Client, req *fasthttp.Request, resp *fasthttp.Response, path, body, want string) {
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

// BenchmarkMainStreamSerial is one client streaming a 2-token answer from
// mockllm over loopback TCP, one request after another, as a chat
// completion and as stateless and stored Responses streams: what a stream
// costs beyond the model's answer, with nothing else running (issue 15).
func BenchmarkMainStreamSerial(b *testing.B) {
	client := benchMainMock(b, mockllm.Config{Tokens: 2})
	b.Run("chat", func(b *testing.B) {
		postSerialTo(b, client, "/v1/chat/completions", `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"hello"}]}`, "data: [DONE]\n\n")
	})
	// The same turn answered whole: it runs on the handler's goroutine,
	// while a stream's turn runs on a worker and wakes the connection's
	// goroutine for its first event and its end. chat minus chat-whole
	// bounds what those hand-offs and the stream's sink cost.
	b.Run("chat-whole", func(b *testing.B) {
		postSerialTo(b, client, "/v1/chat/completions", `{"model":"hermes-agent","messages":[{"role":"user","content":"hello"}]}`, `"finish_reason":"stop"`)
	})
	b.Run("responses", func(b *testing.B) {
		postSerialTo(b, client, "/v1/responses", `{"stream":true,"store":false,"input":"hello"}`, "data: [DONE]\n\n")
	})
	b.Run("responses-stored", func(b *testing.B) {
		postSerialTo(b, client, "/v1/responses", `{"stream":true,"input":"hello"}`, "data: [DONE]\n\n")
	})
	// A coding agent's request: 40 function tools (11 KB), echoed in the
	// response objects and stored in the record's Wire.
	var tools strings.Builder
	for i := range 40 {
		if i > 0 {
			tools.WriteString(", ")
		}
		fmt.Fprintf(&tools, `{"type": "function", "name": "tool_%d", "description": "Runs a thing that does stuff; a long description of what it does and when to use it.", `+
			`"parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "the path"}, "n": {"type": "integer"}}, "required": ["path"]}}`, i)
	}
	b.Run("responses-tools", func(b *testing.B) {
		postSerialTo(b, client, "/v1/responses", `{"stream":true,"store":false,"input":"hello","tools":[`+tools.String()+`]}`, "data: [DONE]\n\n")
	})
	// A stateless client's 41st turn: the whole conversation sent again,
	// as Codex does with store: false.
	var history strings.Builder
	for i := range 20 {
		fmt.Fprintf(&history, `{"role":"user","content":"question %d about the code"},{"role":"assistant","content":"answer %d, a paragraph of it"},`, i, i)
	}
	b.Run("responses-history", func(b *testing.B) {
		postSerialTo(b, client, "/v1/responses", `{"stream":true,"store":false,"input":[`+history.String()+`{"role":"user","content":"hello"}]}`, "data: [DONE]\n\n")
	})
}
