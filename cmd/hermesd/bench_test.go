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

// BenchmarkMainChat is a whole hermesd as main wires it (store, every tool,
// the layered prompt, logging) answering non-stream chat completions with
// the offline model, over an in-memory connection.
func BenchmarkMainChat(b *testing.B) {
	home, ws := b.TempDir(), b.TempDir()
	vars := map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": ws, "API_SERVER_MAX_CONCURRENT_TURNS": "100000"}
	m := NewMain()
	if err := m.ParseFlags(nil, func(k string) string { return vars[k] }); err != nil {
		b.Fatal(err)
	}
	m.Logger = newLogger("json", "info", io.Discard)
	ln := fasthttputil.NewInmemoryListener()
	m.Listener = ln
	if err := m.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	body := `{"model":"hermes-agent","messages":[{"role":"user","content":"/tokens 16"}]}`
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
			if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), "tok16") {
				b.Fatalf("%d %s", resp.StatusCode(), resp.Body())
			}
		}
	})
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
	home, ws := b.TempDir(), b.TempDir()
	vars := map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": ws, "API_SERVER_MAX_CONCURRENT_TURNS": "100000",
		"OPENAI_BASE_URL": "http://" + mln.Addr().String() + "/v1"}
	m := NewMain()
	if err := m.ParseFlags(nil, func(k string) string { return vars[k] }); err != nil {
		b.Fatal(err)
	}
	m.Logger = newLogger("json", "info", io.Discard)
	ln := fasthttputil.NewInmemoryListener()
	m.Listener = ln
	if err := m.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	body := `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	b.ReportAllocs()
	b.SetParallelism(8)
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
			if resp.StatusCode() != 200 || !strings.HasSuffix(string(resp.Body()), "data: [DONE]\n\n") {
				b.Fatalf("%d %s", resp.StatusCode(), resp.Body())
			}
		}
	})
}
