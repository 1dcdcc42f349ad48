package llm

import (
	"context"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkUpstreamStream is one model call with the agent's real 10.5 KB
// request against a fasthttp server on loopback that answers at once with
// a two-token stream: encoding, sending, reading the answer, both ends of
// the connection on this machine.
func BenchmarkUpstreamStream(b *testing.B) {
	answer := []byte("data: " + textChunk("hello") + "\n\ndata: " + textChunk(" world") + "\n\ndata: " + finishChunk("stop") + "\n\ndata: [DONE]\n\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBody(answer)
	}}
	go srv.Serve(ln)
	b.Cleanup(func() { _ = srv.Shutdown() })
	u := NewUpstream(UpstreamOptions{BaseURL: "http://" + ln.Addr().String() + "/v1", APIKey: "sk-test", Model: "m"})
	req := agentRequest(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := u.Stream(context.Background(), req, nil)
		if err != nil || resp.Text != "hello world" {
			b.Fatalf("%+v %v", resp, err)
		}
	}
}
