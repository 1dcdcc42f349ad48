// Command floorproxy is the least an agent server in front of mockllm can
// do, the floor under hermesd's added latency and CPU on a machine: it
// takes a chat completion request, forwards it to the upstream with the
// agent's system prompt and tool schemas (the bytes hermesd sends, read
// once from a captured request) and copies the upstream's stream back as
// it arrives — fasthttp in, fasthttp out, no JSON decoded or encoded, no
// turn, no store. hermes-bench measures it as it measures hermesd:
//
//	go build -o /tmp/floorproxy ./bench/cmd/floorproxy
//	go run ./bench/cmd/hermes-bench -hermesd /tmp/floorproxy -scenario chat-stream …
//
// It serves POST /v1/chat/completions (whatever else is posted gets an
// empty model list, enough for hermes-bench's checks) and GET /health.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/valyala/fasthttp"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.String("port", "8642", "port to listen on")
	flag.String("home", "", "ignored (hermes-bench passes it to hermesd)")
	request := flag.String("request", envOr("FLOORPROXY_REQUEST", "tooling/llm/testdata/agent_request.json"),
		"a chat request as hermesd sends it upstream (its system message and tools are sent with every request)")
	flag.Parse()
	if err := run(*host+":"+*port, *request, os.Getenv("OPENAI_BASE_URL")); err != nil {
		fmt.Fprintln(os.Stderr, "floorproxy:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(addr, requestFile, baseURL string) error {
	captured, err := os.ReadFile(requestFile)
	if err != nil {
		return err
	}
	p, err := newProxy(captured, baseURL)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return (&fasthttp.Server{Handler: p.handle, ReadBufferSize: 16 << 10}).Serve(ln)
}

// proxy forwards chat requests to one upstream.
type proxy struct {
	upstream string // host:port
	// head is what goes before the client's messages: the tools and the
	// system message, as {"tools":[…],  …  "messages":[{system},
	tools, system []byte
	client        *fasthttp.HostClient
}

var (
	messagesKey = []byte(`"messages":[`)
	toolsKey    = []byte(`],"tools":`)
	streamKey   = []byte(`,"stream":`)
)

// newProxy takes the system message and the tools array out of a captured
// request. baseURL is OPENAI_BASE_URL (http only).
func newProxy(captured []byte, baseURL string) (*proxy, error) {
	m := bytes.Index(captured, messagesKey)
	t := bytes.Index(captured, toolsKey)
	s := bytes.Index(captured, streamKey)
	if m < 0 || t < m || s < t {
		return nil, errors.New("the captured request is not shaped as hermesd sends it (messages, tools, stream)")
	}
	first := captured[m+len(messagesKey):]
	if !bytes.HasPrefix(first, []byte(`{"role":"system"`)) {
		return nil, errors.New("the captured request does not start with a system message")
	}
	end := bytes.Index(first, []byte(`},{`))
	if end < 0 {
		end = t - (m + len(messagesKey)) // the system message is the only one
	} else {
		end++
	}
	up, ok := strings.CutPrefix(strings.TrimSuffix(strings.TrimSuffix(baseURL, "/"), "/v1"), "http://")
	if !ok || up == "" {
		return nil, fmt.Errorf("OPENAI_BASE_URL %q: an http:// upstream is needed", baseURL)
	}
	return &proxy{
		upstream: up,
		system:   first[:end],
		tools:    captured[t+len(`],`) : s],
		client:   &fasthttp.HostClient{Addr: up, StreamResponseBody: true, MaxConns: 1 << 20, WriteBufferSize: 32 << 10},
	}, nil
}

// body is the client's request with the agent's tools and system message
// spliced in, or nil when it has no messages array.
func (p *proxy) body(in []byte) []byte {
	i := bytes.Index(in, messagesKey)
	if i < 0 || len(in) == 0 || in[0] != '{' {
		return nil
	}
	i += len(messagesKey)
	b := make([]byte, 0, len(in)+len(p.tools)+len(p.system)+2)
	b = append(append(append(b, '{'), p.tools...), ',')
	b = append(b, in[1:i]...)
	b = append(append(b, p.system...), ',')
	return append(b, in[i:]...)
}

func (p *proxy) handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/health" {
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	}
	body := p.body(ctx.PostBody())
	if body == nil {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"object":"list","data":[]}`)
		return
	}
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("http://" + p.upstream + "/v1/chat/completions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	resp := fasthttp.AcquireResponse()
	if err := p.client.Do(req, resp); err != nil {
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		return
	}
	ctx.SetStatusCode(resp.StatusCode())
	ctx.Response.Header.SetContentTypeBytes(resp.Header.ContentType())
	ctx.Response.SetBodyStream(&relay{req: req, resp: resp}, -1)
}

// relay copies the upstream's body to the client as it arrives: each read
// is one chunk, written at once.
type relay struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
}

func (r *relay) SupportsBodyWriteTo() bool { return true }

func (r *relay) Read([]byte) (int, error) {
	return 0, errors.New("floorproxy: the relay is written, not read")
}

func (r *relay) WriteTo(w io.Writer) (int64, error) {
	src := r.resp.BodyStream()
	if src == nil {
		return 0, nil
	}
	buf := make([]byte, 16<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (r *relay) Close() error {
	_ = r.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(r.resp)
	fasthttp.ReleaseRequest(r.req)
	return nil
}
