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
// With -agent (or FLOORPROXY_MODE=agent, which hermes-bench passes on) it
// does in addition the least any agent server must do with the JSON: it
// decodes the client's request, and decodes every chunk of the upstream's
// stream and writes it again as a chunk of its own (the frames that came
// in one read go out in one write). That is the floor for an agent that
// reads what its model says, as hermesd does, against the relay's floor
// for a proxy that does not. With -agent it also serves POST /v1/responses
// with a text input: the model's chat stream becomes a Responses stream,
// the events and response objects written as hermesd writes them
// (responses.go).
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
	"strconv"
	"strings"

	"github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.String("port", "8642", "port to listen on")
	flag.String("home", "", "ignored (hermes-bench passes it to hermesd)")
	request := flag.String("request", envOr("FLOORPROXY_REQUEST", "tooling/llm/testdata/agent_request.json"),
		"a chat request as hermesd sends it upstream (its system message and tools are sent with every request)")
	agent := flag.Bool("agent", os.Getenv("FLOORPROXY_MODE") == "agent", "decode the request and every chunk of the stream, and encode the chunks again")
	flag.Parse()
	if err := run(*host+":"+*port, *request, os.Getenv("OPENAI_BASE_URL"), *agent); err != nil {
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

func run(addr, requestFile, baseURL string, agent bool) error {
	captured, err := os.ReadFile(requestFile)
	if err != nil {
		return err
	}
	p, err := newProxy(captured, baseURL)
	if err != nil {
		return err
	}
	p.agent = agent
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
	agent         bool // decode and encode the JSON (-agent)
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
	if p.agent && string(ctx.Path()) == "/v1/responses" {
		p.responses(ctx)
		return
	}
	if p.agent {
		var in chatRequest
		if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || len(in.Messages) == 0 {
			ctx.Error("a chat request with messages is needed", fasthttp.StatusBadRequest)
			return
		}
	}
	body := p.body(ctx.PostBody())
	if body == nil {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"object":"list","data":[]}`)
		return
	}
	req, resp, ok := p.send(ctx, body)
	if !ok {
		return
	}
	ctx.SetStatusCode(resp.StatusCode())
	ctx.Response.Header.SetContentTypeBytes(resp.Header.ContentType())
	ctx.Response.SetBodyStream(&relay{req: req, resp: resp, agent: p.agent}, -1)
}

// send posts body to the upstream's chat completions; on failure it has
// answered ctx with 502.
func (p *proxy) send(ctx *fasthttp.RequestCtx, body []byte) (*fasthttp.Request, *fasthttp.Response, bool) {
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
		return nil, nil, false
	}
	return req, resp, true
}

// chatRequest is what an agent reads of its client's request.
type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// chatChunk is what an agent reads of each chunk of its model's stream.
// Its strings stay JSON (RawMessage), decoded into the buffers of the
// stream's last chunk: no allocation a frame, as in hermesd's decoder.
type chatChunk struct {
	ID      json.RawMessage `json:"id"`
	Created int64           `json:"created"`
	Model   json.RawMessage `json:"model"`
	Choices []struct {
		Delta struct {
			Role    json.RawMessage `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"delta"`
		FinishReason json.RawMessage `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// relay copies the upstream's body to the client as it arrives: each read
// is one chunk, written at once.
type relay struct {
	req   *fasthttp.Request
	resp  *fasthttp.Response
	agent bool
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
	var line, out []byte // agent: a line read in part, the frames to write
	var c chatChunk
	for {
		k, err := src.Read(buf)
		if k > 0 && r.agent {
			line, out = reencode(&c, line, out[:0], buf[:k])
			if len(out) > 0 {
				if _, werr := w.Write(out); werr != nil {
					return n, werr
				}
			}
			n += int64(k)
		} else if k > 0 {
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

// reencode reads the SSE lines that data completes (partial holds a line
// begun by an earlier read) and appends to out a chunk of the agent's own
// for every chunk of the model's, decoded into c. It returns the line
// still incomplete.
func reencode(c *chatChunk, partial, out, data []byte) ([]byte, []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return append(partial, data...), out
		}
		l := data[:i]
		if len(partial) > 0 {
			partial = append(partial, l...)
			l = partial
		}
		data = data[i+1:]
		out = frame(c, out, l)
		partial = partial[:0]
	}
	return partial, out
}

// frame appends the agent's frame for one SSE line of the model's.
func frame(c *chatChunk, out, l []byte) []byte {
	d, ok := bytes.CutPrefix(l, []byte("data: "))
	if !ok {
		return out
	}
	if string(d) == "[DONE]" {
		return append(out, "data: [DONE]\n\n"...)
	}
	if !c.decode(d) || len(c.Choices) == 0 {
		return out
	}
	ch := &c.Choices[0]
	out = append(out, `data: {"id":`...)
	out = append(out, c.ID...)
	out = append(out, `,"object":"chat.completion.chunk","created":`...)
	out = strconv.AppendInt(out, c.Created, 10)
	out = append(out, `,"model":`...)
	out = append(out, c.Model...)
	out = append(out, `,"choices":[{"index":0,"delta":{`...)
	if isString(ch.Delta.Role) {
		out = append(append(append(out, `"role":`...), ch.Delta.Role...), ',')
	}
	out = append(out, `"content":`...)
	if isString(ch.Delta.Content) {
		out = append(out, ch.Delta.Content...)
	} else {
		out = append(out, `""`...)
	}
	out = append(out, `},"finish_reason":`...)
	if isString(ch.FinishReason) {
		out = append(out, ch.FinishReason...)
	} else {
		out = append(out, "null"...)
	}
	return append(out, "}]}\n\n"...)
}

// decode reads one chunk into c, reporting whether it is a chunk.
func (c *chatChunk) decode(d []byte) bool {
	// Emptied, keeping the buffers: a field this chunk lacks must not
	// keep the last chunk's value.
	c.ID, c.Model, c.Created, c.Usage = c.ID[:0], c.Model[:0], 0, nil
	for i := range c.Choices[:cap(c.Choices)] {
		ch := &c.Choices[:cap(c.Choices)][i]
		ch.Delta.Role, ch.Delta.Content, ch.FinishReason = ch.Delta.Role[:0], ch.Delta.Content[:0], ch.FinishReason[:0]
	}
	c.Choices = c.Choices[:0]
	return json.Unmarshal(d, c) == nil && isString(c.ID) && isString(c.Model)
}

// isString reports whether raw is a JSON string (the decoder checked it
// is valid JSON).
func isString(raw json.RawMessage) bool { return len(raw) > 1 && raw[0] == '"' }
