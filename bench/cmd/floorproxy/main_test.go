package main

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/goccy/go-json"
	"github.com/hermesd/hermesd/bench/mockllm"
	"github.com/valyala/fasthttp"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// The floor proxy streams the mock's answer back whole, and the mock gets
// the client's messages behind the agent's system message, with its tools.
func TestFloorProxyForwards(t *testing.T) {
	testForwards(t, false)
}

// With -agent the answer is the same, in frames the proxy wrote itself.
func TestFloorProxyAgentForwards(t *testing.T) {
	testForwards(t, true)
}

// startProxy serves a floor proxy (agent: with -agent) in front of a
// mockllm answering tokens tokens; it returns both base URLs.
func startProxy(t *testing.T, tokens int, agent bool) (proxyURL, mockURL string) {
	t.Helper()
	mln := listen(t)
	go mockllm.New(mockllm.Config{Tokens: tokens}).Serve(mln)
	captured, err := os.ReadFile("../../../tooling/llm/testdata/agent_request.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProxy(captured, "http://"+mln.Addr().String()+"/v1")
	if err != nil {
		t.Fatal(err)
	}
	p.agent = agent
	pln := listen(t)
	go fasthttp.Serve(pln, p.handle)
	return "http://" + pln.Addr().String(), "http://" + mln.Addr().String()
}

// post sends body to url and returns the answer.
func post(t *testing.T, url, body string) *fasthttp.Response {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.SetBodyString(body)
	if err := (&fasthttp.Client{}).Do(req, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func testForwards(t *testing.T, agent bool) {
	proxyURL, mockURL := startProxy(t, 3, agent)
	c := &fasthttp.Client{}
	if st, _, err := c.Post(nil, mockURL+mockllm.CapturePath, nil); err != nil || st != 200 {
		t.Fatalf("arming the capture: %d %v", st, err)
	}
	resp := post(t, proxyURL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi there"}]}`)
	if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte("data: [DONE]")) || strings.Count(string(resp.Body()), `"content":"`) < 3 {
		t.Fatalf("%d %s", resp.StatusCode(), resp.Body())
	}
	_, got, err := c.Get(nil, mockURL+mockllm.CapturePath)
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Messages []struct{ Role, Content string }
		Tools    []json.RawMessage
		Stream   bool
	}
	if err := json.Unmarshal(got, &sent); err != nil {
		t.Fatalf("the upstream got %s: %v", got, err)
	}
	if len(sent.Messages) != 2 || sent.Messages[0].Role != "system" || sent.Messages[1].Content != "hi there" || len(sent.Tools) < 5 || !sent.Stream {
		t.Fatalf("the upstream got %s", got)
	}
}

// A captured request not shaped as hermesd's is refused at start.
func TestFloorProxyRefusesOtherShapes(t *testing.T) {
	for _, b := range []string{``, `{"messages":[]}`, `{"messages":[{"role":"user","content":"x"}],"tools":[],"stream":true}`} {
		if _, err := newProxy([]byte(b), "http://127.0.0.1:1/v1"); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
	captured, _ := os.ReadFile("../../../tooling/llm/testdata/agent_request.json")
	if _, err := newProxy(captured, "https://api.example.com/v1"); err == nil {
		t.Error("an https upstream accepted")
	}
}

// -agent decodes every chunk and writes its own, whichever way the reads
// cut the stream; lines that are not chunks are dropped, and a request
// that is not a chat request is refused.
func TestFloorProxyAgentReencodes(t *testing.T) {
	stream := "data: {\"id\":\"c1\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"h\\\"i\"},\"finish_reason\":null}]}\n\n" +
		": comment\n\ndata: {not json}\n\n" +
		"data: {\"id\":\"c1\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	want := `data: {"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"h\"i"},"finish_reason":null}]}` + "\n\n" +
		`data: {"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}]}` + "\n\n" +
		"data: [DONE]\n\n"
	for cut := range len(stream) {
		var c chatChunk
		line, out := reencode(&c, nil, nil, []byte(stream[:cut]))
		line, out = reencode(&c, line, out, []byte(stream[cut:]))
		if string(out) != want || len(line) != 0 {
			t.Fatalf("cut at %d:\n%s\nwant\n%s", cut, out, want)
		}
	}

	proxyURL, _ := startProxy(t, 1, true)
	for _, body := range []string{`{"messages":"hi"}`, `{"messages":[]}`, `not json`} {
		if resp := post(t, proxyURL+"/v1/chat/completions", body); resp.StatusCode() != 400 {
			t.Errorf("%s: %d %s", body, resp.StatusCode(), resp.Body())
		}
	}
}

// -agent answers a Responses request with a Responses stream: every event
// JSON, numbered from 0, in the order hermesd writes them, the done text
// the deltas' sum, the usage the model's; an input that is not text is
// refused.
func TestFloorProxyAgentResponses(t *testing.T) {
	proxyURL, _ := startProxy(t, 3, true)
	resp := post(t, proxyURL+"/v1/responses", `{"model":"m","stream":true,"store":false,"input":"hi \"there\""}`)
	if resp.StatusCode() != 200 || !strings.HasSuffix(string(resp.Body()), "data: [DONE]\n\n") {
		t.Fatalf("%d %s", resp.StatusCode(), resp.Body())
	}
	var types []string
	var deltas, done string
	for i, ev := range strings.Split(strings.TrimSuffix(string(resp.Body()), "data: [DONE]\n\n"), "\n\n") {
		if ev == "" {
			continue
		}
		head, data, ok := strings.Cut(ev, "\ndata: ")
		var e struct {
			Type     string
			Seq      int `json:"sequence_number"`
			Delta    string
			Text     string
			Response struct {
				Status string
				Store  bool
				Usage  *struct {
					OutputTokens int `json:"output_tokens"`
				}
				Output []struct{ Content []struct{ Text string } }
			}
		}
		if !ok || json.Unmarshal([]byte(data), &e) != nil || head != "event: "+e.Type || e.Seq != i {
			t.Fatalf("event %d: %q", i, ev)
		}
		types = append(types, e.Type)
		switch e.Type {
		case "response.output_text.delta":
			deltas += e.Delta
		case "response.output_text.done":
			done = e.Text
		case "response.completed":
			if e.Response.Status != "completed" || e.Response.Store || e.Response.Usage == nil || e.Response.Usage.OutputTokens != 3 ||
				len(e.Response.Output) != 1 || e.Response.Output[0].Content[0].Text != deltas {
				t.Fatalf("completed: %s", data)
			}
		}
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added " +
		"response.output_text.delta response.output_text.delta response.output_text.delta " +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	if strings.Join(types, " ") != want || deltas == "" || done != deltas {
		t.Fatalf("events %v, deltas %q, done %q", types, deltas, done)
	}
	for _, body := range []string{`{"input":[{"role":"user","content":"x"}]}`, `{"input":3}`, `{`} {
		if resp := post(t, proxyURL+"/v1/responses", body); resp.StatusCode() != 400 {
			t.Errorf("%s: %d", body, resp.StatusCode())
		}
	}
}
