package load

import (
	"bytes"
	"net"

	"github.com/valyala/fasthttp"
)

// The ceiling's fixed answers: what a server does when it does nothing but
// HTTP.
var (
	ceilingJSON = []byte(`{"id":"chatcmpl-ceiling","object":"chat.completion","created":0,"model":"ceiling","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}`)
	ceilingSSE  = []byte("data: {\"id\":\"chatcmpl-ceiling\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"ceiling\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"chatcmpl-ceiling\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"ceiling\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"The quick brown fox.\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"chatcmpl-ceiling\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"ceiling\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n")
	streamTrue = []byte(`"stream":true`)
)

// CeilingHandler answers every request with a fixed chat completion (a
// fixed SSE stream when the body asks to stream). It is the raw ceiling:
// the same client against fasthttp alone, to state hermesd's throughput as
// a fraction of its HTTP stack's.
func CeilingHandler(ctx *fasthttp.RequestCtx) {
	if bytes.Contains(ctx.PostBody(), streamTrue) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBody(ceilingSSE)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(ceilingJSON)
}

// ServeCeiling serves CeilingHandler on ln until it is closed.
func ServeCeiling(ln net.Listener) error {
	srv := &fasthttp.Server{
		Handler:               CeilingHandler,
		Concurrency:           1 << 20,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
	return srv.Serve(ln)
}
