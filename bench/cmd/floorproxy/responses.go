package main

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"
	"github.com/hermesd/hermesd/internal/jsonenc"
	"github.com/valyala/fasthttp"
)

// responsesRequest is what the floor reads of a Responses request: a text
// input, as hermes-bench's responses-stream scenario sends it.
type responsesRequest struct {
	Model string          `json:"model"`
	Input json.RawMessage `json:"input"`
	Store *bool           `json:"store"`
}

var responseSeq atomic.Uint64

// responses answers a streamed Responses request (-agent) with the events
// a Responses stream must carry, in the shapes hermesd writes them: the
// opening events, one output_text.delta for each chunk of the model's,
// and the closing events with the whole text and its usage.
func (p *proxy) responses(ctx *fasthttp.RequestCtx) {
	var in responsesRequest
	if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || !isString(in.Input) {
		ctx.Error("a Responses request with a text input is needed", fasthttp.StatusBadRequest)
		return
	}
	if in.Model == "" {
		in.Model = "hermes-agent"
	}
	chat := append([]byte(`{"model":`), jsonenc.AppendString(nil, in.Model)...)
	chat = append(append(append(chat, `,"messages":[{"role":"user","content":`...), in.Input...), `}],"stream":true,"stream_options":{"include_usage":true}}`...)
	req, resp, ok := p.send(ctx, p.body(chat))
	if !ok {
		return
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		ctx.SetStatusCode(fasthttp.StatusBadGateway)
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		return
	}
	id := "resp_floor" + strconv.FormatUint(responseSeq.Add(1), 10)
	ctx.SetContentType("text/event-stream; charset=utf-8")
	ctx.Response.SetBodyStream(&responsesRelay{req: req, resp: resp, id: id, item: "msg_" + id[5:] + "_0",
		model: in.Model, store: in.Store == nil || *in.Store, created: time.Now().Unix()}, -1)
}

// responsesRelay turns the model's chat stream into a Responses stream.
type responsesRelay struct {
	req      *fasthttp.Request
	resp     *fasthttp.Response
	id, item string
	model    string
	store    bool
	created  int64
	seq      int
	text     []byte // the answer so far, as the inside of a JSON string
	in, out  int    // usage
	c        chatChunk
	line     []byte
}

func (r *responsesRelay) SupportsBodyWriteTo() bool { return true }

func (r *responsesRelay) Read([]byte) (int, error) {
	return 0, errors.New("floorproxy: the relay is written, not read")
}

func (r *responsesRelay) Close() error {
	_ = r.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(r.resp)
	fasthttp.ReleaseRequest(r.req)
	return nil
}

// WriteTo writes the opening events with the first read's deltas, each
// read's deltas in one write, and the closing events after [DONE].
func (r *responsesRelay) WriteTo(w io.Writer) (int64, error) {
	src := r.resp.BodyStream()
	if src == nil {
		return 0, nil
	}
	buf := make([]byte, 16<<10)
	out := r.opening(nil)
	var n int64
	for {
		k, err := src.Read(buf)
		data := buf[:k]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				r.line = append(r.line, data...)
				break
			}
			l := data[:i]
			if len(r.line) > 0 {
				r.line = append(r.line, l...)
				l = r.line
			}
			data = data[i+1:]
			out = r.event(out, l)
			r.line = r.line[:0]
		}
		if len(out) > 0 {
			if _, werr := w.Write(out); werr != nil {
				return n, werr
			}
			n += int64(len(out))
			out = out[:0]
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// begin starts the event typ with its type and sequence number.
func (r *responsesRelay) begin(out []byte, typ string) []byte {
	out = append(append(append(out, "event: "...), typ...), "\ndata: {\"type\":\""...)
	out = append(append(out, typ...), `","sequence_number":`...)
	out = strconv.AppendInt(out, int64(r.seq), 10)
	r.seq++
	return out
}

func (r *responsesRelay) opening(out []byte) []byte {
	for _, typ := range []string{"response.created", "response.in_progress"} {
		out = r.begin(out, typ)
		out = r.response(append(out, `,"response":`...), false)
		out = append(out, "}\n\n"...)
	}
	out = r.begin(out, "response.output_item.added")
	out = append(append(append(out, `,"item":{"id":"`...), r.item...), `","type":"message","status":"in_progress","role":"assistant","content":[]},"output_index":0}`+"\n\n"...)
	out = r.begin(out, "response.content_part.added")
	out = append(append(append(out, `,"content_index":0,"item_id":"`...), r.item...), `","output_index":0,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}}`+"\n\n"...)
	return out
}

// event appends the events of one SSE line of the model's.
func (r *responsesRelay) event(out, l []byte) []byte {
	d, ok := bytes.CutPrefix(l, []byte("data: "))
	if !ok {
		return out
	}
	if string(d) == "[DONE]" {
		return r.closing(out)
	}
	if !r.c.decode(d) {
		return out
	}
	if u := r.c.Usage; u != nil {
		r.in, r.out = u.PromptTokens, u.CompletionTokens
	}
	if len(r.c.Choices) == 0 || !isString(r.c.Choices[0].Delta.Content) || len(r.c.Choices[0].Delta.Content) == 2 {
		return out
	}
	text := r.c.Choices[0].Delta.Content // a JSON string, quotes included
	r.text = append(r.text, text[1:len(text)-1]...)
	out = r.begin(out, "response.output_text.delta")
	out = append(append(append(out, `,"item_id":"`...), r.item...), `","output_index":0,"content_index":0,"delta":`...)
	return append(append(out, text...), `,"logprobs":[]}`+"\n\n"...)
}

func (r *responsesRelay) closing(out []byte) []byte {
	out = r.begin(out, "response.output_text.done")
	out = append(append(append(out, `,"content_index":0,"item_id":"`...), r.item...), `","logprobs":[],"output_index":0,"text":"`...)
	out = append(append(out, r.text...), "\"}\n\n"...)
	out = r.begin(out, "response.content_part.done")
	out = append(append(append(out, `,"content_index":0,"item_id":"`...), r.item...), `","output_index":0,"part":`...)
	out = append(r.part(out), "}\n\n"...)
	out = r.begin(out, "response.output_item.done")
	out = append(r.message(append(out, `,"item":`...)), `,"output_index":0}`+"\n\n"...)
	out = r.begin(out, "response.completed")
	out = r.response(append(out, `,"response":`...), true)
	return append(out, "}\n\ndata: [DONE]\n\n"...)
}

func (r *responsesRelay) part(out []byte) []byte {
	out = append(append(out, `{"type":"output_text","text":"`...), r.text...)
	return append(out, `","annotations":[],"logprobs":[]}`...)
}

func (r *responsesRelay) message(out []byte) []byte {
	out = append(append(append(out, `{"id":"`...), r.item...), `","type":"message","status":"completed","role":"assistant","content":[`...)
	return append(r.part(out), "]}"...)
}

// response appends the response object: in progress, or completed with
// its output and usage.
func (r *responsesRelay) response(out []byte, done bool) []byte {
	out = append(append(append(out, `{"id":"`...), r.id...), `","object":"response","created_at":`...)
	out = strconv.AppendInt(out, r.created, 10)
	if done {
		out = append(out, `,"status":"completed","background":false,"completed_at":`...)
		out = strconv.AppendInt(out, time.Now().Unix(), 10)
	} else {
		out = append(out, `,"status":"in_progress","background":false,"completed_at":null`...)
	}
	out = append(out, `,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"max_tool_calls":null,"model":`...)
	out = append(jsonenc.AppendString(out, r.model), `,"output":[`...)
	if done {
		out = r.message(out)
	}
	out = append(out, `],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":null,"store":`...)
	out = strconv.AppendBool(out, r.store)
	out = append(out, `,"temperature":1,"top_p":1,"presence_penalty":0,"frequency_penalty":0,"top_logprobs":0,"service_tier":"default","safety_identifier":null,"prompt_cache_key":null,"tool_choice":"auto","tools":[],"truncation":"disabled","text":{"format":{"type":"text"}},"usage":`...)
	if done {
		out = append(out, `{"input_tokens":`...)
		out = strconv.AppendInt(out, int64(r.in), 10)
		out = append(out, `,"input_tokens_details":{"cached_tokens":0},"output_tokens":`...)
		out = strconv.AppendInt(out, int64(r.out), 10)
		out = append(out, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		out = strconv.AppendInt(out, int64(r.in+r.out), 10)
		out = append(out, '}')
	} else {
		out = append(out, "null"...)
	}
	return append(out, `,"metadata":{},"conversation":null}`...)
}
