package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/valyala/fasthttp"
)

// hostile are strings a JSON encoder gets wrong most easily.
var hostile = []string{
	"",
	"plain",
	"\x00",
	"nul\x00in the middle",
	"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f",
	`"quoted" and \backslashed\ and \"both\"`,
	"\u2028line\u2029paragraph",
	"<script>&amp;</script>",
	"\xff",
	"truncated \xc3",
	"\xc3\x28 bad continuation",
	"\xed\xa0\x80 encoded surrogate",
	"\xf4\x90\x80\x80 past U+10FFFF",
	"\xc0\xaf overlong",
	string(rune(0xD800)), // a lone surrogate as Go makes it from a rune: U+FFFD
	string([]rune{0xDBFF, 0xDC00}),
	"emoji 😀 and combining e\u0301 and \ufffd itself",
	"\uFEFF byte order mark",
	strings.Repeat("a\"\\\x00é\xff\u2028", 64<<10/12),
	strings.Repeat("x", 64<<10),
}

// encodingCases are requests in every shape the agent sends, with s in
// every string field.
func encodingCases(s string) []Request {
	params := []byte(`{"type":"object","properties":{"command":{"type":"string"}}}`)
	tools := []hermes.ToolSpec{{Name: "terminal", Description: "run " + s, Parameters: params}, {Name: "noargs"}}
	return []Request{
		{System: s, Messages: []hermes.Message{{Role: hermes.RoleUser, Content: s}}, Tools: tools},
		{Model: s, Messages: []hermes.Message{{Role: hermes.RoleUser, Content: s}}, ToolChoice: s, Tools: tools, MaxTokens: 7, Effort: s},
		{Messages: []hermes.Message{
			{Role: hermes.RoleUser, Content: s, Parts: []hermes.Part{{Type: "image_url", ImageURL: "data:image/png;base64," + s, Detail: s}}},
			{Role: hermes.RoleUser, Parts: []hermes.Part{{Type: "text", Text: s}, {Type: "image_url", ImageURL: s}, {Type: "text"}, {Type: "file", Text: s}}},
			{Role: hermes.RoleUser, Content: s, Parts: []hermes.Part{{Type: "text", Text: s}, {Type: "text", Text: s}}},
			{Role: hermes.RoleAssistant, Reasoning: s, ToolCalls: []hermes.ToolCall{
				{ID: s, Name: s, Arguments: s},
				{ID: "call_2", Name: "terminal", Arguments: ""},
				{ID: "call_3", Name: "terminal", Arguments: `{"a":"\u0000","b":[1,2,{"c":null}]}`},
				{ID: "call_4", Name: "terminal", Arguments: "not json {"},
			}},
			{Role: hermes.RoleAssistant, Content: s, ToolCalls: []hermes.ToolCall{{ID: "c", Name: "n", Arguments: "{}"}}},
			{Role: hermes.RoleTool, ToolCallID: s, Name: "terminal", Content: s},
			{Role: hermes.RoleTool, Parts: []hermes.Part{{Type: "text", Text: s}, {Type: "text", Text: "more"}}},
			{Role: hermes.RoleTool},
			{Role: hermes.RoleAssistant, Content: s, Reasoning: s},
			{Role: hermes.RoleAssistant, Reasoning: s},
			{Role: hermes.RoleCompaction, Content: s, Encrypted: "sealed"},
			{Role: hermes.Role(s), Content: s, ToolCallID: s},
			{Role: hermes.RoleUser},
		}, Tools: tools, ToolChoice: "required", MaxTokens: -3},
		{System: s, Messages: nil, Tools: nil, ToolChoice: "terminal"},
		{Messages: []hermes.Message{{Role: hermes.RoleUser, Parts: []hermes.Part{{Type: "image_url", ImageURL: s}}}}, ToolChoice: "auto", Tools: tools[:1]},
	}
}

// decodeGeneric decodes a request body the way a server reading it does.
func decodeGeneric(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%.300q", err, b)
	}
	return v
}

// checkSameAsGeneric encodes req both ways with u and fails unless the two
// bodies decode to the same value.
func checkSameAsGeneric(t testing.TB, u *Upstream, req Request) {
	t.Helper()
	got, err := u.encode(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := referenceEncode(u, req, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(got) {
		t.Fatalf("hand encoding is not valid UTF-8: %.300q", got)
	}
	if g, w := decodeGeneric(t, got), decodeGeneric(t, want); !reflect.DeepEqual(g, w) {
		t.Fatalf("hand encoding decodes differently:\n got %.600q\nwant %.600q", got, want)
	}
}

func TestEncodeMatchesGenericEncoder(t *testing.T) {
	opts := []UpstreamOptions{
		{Model: "default-model"},
		{Model: "m", SendReasoning: true, Reasoning: true},
	}
	for _, o := range opts {
		o.BaseURL = "http://127.0.0.1:1/v1"
		// One upstream for every case: its system prompt and tool caches
		// must follow each request's own.
		u := NewUpstream(o)
		for i, s := range hostile {
			for j, req := range encodingCases(s) {
				t.Run("", func(t *testing.T) {
					t.Logf("options %+v, string %d, case %d", o, i, j)
					checkSameAsGeneric(t, u, req)
				})
			}
		}
	}
}

// TestEncodeRandomRequests compares the two encodings over random
// transcripts of random strings.
func TestEncodeRandomRequests(t *testing.T) {
	rng := rand.New(rand.NewSource(15))
	pieces := []string{"a", "é", "😀", "\x00", "\x1f", "\"", "\\", "\n", "\t", "<", "&", "\u2028", "\xff", "\xc3", "\xed\xa0\x80", "\ufffd", " ", "{\"k\":1}"}
	str := func() string {
		var b strings.Builder
		for n := rng.Intn(12); n > 0; n-- {
			b.WriteString(pieces[rng.Intn(len(pieces))])
		}
		return b.String()
	}
	roles := []hermes.Role{hermes.RoleUser, hermes.RoleAssistant, hermes.RoleTool, hermes.RoleCompaction, hermes.RoleSystem}
	u := NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1/v1", Model: "m", SendReasoning: true, Reasoning: true})
	var tools []hermes.ToolSpec
	for i := 0; i < 3; i++ {
		tools = append(tools, hermes.ToolSpec{Name: str(), Description: str(), Parameters: []byte(`{"type":"object"}`)})
	}
	for i := 0; i < 400; i++ {
		req := Request{System: str(), Model: str(), ToolChoice: str(), MaxTokens: rng.Intn(3) - 1, Effort: str()}
		if rng.Intn(2) == 0 {
			req.Tools = tools
		}
		for n := rng.Intn(6); n > 0; n-- {
			m := hermes.Message{Role: roles[rng.Intn(len(roles))], Content: str(), Reasoning: str(), ToolCallID: str()}
			for k := rng.Intn(3); k > 0; k-- {
				m.ToolCalls = append(m.ToolCalls, hermes.ToolCall{ID: str(), Name: str(), Arguments: str()})
			}
			for k := rng.Intn(3); k > 0; k-- {
				typ := []string{"text", "image_url", "file"}[rng.Intn(3)]
				m.Parts = append(m.Parts, hermes.Part{Type: typ, Text: str(), ImageURL: str(), Detail: str()})
			}
			req.Messages = append(req.Messages, m)
		}
		checkSameAsGeneric(t, u, req)
	}
}

// TestEncodeSystemCacheFollowsThePrompt: an equal prompt in another
// string reuses the cached message; a changed one is encoded afresh.
func TestEncodeSystemCacheFollowsThePrompt(t *testing.T) {
	u := NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1/v1"})
	first := u.systemJSON("be brief")
	again := u.systemJSON(strings.Clone("be brief"))
	if &first[0] != &again[0] {
		t.Fatal("an equal prompt was encoded again")
	}
	if other := u.systemJSON("be long"); string(other) != `{"role":"system","content":"be long"}` {
		t.Fatalf("changed prompt: %s", other)
	}
	if back := u.systemJSON("be brief"); string(back) != `{"role":"system","content":"be brief"}` {
		t.Fatalf("prompt changed back: %s", back)
	}
}

// agentRequest is the request hermesd's agent sends for a one-line chat
// completion (system prompt and tool schemas as cmd/hermesd builds them),
// captured from mockllm.
func agentRequest(t testing.TB) Request {
	t.Helper()
	b, err := os.ReadFile("testdata/agent_request.json")
	if err != nil {
		t.Fatal(err)
	}
	var w hermestest.Call
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	var req Request
	for i, m := range w.Messages {
		if m.Role == "system" {
			req.System = w.Text(i)
			continue
		}
		req.Messages = append(req.Messages, hermes.Message{Role: hermes.Role(m.Role), Content: w.Text(i)})
	}
	for _, tl := range w.Tools {
		req.Tools = append(req.Tools, hermes.ToolSpec{Name: tl.Function.Name, Description: tl.Function.Description, Parameters: tl.Function.Parameters})
	}
	if req.System == "" || len(req.Tools) < 5 {
		t.Fatalf("testdata/agent_request.json: %d bytes of system prompt, %d tools", len(req.System), len(req.Tools))
	}
	return req
}

func TestEncodeAgentRequest(t *testing.T) {
	checkSameAsGeneric(t, NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1/v1", Model: "mock-model"}), agentRequest(t))
}

// BenchmarkEncodeRequest encodes the agent's real request (a 1.5 KB
// system prompt, 11 tool schemas, a user message; 10.5 KB in all) the
// generic way hermesd used to and by hand, as each turn does, with the
// tool list and system prompt the same from call to call.
func BenchmarkEncodeRequest(b *testing.B) {
	req := agentRequest(b)
	u := NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1/v1", Model: "mock-model"})
	b.Run("generic", func(b *testing.B) {
		pool := sync.Pool{New: func() any { return new(bytes.Buffer) }}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			buf := pool.Get().(*bytes.Buffer)
			if _, err := referenceEncode(u, req, buf); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			buf.Reset()
			pool.Put(buf)
		}
	})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			bp := reqBufs.Get().(*[]byte)
			out, err := u.encode((*bp)[:0], req)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(out)))
			*bp = out[:0]
			reqBufs.Put(bp)
		}
	})
}

// writeCounter counts the writes on the connections a fastClient dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int32
	sizes  chan int
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	select {
	case c.sizes <- len(p):
	default:
	}
	return c.Conn.Write(p)
}

// TestUpstreamSendsRequestInOneWrite: the whole request, head and body,
// leaves in one write on the connection, for the agent's 10.5 KB request
// (fasthttp's buffered writer split it at 4 KiB) and for a 300 KB one.
func TestUpstreamSendsRequestInOneWrite(t *testing.T) {
	f := newFake(t, sse(finishChunk("stop"), "[DONE]"))
	u := f.upstream(nil)
	if u.fast == nil {
		t.Fatal("not on the fasthttp path")
	}
	var writes atomic.Int32
	sizes := make(chan int, 16)
	u.fast.hc.Dial = func(addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: c, writes: &writes, sizes: sizes}, nil
	}
	big := agentRequest(t)
	big.Messages = append(big.Messages, hermes.Message{Role: hermes.RoleTool, ToolCallID: "c", Content: strings.Repeat("output line\n", 25000)})
	for _, req := range []Request{agentRequest(t), big} {
		writes.Store(0)
		if _, err := u.Stream(context.Background(), req, nil); err != nil {
			t.Fatal(err)
		}
		got := <-f.reqs
		if n := writes.Load(); n != 1 {
			t.Fatalf("a %d-byte request went out in %d writes", len(got.body), n)
		}
		if size := <-sizes; size < len(got.body) {
			t.Fatalf("the write carried %d bytes for a %d-byte body", size, len(got.body))
		}
		want, _ := u.encode(nil, req)
		if !bytes.Equal(got.body, want) {
			t.Fatal("the server got another body")
		}
	}
}

// TestRequestHeadAsFasthttpWroteIt: the head appendHead builds carries
// what fasthttp's Request.Write sent for the same request (target, Host,
// headers, Basic authorization from the URL's userinfo), and a CR or LF in
// a configured value cannot add a header.
func TestRequestHeadAsFasthttpWroteIt(t *testing.T) {
	urls := []string{
		"http://127.0.0.1:8080/v1/chat/completions",
		"http://upstream.example/v1/chat/completions",
		"https://api.example.com:8443/openai/v1/chat/completions",
		"http://user:p%40ss@127.0.0.1:9/v1/chat/completions",
		"http://127.0.0.1:9/a/../v1//chat/completions?api-version=2024-01-01&x=%20y",
		"http://[::1]:9/v1/chat/completions",
	}
	auths := []string{"", "Bearer sk-test", "Bearer sk\r\nX-Injected: 1\r\n\r\nGET / HTTP/1.1"}
	body := []byte(`{"model":"m"}`)
	for _, url := range urls {
		for _, auth := range auths {
			for _, post := range []bool{true, false} {
				var ours []byte
				if post {
					head := string(appendHead(nil, "POST", url, "text/event-stream", auth, true))
					room := len(head) + maxHeadTail
					ours = withHead(append(make([]byte, room), body...), room, head)
				} else {
					ours = appendHead(nil, "GET", url, "", auth, false)
				}

				fr := fasthttp.AcquireRequest()
				fr.SetRequestURI(url)
				fr.Header.SetUserAgent("hermesd")
				if post {
					fr.Header.SetMethod("POST")
					fr.Header.SetContentType("application/json")
					fr.SetBodyRaw(body)
					fr.Header.Set("Accept", "text/event-stream")
				} else {
					fr.Header.SetMethod("GET")
				}
				if auth != "" {
					fr.Header.Set("Authorization", auth)
				}
				var theirs bytes.Buffer
				w := bufio.NewWriter(&theirs)
				if err := fr.Write(w); err != nil {
					t.Fatal(err)
				}
				_ = w.Flush()
				fasthttp.ReleaseRequest(fr)

				o, t1 := readRequest(t, ours)
				f, t2 := readRequest(t, theirs.Bytes())
				if o.Method != f.Method || o.RequestURI != f.RequestURI || o.Host != f.Host || !reflect.DeepEqual(o.Header, f.Header) || t1 != t2 {
					t.Fatalf("%s, auth %q, post %v:\nours   %q\ntheirs %q", url, auth, post, ours, theirs.Bytes())
				}
				if o.Header.Get("X-Injected") != "" {
					t.Fatalf("a header was injected: %q", ours)
				}
			}
		}
	}
}

// readRequest parses one request from b, which must hold exactly one,
// and returns it with its body.
func readRequest(t *testing.T, b []byte) (*http.Request, string) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	r, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("%v: %q", err, b)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		t.Fatal(err)
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after the request: %q", br.Buffered(), b)
	}
	return r, body.String()
}
