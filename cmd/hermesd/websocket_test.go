package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/hermesd/hermesd/internal/hermestest"
)

// wsEvent is one server message of a Responses WebSocket.
type wsEvent struct {
	Type     string `json:"type"`
	Seq      *int   `json:"sequence_number"`
	Status   int    `json:"status"`
	Code     string `json:"code"`
	Param    string `json:"param"`
	Delta    string `json:"delta"`
	Response struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Output []struct {
			Type    string `json:"type"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	} `json:"response"`
	Error struct {
		Type string `json:"type"`
		Code string `json:"code"`
	} `json:"error"`
}

// dialWS opens a Responses WebSocket on h with the given headers
// (name, value pairs).
func dialWS(t testing.TB, h *hermesd, headers ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	return dialWSAt(t, h.URL(), headers...)
}

// dialWSAt opens a Responses WebSocket on the server whose API is at base
// (".../v1").
func dialWSAt(t testing.TB, base string, headers ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		hdr.Set(headers[i], headers[i+1])
	}
	url := "ws" + strings.TrimPrefix(base, "http") + "/responses"
	d := websocket.Dialer{HandshakeTimeout: hermestest.Timeout}
	c, resp, err := d.Dial(url, hdr)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, resp, err
}

func mustDialWS(t testing.TB, h *hermesd, headers ...string) *websocket.Conn {
	t.Helper()
	return mustDialWSAt(t, h.URL(), headers...)
}

func mustDialWSAt(t testing.TB, base string, headers ...string) *websocket.Conn {
	t.Helper()
	c, _, err := dialWSAt(t, base, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sendCreate sends a response.create message with body's fields.
func sendCreate(t testing.TB, c *websocket.Conn, body string) {
	t.Helper()
	msg := `{"type":"response.create",` + strings.TrimPrefix(body, "{")
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// readEvent reads the next server message.
func readEvent(t testing.TB, c *websocket.Conn) wsEvent {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(hermestest.Timeout))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading an event: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("message type %d, want text", typ)
	}
	var ev wsEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("event is not JSON: %v: %s", err, b)
	}
	if strings.HasPrefix(string(b), "event:") || strings.HasPrefix(string(b), "data:") {
		t.Fatalf("event carries SSE framing: %s", b)
	}
	return ev
}

// readResponse reads one response's events up to its terminal event and
// returns them; it fails on an error event outside a response.
func readResponse(t testing.TB, c *websocket.Conn) []wsEvent {
	t.Helper()
	var evs []wsEvent
	for {
		ev := readEvent(t, c)
		if ev.Seq == nil && ev.Type == "error" {
			t.Fatalf("refused: status %d code %s", ev.Status, ev.Code)
		}
		if ev.Seq == nil || *ev.Seq != len(evs) {
			t.Fatalf("event %d (%s) has sequence_number %v", len(evs), ev.Type, ev.Seq)
		}
		evs = append(evs, ev)
		switch ev.Type {
		case "response.completed", "response.failed", "response.incomplete":
			return evs
		}
	}
}

// final is the terminal event of a response's events.
func final(evs []wsEvent) wsEvent { return evs[len(evs)-1] }

// answerText is the text of a terminal event's message output.
func answerText(ev wsEvent) string {
	var s string
	for _, o := range ev.Response.Output {
		if o.Type == "message" {
			for _, c := range o.Content {
				s += c.Text
			}
		}
	}
	return s
}

// readRefusal reads the next message, which must be an error event
// outside any response.
func readRefusal(t testing.TB, c *websocket.Conn) wsEvent {
	t.Helper()
	ev := readEvent(t, c)
	if ev.Type != "error" || ev.Seq != nil {
		t.Fatalf("got %s (seq %v), want a refusal error event", ev.Type, ev.Seq)
	}
	return ev
}

func TestWebSocketSequentialResponses(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		_, text := call.Last()
		return hermestest.Reply{Text: "echo " + text}
	})
	h := startHermes(t, up.Env())
	c := mustDialWS(t, h)
	// Sent together: the second waits for the first.
	sendCreate(t, c, `{"input":"one","store":false}`)
	sendCreate(t, c, `{"input":"two","store":false}`)
	for _, want := range []string{"echo one", "echo two"} {
		evs := readResponse(t, c)
		if evs[0].Type != "response.created" || evs[1].Type != "response.in_progress" {
			t.Fatalf("response starts with %s, %s", evs[0].Type, evs[1].Type)
		}
		var deltas string
		for _, ev := range evs {
			if ev.Type == "response.output_text.delta" {
				deltas += ev.Delta
			}
		}
		last := final(evs)
		if last.Type != "response.completed" || answerText(last) != want || deltas != want {
			t.Fatalf("got %s %q (deltas %q), want completed %q", last.Type, answerText(last), deltas, want)
		}
	}
}

func TestWebSocketContinuation(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Text: "answer " + string(rune('A'+n))}
	})
	h := startHermes(t, up.Env())
	c := mustDialWS(t, h)
	sendCreate(t, c, `{"input":"first question","store":false}`)
	first := final(readResponse(t, c))
	sendCreate(t, c, `{"input":"second question","store":false,"previous_response_id":"`+first.Response.ID+`"}`)
	second := final(readResponse(t, c))
	if second.Type != "response.completed" || answerText(second) != "answer B" {
		t.Fatalf("continuation: %s %q", second.Type, answerText(second))
	}
	// The upstream saw the whole chain though the client sent only the new input.
	call := up.Calls()[1]
	var texts []string
	for i, m := range call.Messages {
		if m.Role != "system" {
			texts = append(texts, m.Role+":"+call.Text(i))
		}
	}
	want := "user:first question|assistant:answer A|user:second question"
	if got := strings.Join(texts, "|"); got != want {
		t.Fatalf("upstream saw %s, want %s", got, want)
	}
	// The chain lives on the connection only.
	if resp, _ := h.do(t, "GET", "/v1/responses/"+first.Response.ID, ""); resp.StatusCode != 404 {
		t.Fatalf("GET of a store:false response: %d", resp.StatusCode)
	}
	// The kept response is the latest: continuing the second works again.
	sendCreate(t, c, `{"input":"third","store":false,"previous_response_id":"`+second.Response.ID+`"}`)
	third := final(readResponse(t, c))
	if third.Type != "response.completed" {
		t.Fatalf("third: %s", third.Type)
	}
	if n := len(up.Calls()[2].Messages); n < 5 {
		t.Fatalf("third call carried %d messages, want the chain of five", n)
	}
	// A stored response cannot continue it: the store could never rebuild
	// its history.
	sendCreate(t, c, `{"input":"fourth","store":true,"previous_response_id":"`+third.Response.ID+`"}`)
	if ev := readRefusal(t, c); ev.Status != 400 || ev.Param != "store" {
		t.Fatalf("stored continuation: status %d param %q", ev.Status, ev.Param)
	}
}

func TestWebSocketReconnectNotFound(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	h := startHermes(t, up.Env())
	c := mustDialWS(t, h)
	sendCreate(t, c, `{"input":"hi","store":false}`)
	first := final(readResponse(t, c))
	_ = c.Close()
	c2 := mustDialWS(t, h)
	sendCreate(t, c2, `{"input":"again","store":false,"previous_response_id":"`+first.Response.ID+`"}`)
	ev := readRefusal(t, c2)
	if ev.Status != 400 || ev.Code != "previous_response_not_found" || ev.Error.Code != "previous_response_not_found" || ev.Param != "previous_response_id" {
		t.Fatalf("got status %d code %q/%q param %q", ev.Status, ev.Code, ev.Error.Code, ev.Param)
	}
	if len(up.Calls()) != 1 {
		t.Fatalf("the refused continuation reached the upstream")
	}
}

func TestWebSocketFailedContinuationEvicts(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if n == 1 {
			return hermestest.Reply{Status: 400} // not retried: the continuation fails
		}
		return hermestest.Reply{Text: "ok"}
	})
	h := startHermes(t, up.Env())
	c := mustDialWS(t, h)
	sendCreate(t, c, `{"input":"hi","store":false}`)
	first := final(readResponse(t, c))
	sendCreate(t, c, `{"input":"next","store":false,"previous_response_id":"`+first.Response.ID+`"}`)
	evs := readResponse(t, c)
	if final(evs).Type != "response.failed" || evs[len(evs)-2].Type != "error" {
		t.Fatalf("failed continuation ended with %s after %s", final(evs).Type, evs[len(evs)-2].Type)
	}
	sendCreate(t, c, `{"input":"retry","store":false,"previous_response_id":"`+first.Response.ID+`"}`)
	if ev := readRefusal(t, c); ev.Code != "previous_response_not_found" {
		t.Fatalf("after a failed continuation: %q", ev.Code)
	}
	// The connection still serves fresh responses.
	sendCreate(t, c, `{"input":"fresh","store":false}`)
	if ev := final(readResponse(t, c)); ev.Type != "response.completed" {
		t.Fatalf("fresh: %s", ev.Type)
	}
}

func TestWebSocketAuthAndOrigin(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	env := up.Env()
	env["API_SERVER_KEY"] = "sk-socket-key-1234"
	env["API_SERVER_CORS_ORIGINS"] = "http://good.example"
	h := startHermes(t, env)
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
	}{
		{"no key", nil, 401},
		{"wrong key", []string{"Authorization", "Bearer sk-wrong"}, 401},
		{"bad origin", []string{"Authorization", "Bearer sk-socket-key-1234", "Origin", "http://evil.example"}, 403},
	} {
		_, resp, err := dialWS(t, h, tc.headers...)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("%s: err %v status %d, want %d", tc.name, err, code, tc.status)
		}
	}
	c, resp, err := dialWS(t, h, "Authorization", "Bearer sk-socket-key-1234", "Origin", "http://good.example")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://good.example" {
		t.Fatalf("allowed origin not echoed: %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	sendCreate(t, c, `{"input":"hi","store":false}`)
	if ev := final(readResponse(t, c)); ev.Type != "response.completed" {
		t.Fatalf("authorized: %s", ev.Type)
	}
	// Without an upgrade, GET stays refused.
	if resp, _ := h.do(t, "GET", "/v1/responses", "", "Authorization", "Bearer sk-socket-key-1234"); resp.StatusCode != 405 {
		t.Fatalf("plain GET /v1/responses: %d", resp.StatusCode)
	}
}

func TestWebSocketDisconnectCancels(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Block: true} })
	h := startHermes(t, up.Env())
	c := mustDialWS(t, h)
	sendCreate(t, c, `{"input":"long","store":true}`)
	created := readEvent(t, c)
	if created.Type != "response.created" {
		t.Fatalf("first event %s", created.Type)
	}
	hermestest.Eventually(t, "the model call", func() bool { return len(up.Calls()) == 1 })
	_ = c.Close()
	select {
	case <-up.Cancelled:
	case <-time.After(hermestest.Timeout):
		t.Fatal("the upstream call was not cancelled when the client left")
	}
	hermestest.Eventually(t, "the cut response stored incomplete", func() bool {
		_, body := h.do(t, "GET", "/v1/responses/"+created.Response.ID, "")
		return strings.Contains(body, `"status":"incomplete"`)
	})
}

func TestWebSocketFloodBounded(t *testing.T) {
	hold := make(chan struct{})
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Text: "slow answer", Hold: hold}
	})
	env := up.Env()
	env["API_SERVER_MAX_QUEUED_TURNS"] = "2"
	env["API_SERVER_MAX_CONCURRENT_TURNS"] = "1"
	h := startHermes(t, env)
	c := mustDialWS(t, h)
	sendCreate(t, c, `{"input":"first","store":false}`)
	if ev := readEvent(t, c); ev.Type != "response.created" {
		t.Fatalf("first event %s", ev.Type)
	}
	// One runs, two wait on the connection, the rest are refused at once.
	const flood = 12
	for i := 0; i < flood; i++ {
		sendCreate(t, c, `{"input":"more","store":false}`)
	}
	refused := 0
	for refused < flood-2 {
		ev := readEvent(t, c)
		if ev.Seq != nil {
			continue // the running response's events
		}
		if ev.Type != "error" || ev.Status != 429 || ev.Code != "rate_limit_exceeded" {
			t.Fatalf("refusal: %s status %d code %s", ev.Type, ev.Status, ev.Code)
		}
		refused++
	}
	// The turn cap holds across connections: a second connection is
	// refused while the first's turn runs.
	c2 := mustDialWS(t, h)
	sendCreate(t, c2, `{"input":"other","store":false}`)
	if ev := readRefusal(t, c2); ev.Status != 429 {
		t.Fatalf("second connection: status %d", ev.Status)
	}
	close(hold)
	completed := 0
	for completed < 3 {
		ev := readEvent(t, c)
		switch {
		case ev.Seq == nil:
			t.Fatalf("unexpected refusal %s after the flood", ev.Code)
		case ev.Type == "response.completed":
			completed++
		case ev.Type == "response.failed":
			t.Fatalf("a queued response failed")
		}
	}
	if n := len(up.Calls()); n != 3 {
		t.Fatalf("upstream called %d times, want 3", n)
	}
}

func TestWebSocketBadMessages(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	h := startHermes(t, up.Env())
	c := mustDialWS(t, h)
	for _, tc := range []struct {
		name  string
		typ   int
		msg   string
		param string
	}{
		{"malformed", websocket.TextMessage, `{"type":"response.create","input":`, ""},
		{"not an object", websocket.TextMessage, `["response.create"]`, ""},
		{"unknown type", websocket.TextMessage, `{"type":"response.cancel"}`, "type"},
		{"no type", websocket.TextMessage, `{"input":"hi"}`, "type"},
		{"bad field", websocket.TextMessage, `{"type":"response.create","input":"hi","previous_response_id":"../x"}`, "previous_response_id"},
		{"background", websocket.TextMessage, `{"type":"response.create","input":"hi","background":true}`, "background"},
		{"binary", websocket.BinaryMessage, `{"type":"response.create","input":"hi"}`, ""},
		{"invalid utf-8", websocket.TextMessage, "{\"type\":\"response.create\",\"input\":\"\xff\"}", ""},
	} {
		if err := c.WriteMessage(tc.typ, []byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		ev := readRefusal(t, c)
		if ev.Status != 400 || ev.Error.Type != "invalid_request_error" || ev.Param != tc.param {
			t.Fatalf("%s: status %d type %q param %q", tc.name, ev.Status, ev.Error.Type, ev.Param)
		}
	}
	sendCreate(t, c, `{"input":"still here","store":false}`)
	if ev := final(readResponse(t, c)); ev.Type != "response.completed" {
		t.Fatalf("after bad messages: %s", ev.Type)
	}
	if len(up.Calls()) != 1 {
		t.Fatalf("a refused message reached the upstream")
	}
}

func TestWebSocketOversizedMessage(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	env := up.Env()
	env["API_SERVER_MAX_BODY_BYTES"] = "4096"
	h := startHermes(t, env)
	c := mustDialWS(t, h)
	sendCreate(t, c, `{"input":"`+strings.Repeat("x", 8192)+`","store":false}`)
	_ = c.SetReadDeadline(time.Now().Add(hermestest.Timeout))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized message: %v, want close 1009", err)
	}
	if len(up.Calls()) != 0 {
		t.Fatal("the oversized message reached the upstream")
	}
}

func TestWebSocketShutdownFinishesResponse(t *testing.T) {
	hold := make(chan struct{})
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Text: "last words", Hold: hold}
	})
	h := startHermes(t, up.Env())
	c := mustDialWS(t, h)
	sendCreate(t, c, `{"input":"hi","store":false}`)
	if ev := readEvent(t, c); ev.Type != "response.created" {
		t.Fatalf("first event %s", ev.Type)
	}
	hermestest.Eventually(t, "the model call", func() bool { return len(up.Calls()) == 1 })
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hermestest.Timeout)
		defer cancel()
		closed <- h.Close(ctx)
	}()
	hermestest.Eventually(t, "the server refusing new connections", func() bool {
		_, _, err := dialWS(t, h)
		return err != nil
	})
	close(hold)
	var last wsEvent
	for last.Type != "response.completed" {
		last = readEvent(t, c)
		if last.Type == "response.failed" || last.Type == "response.incomplete" {
			t.Fatalf("the running response was cut: %s", last.Type)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(hermestest.Timeout))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after the last response: %v, want close 1001", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
