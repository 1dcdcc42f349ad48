package load

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// The ws-agent-loop scenario: an agent whose tool runs on the client. Each
// loop is LoopSteps responses answered with a call of the client's own
// function tool, each continued with its function_call_output, then the
// answer: over one WebSocket (Kind Hermesd: store: false, continued on the
// connection) or over HTTP (Kind HermesdHTTP: streamed POST /v1/responses,
// store: true, continued with previous_response_id). A sample is one whole
// loop.

// LoopSteps is how many client tool calls a ws-agent-loop loop makes.
const LoopSteps = 10

// loopTool is the client's function tool the model calls at every step.
const loopTool = `[{"type":"function","name":"lookup","description":"Looks something up.","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}]`

// loopPrompt asks the model for LoopSteps calls of the tool, then the answer.
func (w *worker) loopPrompt() string {
	return w.prompt() + "\n/tool lookup {\"q\":\"bench\"}\n/repeat " + strconv.Itoa(LoopSteps)
}

// loopBody is one response.create body of the loop: the prompt first, then
// the output of the call the previous response asked for.
func (w *worker) loopBody(prev, callID string, store, stream bool) []byte {
	b := []byte(`{"model":`)
	b = strconv.AppendQuote(b, w.opts.Model)
	if prev == "" {
		b = append(b, `,"input":`...)
		b = strconv.AppendQuote(b, w.loopPrompt())
	} else {
		b = append(b, `,"previous_response_id":`...)
		b = strconv.AppendQuote(b, prev)
		b = append(b, `,"input":[{"type":"function_call_output","call_id":`...)
		b = strconv.AppendQuote(b, callID)
		b = append(b, `,"output":"found it"}]`...)
	}
	b = append(b, `,"tools":`...)
	b = append(b, loopTool...)
	b = append(b, `,"store":`...)
	b = strconv.AppendBool(b, store)
	if stream {
		b = append(b, `,"stream":true`...)
	}
	return append(b, '}')
}

// terminal is what the loop reads of a response's terminal event.
type terminal struct {
	Type     string `json:"type"`
	Response struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Output []struct {
			Type   string `json:"type"`
			CallID string `json:"call_id"`
		} `json:"output"`
	} `json:"response"`
}

// next judges a terminal event: the call to answer ("" when the response
// is the answer) or an error kind.
func (t *terminal) next() (callID, kind string) {
	if t.Type != "response.completed" {
		return "", strings.TrimPrefix(t.Type, "response.")
	}
	for _, o := range t.Response.Output {
		if o.Type == "function_call" {
			return o.CallID, ""
		}
	}
	return "", ""
}

var terminalPrefix = []byte(`{"type":"response.`)

// isTerminal reports whether an event (its JSON) ends a response.
func isTerminal(ev []byte) bool {
	if !bytes.HasPrefix(ev, terminalPrefix) {
		return false
	}
	rest := ev[len(terminalPrefix):]
	return bytes.HasPrefix(rest, []byte(`completed"`)) || bytes.HasPrefix(rest, []byte(`failed"`)) || bytes.HasPrefix(rest, []byte(`incomplete"`))
}

// agentLoop runs one loop with step, which sends one response and returns
// its terminal event. Its TTFT is the time to the answer's terminal event,
// as is its latency: the loop is the unit the client waits for.
func (w *worker) agentLoop(step func(body []byte) (*terminal, string)) sample {
	ws := w.opts.Kind == Hermesd
	began := time.Now()
	prev, callID := "", ""
	for i := 0; ; i++ {
		t, kind := step(w.loopBody(prev, callID, !ws, !ws))
		if kind != "" {
			return sample{err: kind}
		}
		if callID, kind = t.next(); kind != "" {
			return sample{err: "response_" + kind}
		}
		if callID == "" {
			if i != LoopSteps {
				return sample{err: "loop_steps_" + strconv.Itoa(i)}
			}
			total := time.Since(began)
			return sample{ttft: total, total: total}
		}
		if i == LoopSteps {
			return sample{err: "loop_too_long"}
		}
		prev = t.Response.ID
	}
}

// socketStep sends one response.create on the worker's WebSocket, opened
// on first use and kept for every later loop.
func (w *worker) socketStep(body []byte) (*terminal, string) {
	if w.ws == nil {
		url := "ws" + strings.TrimPrefix(w.opts.BaseURL, "http") + "/v1/responses"
		h := http.Header{}
		if w.opts.APIKey != "" {
			h.Set("Authorization", "Bearer "+w.opts.APIKey)
		}
		d := websocket.Dialer{HandshakeTimeout: w.opts.Timeout}
		c, resp, err := d.Dial(url, h)
		if err != nil {
			if resp != nil {
				return nil, "status_" + strconv.Itoa(resp.StatusCode)
			}
			return nil, transportKind(err)
		}
		w.ws = c
	}
	fail := func(err error) (*terminal, string) {
		_ = w.ws.Close()
		w.ws = nil
		return nil, transportKind(err)
	}
	msg := append([]byte(`{"type":"response.create",`), body[1:]...)
	_ = w.ws.SetWriteDeadline(time.Now().Add(w.opts.Timeout))
	if err := w.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return fail(err)
	}
	_ = w.ws.SetReadDeadline(time.Now().Add(w.opts.Timeout))
	for {
		_, ev, err := w.ws.ReadMessage()
		if err != nil {
			return fail(err)
		}
		if bytes.HasPrefix(ev, []byte(`{"type":"error","status"`)) {
			return nil, "refused"
		}
		if isTerminal(ev) {
			var t terminal
			if json.Unmarshal(ev, &t) != nil {
				return nil, "bad_response"
			}
			return &t, ""
		}
	}
}

// httpStep sends one streamed POST /v1/responses and reads its events to
// the terminal one.
func (w *worker) httpStep(body []byte) (*terminal, string) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(w.opts.BaseURL + "/v1/responses")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if w.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+w.opts.APIKey)
	}
	req.SetBodyRaw(body)
	resp.StreamBody = true
	if err := w.client.DoTimeout(req, resp, w.opts.Timeout); err != nil {
		return nil, transportKind(err)
	}
	defer func() { _ = resp.CloseBodyStream() }()
	if code := resp.StatusCode(); code != fasthttp.StatusOK {
		return nil, "status_" + strconv.Itoa(code)
	}
	br := bufio.NewReaderSize(resp.BodyStream(), 8<<10)
	for {
		line, err := br.ReadBytes('\n')
		if ev, ok := bytes.CutPrefix(line, dataPrefix); ok && isTerminal(ev) {
			var t terminal
			if json.Unmarshal(ev, &t) != nil {
				return nil, "bad_response"
			}
			return &t, ""
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, "truncated"
			}
			return nil, transportKind(err)
		}
	}
}
