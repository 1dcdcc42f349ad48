package httpfront

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/actors"
	"github.com/hermesd/hermesd/tooling/llm"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkSSEContentChunk measures encoding one streamed token as a chat
// completion chunk, the hottest path of a stream.
func BenchmarkSSEContentChunk(b *testing.B) {
	st := &chatStream{req: &hermes.TurnRequest{ResponseID: "chatcmpl-0123456789abcdef01234567", Model: "hermes-agent", Created: time.Unix(1700000000, 0)}, includeUsage: true}
	st.sw = newSSEWriter(nil, discard{}, time.Minute, func() {})
	p := append([]byte(nil), `data: {"id":"chatcmpl-0123456789abcdef01234567","object":"chat.completion.chunk","created":1700000000,"model":"hermes-agent","choices":[`...)
	st.prefix = p
	b.ReportAllocs()
	for b.Loop() {
		st.content("hello, wörld ")
		st.sw.flush()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkChatRoundTrip is a whole chat completion through the HTTP front
// end, the actors and the offline model, over an in-memory connection.
func BenchmarkChatRoundTrip(b *testing.B) {
	b.Run("nonstream", func(b *testing.B) {
		benchRoundTrip(b, "/v1/chat/completions", `{"model":"hermes-agent","messages":[{"role":"user","content":"/tokens 16"}]}`, "tok16")
	})
	b.Run("stream", func(b *testing.B) {
		benchRoundTrip(b, "/v1/chat/completions", `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"/tokens 16"}]}`, "tok16")
	})
}

// BenchmarkResponsesRoundTrip is a whole /v1/responses request: a text
// answer, streamed and not, and a streamed turn in which the agent runs a
// tool (an mcp_call item with its events).
func BenchmarkResponsesRoundTrip(b *testing.B) {
	b.Run("nonstream", func(b *testing.B) {
		benchRoundTrip(b, "/v1/responses", `{"model":"hermes-agent","store":false,"input":"/tokens 16"}`, "tok16")
	})
	b.Run("stream", func(b *testing.B) {
		benchRoundTrip(b, "/v1/responses", `{"model":"hermes-agent","store":false,"stream":true,"input":"/tokens 16"}`, "data: [DONE]")
	})
	b.Run("stream-agent-tool", func(b *testing.B) {
		benchRoundTrip(b, "/v1/responses", `{"model":"hermes-agent","store":false,"stream":true,"input":"/tool nosuch {\"a\":1}"}`, "response.mcp_call.failed")
	})
}

// benchRoundTrip posts body to path in parallel over an in-memory
// connection and checks each answer holds want.
func benchRoundTrip(b *testing.B, path, body, want string) {
	rt := actors.New(actors.Options{Agent: &actors.Agent{Model: llm.NewOffline()}, MaxTurns: 1 << 20})
	defer rt.Shutdown(context.Background())
	s := New(Options{Runtime: rt})
	ln := fasthttputil.NewInmemoryListener()
	go s.Serve(ln)
	defer s.Shutdown()
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://localhost" + path)
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

// BenchmarkChatToolCalls measures encoding two client tool calls handed
// back, in a chat.completion and as the deltas that end a stream.
func BenchmarkChatToolCalls(b *testing.B) {
	req := &hermes.TurnRequest{ResponseID: "chatcmpl-0123456789abcdef01234567", Model: "hermes-agent", Created: time.Unix(1700000000, 0)}
	res := &hermes.TurnResult{ClientToolCalls: []hermes.ToolCall{
		{ID: "call_0123456789abcdef", Name: "get_weather", Arguments: `{"city":"Paris","unit":"celsius"}`},
		{ID: "call_fedcba9876543210", Name: "get_time", Arguments: `{"zone":"Europe/Paris"}`},
	}}
	b.Run("message", func(b *testing.B) {
		s := &Server{}
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			buf = s.appendCompletion(buf[:0], req, res)
		}
	})
	b.Run("stream", func(b *testing.B) {
		st := &chatStream{req: req, includeUsage: true}
		st.sw = newSSEWriter(nil, discard{}, time.Minute, func() {})
		st.prefix = append([]byte(nil), `data: {"id":"chatcmpl-0123456789abcdef01234567","object":"chat.completion.chunk","created":1700000000,"model":"hermes-agent","choices":[`...)
		b.ReportAllocs()
		for b.Loop() {
			st.done(res)
		}
	})
}

// BenchmarkResponsesDeltaFrame measures one streamed token of a Responses
// stream, encoded and written: as an SSE frame into a buffer, and as a
// WebSocket text message over loopback (a write syscall each, since every
// message goes out whole).
func BenchmarkResponsesDeltaFrame(b *testing.B) {
	newStream := func(sw *sseWriter) *responseStream {
		st := &responseStream{req: &hermes.TurnRequest{ResponseID: "resp_0123456789abcdef01234567"}, sw: sw, openID: "msg_0123456789abcdef01234567_0", index: 1}
		return st
	}
	b.Run("sse", func(b *testing.B) {
		sw := newSSEWriter(nil, discard{}, time.Minute, func() {})
		st := newStream(sw)
		b.ReportAllocs()
		for b.Loop() {
			st.delta("hello, wörld ")
			sw.flush()
			st.text = st.text[:0]
		}
	})
	b.Run("websocket", func(b *testing.B) {
		conns := make(chan *websocket.Conn, 1)
		release := make(chan struct{})
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			u := websocket.FastHTTPUpgrader{}
			_ = u.Upgrade(ctx, func(c *websocket.Conn) {
				conns <- c
				<-release
			})
		}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
		defer func() { close(release); _ = srv.Shutdown() }()
		client, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		go func() {
			for {
				if _, _, err := client.NextReader(); err != nil {
					return
				}
			}
		}()
		sw := &sseWriter{ws: &socket{c: <-conns, timeout: time.Minute}, buf: make([]byte, 0, 512), cancel: func() {}}
		st := newStream(sw)
		b.ReportAllocs()
		for b.Loop() {
			st.delta("hello, wörld ")
			st.text = st.text[:0]
		}
		if sw.failed {
			b.Fatal("a write failed")
		}
	})
}

// BenchmarkResponsesStreamEncode is one whole streamed text response of
// 20 tokens encoded into SSE frames, without the HTTP front end or the
// actors: the opening events, the deltas, the events that close the
// message item and response.completed. Per op is per response.
func BenchmarkResponsesStreamEncode(b *testing.B) {
	created := time.Unix(1700000000, 0)
	wire := []byte(`{"store":true,"metadata":{"k":"v"},"tools":[{"type":"function","name":"f","parameters":{}}]}`)
	req := &hermes.TurnRequest{ResponseID: "resp_0123456789abcdef01234567", Model: "hermes-agent", Created: created, Wire: wire}
	const tokens = 20
	var answer strings.Builder
	for range tokens {
		answer.WriteString("tok ")
	}
	rec := &hermes.StoredResponse{ID: req.ResponseID, Status: hermes.StatusCompleted, Created: created, Completed: created, Model: req.Model,
		Output: []hermes.Message{{Role: hermes.RoleAssistant, Content: answer.String()}}, Usage: hermes.Usage{PromptTokens: 12, CompletionTokens: tokens}, Wire: wire}
	done := hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Record: rec}}
	sw := newSSEWriter(nil, discard{}, time.Minute, func() {})
	s := &Server{}
	b.ReportAllocs()
	for b.Loop() {
		st := &responseStream{s: s, req: req}
		st.begin(sw)
		for range tokens {
			st.handle(hermes.Event{Kind: hermes.EventTextDelta, Text: "tok "})
			sw.flush()
		}
		st.handle(done)
		sw.flush()
	}
}
