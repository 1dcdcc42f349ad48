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
	mln := listen(t)
	mock := mockllm.New(mockllm.Config{Tokens: 3})
	go mock.Serve(mln)
	captured, err := os.ReadFile("../../../tooling/llm/testdata/agent_request.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProxy(captured, "http://"+mln.Addr().String()+"/v1")
	if err != nil {
		t.Fatal(err)
	}
	pln := listen(t)
	go fasthttp.Serve(pln, p.handle)

	c := &fasthttp.Client{}
	mockURL := "http://" + mln.Addr().String()
	if st, _, err := c.Post(nil, mockURL+mockllm.CapturePath, nil); err != nil || st != 200 {
		t.Fatalf("arming the capture: %d %v", st, err)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + pln.Addr().String() + "/v1/chat/completions")
	req.Header.SetMethod("POST")
	req.SetBodyString(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi there"}]}`)
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
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
