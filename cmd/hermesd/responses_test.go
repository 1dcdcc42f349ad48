package main

// End-to-end tests of the Responses API (POST/GET/DELETE /v1/responses,
// input_items, cancel, background) and the Conversations API, through the
// official openai-go SDK where it has the call and raw HTTP where the exact
// bytes matter.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

// ---- helpers ----

// respParams is a request with a plain string input.
func respParams(input string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: "hermes-agent",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(input)},
	}
}

// mustRespond creates a response through the SDK and fails the test on error.
func mustRespond(t *testing.T, c *openai.Client, p responses.ResponseNewParams) *responses.Response {
	t.Helper()
	r, err := c.Responses.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// respThen continues a chain from prev.
func respThen(prev, input string) responses.ResponseNewParams {
	p := respParams(input)
	p.PreviousResponseID = openai.String(prev)
	return p
}

// respInConv puts a request in the named conversation.
func respInConv(name, input string) responses.ResponseNewParams {
	p := respParams(input)
	p.Conversation = responses.ResponseNewParamsConversationUnion{OfString: openai.String(name)}
	return p
}

// respAPIStatus is the HTTP status of an SDK error, 0 when it is not one.
func respAPIStatus(err error) int {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// respMustFail checks an SDK call failed with the given status.
func respMustFail(t *testing.T, err error, want int) {
	t.Helper()
	if got := respAPIStatus(err); got != want {
		t.Fatalf("got error %v (status %d), want status %d", err, got, want)
	}
}

// respJSONEqual reports whether two JSON documents hold the same values.
func respJSONEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var ca, cb bytes.Buffer
	if err := json.Compact(&ca, a); err != nil {
		t.Fatalf("bad JSON %q: %v", a, err)
	}
	if err := json.Compact(&cb, b); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// respGetRaw returns the raw body of GET /v1/responses/{id}, failing on a
// status other than 200.
func respGetRaw(t *testing.T, h *hermesd, id string) string {
	t.Helper()
	resp, body := h.do(t, "GET", "/v1/responses/"+id, "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", id, resp.StatusCode, body)
	}
	return body
}

// respWaitStatus polls GET until the response has one of the given statuses.
func respWaitStatus(t *testing.T, c *openai.Client, id string, want ...responses.ResponseStatus) *responses.Response {
	t.Helper()
	var last *responses.Response
	hermestest.Eventually(t, fmt.Sprintf("%s to reach %v", id, want), func() bool {
		r, err := c.Responses.Get(context.Background(), id, responses.ResponseGetParams{})
		if err != nil {
			return false
		}
		last = r
		for _, s := range want {
			if r.Status == s {
				return true
			}
		}
		return false
	})
	return last
}

// respStream runs a streaming request through the SDK and returns every
// event.
func respStream(t *testing.T, c *openai.Client, p responses.ResponseNewParams) []responses.ResponseStreamEventUnion {
	t.Helper()
	stream := c.Responses.NewStreaming(context.Background(), p)
	defer stream.Close()
	var evs []responses.ResponseStreamEventUnion
	for stream.Next() {
		evs = append(evs, stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// respRawOf extracts the "response" object of an event as raw JSON.
func respRawOf(t *testing.T, ev responses.ResponseStreamEventUnion) []byte {
	t.Helper()
	var w struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal([]byte(ev.RawJSON()), &w); err != nil {
		t.Fatal(err)
	}
	return w.Response
}

// respCheckSequence checks sequence_number runs 0, 1, 2… and that exactly one
// terminal event ends the stream.
func respCheckSequence(t *testing.T, evs []responses.ResponseStreamEventUnion) {
	t.Helper()
	terminals := 0
	for i, ev := range evs {
		if ev.SequenceNumber != int64(i) {
			t.Fatalf("event %d (%s) has sequence_number %d", i, ev.Type, ev.SequenceNumber)
		}
		switch ev.Type {
		case "response.completed", "response.incomplete", "response.failed":
			terminals++
			if i != len(evs)-1 {
				t.Fatalf("terminal event %s at %d of %d", ev.Type, i, len(evs))
			}
		}
	}
	if terminals != 1 {
		t.Fatalf("%d terminal events, want 1", terminals)
	}
}

// respTypes lists the event types in order.
func respTypes(evs []responses.ResponseStreamEventUnion) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// ---- creating and reading responses ----

func TestResponsesNonStreamOffline(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	r := mustRespond(t, c, respParams("hello there"))
	if !strings.HasPrefix(r.ID, "resp_") || r.Status != responses.ResponseStatusCompleted {
		t.Fatalf("id %q status %q", r.ID, r.Status)
	}
	if !strings.Contains(r.OutputText(), "hello there") {
		t.Fatalf("output text %q", r.OutputText())
	}
	if len(r.Output) != 1 || r.Output[0].Type != "message" || !strings.HasPrefix(r.Output[0].ID, "msg_") || r.Output[0].Role != "assistant" {
		t.Fatalf("output %s", r.RawJSON())
	}
	u := r.Usage
	if u.InputTokens == 0 || u.OutputTokens == 0 || u.TotalTokens != u.InputTokens+u.OutputTokens {
		t.Fatalf("usage %+v", u)
	}
	if !u.JSON.InputTokensDetails.Valid() || !u.JSON.OutputTokensDetails.Valid() {
		t.Fatalf("usage details missing: %s", u.RawJSON())
	}

	// GET returns the very object POST returned, byte for byte.
	resp, body := h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"/tokens 7","metadata":{"k":"v"}}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if got := respGetRaw(t, h, created.ID); got != body {
		t.Fatalf("GET differs from POST:\nPOST %s\nGET  %s", body, got)
	}
	// The SDK reads it back too.
	got, err := c.Responses.Get(context.Background(), created.ID, responses.ResponseGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if got.OutputText() != "tok1 tok2 tok3 tok4 tok5 tok6 tok7" || got.Metadata["k"] != "v" || got.Usage.OutputTokens != 7 {
		t.Fatalf("GET: %s", got.RawJSON())
	}
}

func TestResponsesStreamTextEvents(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	evs := respStream(t, c, respParams("/tokens 5"))
	respCheckSequence(t, evs)
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done",
		"response.completed"}
	if got := respTypes(evs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	created := evs[0].Response
	if created.Status != responses.ResponseStatusInProgress || len(created.Output) != 0 || !strings.HasPrefix(created.ID, "resp_") {
		t.Fatalf("response.created: %s", evs[0].RawJSON())
	}
	itemID := evs[2].Item.ID
	if !strings.HasPrefix(itemID, "msg_") || evs[2].Item.Status != "in_progress" {
		t.Fatalf("output_item.added: %s", evs[2].RawJSON())
	}
	var text strings.Builder
	for _, ev := range evs[3:12] {
		if ev.ItemID != "" && ev.ItemID != itemID {
			t.Fatalf("%s names item %q, want %q", ev.Type, ev.ItemID, itemID)
		}
		if ev.Type == "response.output_text.delta" {
			text.WriteString(ev.Delta)
		}
	}
	if evs[9].Text != text.String() || text.String() != "tok1 tok2 tok3 tok4 tok5" {
		t.Fatalf("deltas %q, done text %q", text.String(), evs[9].Text)
	}
	if evs[11].Item.ID != itemID || evs[11].Item.Status != "completed" {
		t.Fatalf("output_item.done: %s", evs[11].RawJSON())
	}
	final := evs[len(evs)-1]
	if final.Response.ID != created.ID || final.Response.OutputText() != text.String() || final.Response.Usage.OutputTokens != 5 {
		t.Fatalf("response.completed: %s", final.RawJSON())
	}
	if !respJSONEqual(t, respRawOf(t, final), []byte(respGetRaw(t, h, created.ID))) {
		t.Fatalf("completed response differs from GET:\n%s\n%s", respRawOf(t, final), respGetRaw(t, h, created.ID))
	}
}

func TestResponsesStreamAgentToolItems(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	evs := respStream(t, c, respParams(`/tool terminal {"command":"echo hi"}`))
	respCheckSequence(t, evs)
	want := []string{"response.created", "response.in_progress",
		"response.output_item.added", "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
		"response.mcp_call.in_progress", "response.mcp_call.completed", "response.output_item.done",
		"response.output_item.added", "response.content_part.added"}
	got := respTypes(evs)
	if len(got) < len(want) || strings.Join(got[:len(want)], ",") != strings.Join(want, ",") {
		t.Fatalf("events\n got %v\nwant prefix %v", got, want)
	}
	if got[len(got)-1] != "response.completed" {
		t.Fatalf("last event %s", got[len(got)-1])
	}
	call, callDone, msg := evs[2].Item, evs[7].Item, evs[8].Item
	if call.Type != "mcp_call" || call.Name != "terminal" || !strings.HasPrefix(call.ID, "mcp_") || call.Status != "in_progress" ||
		!strings.Contains(evs[2].RawJSON(), `"server_label":"hermes"`) || !strings.Contains(evs[2].RawJSON(), `"output":null`) {
		t.Fatalf("mcp_call added: %s", evs[2].RawJSON())
	}
	if evs[3].ItemID != call.ID || evs[3].Delta != `{"command":"echo hi"}` {
		t.Fatalf("arguments delta: %s", evs[3].RawJSON())
	}
	if evs[4].ItemID != call.ID || evs[4].Arguments != `{"command":"echo hi"}` {
		t.Fatalf("arguments done: %s", evs[4].RawJSON())
	}
	for _, i := range []int{5, 6} {
		if evs[i].ItemID != call.ID || evs[i].OutputIndex != 0 {
			t.Fatalf("%s: %s", evs[i].Type, evs[i].RawJSON())
		}
	}
	if callDone.ID != call.ID || callDone.Status != "completed" || callDone.Arguments.OfString != `{"command":"echo hi"}` ||
		!strings.Contains(callDone.Output.OfString, "hi") || !strings.Contains(evs[7].RawJSON(), `"error":null`) {
		t.Fatalf("mcp_call done: %s", evs[7].RawJSON())
	}
	if msg.Type != "message" {
		t.Fatalf("message added: %s", evs[8].RawJSON())
	}
	// No item asks the client to run anything.
	for _, ev := range evs {
		if strings.Contains(ev.RawJSON(), `"function_call`) {
			t.Fatalf("a function_call item for the agent's own tool: %s", ev.RawJSON())
		}
	}

	// The final response lists the same items, in the same order, with the
	// same ids; and it is what GET returns.
	final := evs[len(evs)-1].Response
	if len(final.Output) != 2 {
		t.Fatalf("final output: %s", evs[len(evs)-1].RawJSON())
	}
	for i, it := range []responses.ResponseOutputItemUnion{callDone, msg} {
		if final.Output[i].ID != it.ID || final.Output[i].Type != it.Type {
			t.Fatalf("final output[%d] = %s %s, streamed %s %s", i, final.Output[i].Type, final.Output[i].ID, it.Type, it.ID)
		}
	}
	if !strings.Contains(final.OutputText(), "terminal returned") || !strings.Contains(final.OutputText(), "hi") {
		t.Fatalf("answer %q", final.OutputText())
	}
	if !respJSONEqual(t, respRawOf(t, evs[len(evs)-1]), []byte(respGetRaw(t, h, final.ID))) {
		t.Fatal("completed response differs from GET")
	}
	// input_items of a follow-up that sends the items back shows them as
	// they were returned.
	next := mustRespond(t, c, respThen(final.ID, "/echo-history"))
	if !strings.Contains(next.OutputText(), "terminal") {
		t.Fatalf("the follow-up lost the tool run: %q", next.OutputText())
	}
}

// With API_SERVER_AGENT_TOOL_ITEMS=function_call the agent's tools keep
// the older form: function_call then function_call_output.
func TestResponsesAgentToolItemsFunctionCallForm(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_AGENT_TOOL_ITEMS": "function_call"})
	c := h.client()
	evs := respStream(t, c, respParams(`/tool terminal {"command":"echo hi"}`))
	respCheckSequence(t, evs)
	want := []string{"response.created", "response.in_progress",
		"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
		"response.output_item.added", "response.output_item.done",
		"response.output_item.added", "response.content_part.added"}
	got := respTypes(evs)
	if len(got) < len(want) || strings.Join(got[:len(want)], ",") != strings.Join(want, ",") {
		t.Fatalf("events\n got %v\nwant prefix %v", got, want)
	}
	call, out := evs[2].Item, evs[6].Item
	if call.Type != "function_call" || call.Name != "terminal" || !strings.HasPrefix(call.ID, "fc_") || call.CallID == "" {
		t.Fatalf("function_call added: %s", evs[2].RawJSON())
	}
	if out.Type != "function_call_output" || out.CallID != call.CallID || !strings.Contains(out.RawJSON(), "hi") {
		t.Fatalf("function_call_output: %s", evs[6].RawJSON())
	}
	final := evs[len(evs)-1].Response
	if len(final.Output) != 3 || final.Output[0].Type != "function_call" || final.Output[1].Type != "function_call_output" {
		t.Fatalf("final output: %s", evs[len(evs)-1].RawJSON())
	}
	if !respJSONEqual(t, respRawOf(t, evs[len(evs)-1]), []byte(respGetRaw(t, h, final.ID))) {
		t.Fatal("completed response differs from GET")
	}
}

func TestResponsesStreamFailureMidStream(t *testing.T) {
	h := startHermes(t, nil)
	// The SDK surfaces the failure as a stream error at the error event.
	stream := h.client().Responses.NewStreaming(context.Background(), respParams("/fail-after 3 upstream fell over"))
	for stream.Next() {
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "upstream fell over") {
		t.Fatalf("SDK stream error = %v", err)
	}
	stream.Close()

	// On the wire: deltas, the message closed as incomplete, an error
	// event, response.failed, then [DONE].
	evs, done := rawResponseStream(t, h, `{"model":"hermes-agent","stream":true,"input":"/fail-after 3 upstream fell over"}`)
	if !done {
		t.Fatal("the stream did not end with data: [DONE]")
	}
	n := len(evs)
	if n < 3 || evs[n-2].Type != "error" || evs[n-1].Type != "response.failed" {
		t.Fatalf("events %v", rawTypes(evs))
	}
	var text strings.Builder
	var closed bool
	for i, ev := range evs {
		if ev.Seq != i {
			t.Fatalf("event %d has sequence_number %d", i, ev.Seq)
		}
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.field(t, "delta").(string))
		case "response.output_item.done":
			closed = ev.field(t, "item").(map[string]any)["status"] == "incomplete"
		}
	}
	if e := evs[n-2].field(t, "error").(map[string]any); e["message"] != "upstream fell over" || e["type"] != "server_error" {
		t.Fatalf("error event %s", evs[n-2].Data)
	}
	var final struct {
		Response responses.Response `json:"response"`
	}
	if err := json.Unmarshal([]byte(evs[n-1].Data), &final); err != nil {
		t.Fatal(err)
	}
	out := final.Response.Output
	if final.Response.Status != responses.ResponseStatusFailed || final.Response.Error.Message != "upstream fell over" ||
		text.Len() == 0 || final.Response.OutputText() != text.String() || len(out) != 1 || out[0].Status != "incomplete" {
		t.Fatalf("final %s", evs[n-1].Data)
	}
	if !closed {
		t.Fatalf("the partial message item was not closed as incomplete: %v", rawTypes(evs))
	}
	if !respJSONEqual(t, []byte(final.Response.RawJSON()), []byte(respGetRaw(t, h, final.Response.ID))) {
		t.Fatal("failed response differs from GET")
	}
}

// ---- history: chains and conversations ----

func TestResponsesChainRecallsEarlierTurn(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	first := mustRespond(t, c, respParams("my favourite colour is teal"))
	second := mustRespond(t, c, respThen(first.ID, "/echo-history"))
	history := second.OutputText()
	if !strings.Contains(history, "user: my favourite colour is teal") || !strings.Contains(history, "assistant: "+first.OutputText()) {
		t.Fatalf("history the model saw:\n%s", history)
	}
	if second.PreviousResponseID != first.ID {
		t.Fatalf("previous_response_id %q", second.PreviousResponseID)
	}
}

func TestResponsesNamedConversation(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	one := mustRespond(t, c, respInConv("my-chat", "the first fact is apples"))
	two := mustRespond(t, c, respInConv("my-chat", "the second fact is pears"))
	three := mustRespond(t, c, respInConv("my-chat", "/echo-history"))
	history := three.OutputText()
	for _, want := range []string{"user: the first fact is apples", "assistant: " + one.OutputText(),
		"user: the second fact is pears", "assistant: " + two.OutputText()} {
		if !strings.Contains(history, want) {
			t.Fatalf("third turn's model input lacks %q:\n%s", want, history)
		}
	}
	if strings.Index(history, "apples") > strings.Index(history, "pears") {
		t.Fatalf("turns out of order:\n%s", history)
	}
	if three.Conversation.ID != "my-chat" {
		t.Fatalf("conversation %s", three.RawJSON())
	}
}

func TestResponsesConcurrentConversationSerializes(t *testing.T) {
	release := make(chan struct{})
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if n == 0 {
			<-release // hold the first turn until the second is queued
			return hermestest.Reply{Text: "the answer is forty-two"}
		}
		return hermestest.Reply{Text: "second answer"}
	})
	h := startHermes(t, up.Env())
	c := h.client()
	var wg sync.WaitGroup
	results := make([]*responses.Response, 2)
	errs := make([]error, 2)
	start := func(i int, input string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.Responses.New(context.Background(), respInConv("busy", input))
		}()
	}
	start(0, "question one")
	hermestest.Eventually(t, "the first model call", func() bool { return len(up.Calls()) == 1 })
	start(1, "question two")
	hermestest.Eventually(t, "the second turn to queue", func() bool { return h.runtime.Stats().Admitted == 2 })
	if n := len(up.Calls()); n != 1 {
		t.Fatalf("%d model calls while the first turn runs, want 1", n)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	calls := up.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d model calls, want 2", len(calls))
	}
	second := calls[1]
	var sawAnswer, sawQuestion bool
	for i, m := range second.Messages {
		sawQuestion = sawQuestion || (m.Role == "user" && second.Text(i) == "question one")
		sawAnswer = sawAnswer || (m.Role == "assistant" && second.Text(i) == "the answer is forty-two")
	}
	if !sawQuestion || !sawAnswer {
		t.Fatalf("second model call lacks the first turn: %+v", second.Messages)
	}
	if results[0].OutputText() != "the answer is forty-two" || results[1].OutputText() != "second answer" {
		t.Fatalf("answers %q %q", results[0].OutputText(), results[1].OutputText())
	}
}

func TestResponsesItemReference(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	first := mustRespond(t, c, respParams("the password is swordfish"))
	// Clients that keep their own history (the Vercel AI SDK) send earlier
	// items back by reference.
	body := fmt.Sprintf(`{"model":"m","input":[{"type":"item_reference","id":%q},{"role":"user","content":"/echo-history"}]}`, first.Output[0].ID)
	resp, out := h.do(t, "POST", "/v1/responses", body)
	if resp.StatusCode != 200 || !strings.Contains(out, "assistant: "+first.OutputText()) {
		t.Fatalf("item_reference: %d %s", resp.StatusCode, out)
	}
	resp, out = h.do(t, "POST", "/v1/responses", `{"model":"m","input":[{"type":"item_reference","id":"msg_nope_0"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(out, `"param":"input[0].id"`) {
		t.Fatalf("unknown reference: %d %s", resp.StatusCode, out)
	}
}

// ---- storage: store=false, delete, input items, restart, eviction ----

func TestResponsesStoreFalseNotRetrievable(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	p := respParams("do not keep this")
	p.Store = openai.Bool(false)
	r := mustRespond(t, c, p)
	if r.Status != responses.ResponseStatusCompleted || !strings.Contains(r.RawJSON(), `"store":false`) {
		t.Fatalf("store=false answered %s", r.RawJSON())
	}
	_, err := c.Responses.Get(context.Background(), r.ID, responses.ResponseGetParams{})
	respMustFail(t, err, 404)
}

func TestResponsesDelete(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	r := mustRespond(t, c, respParams("short-lived"))
	resp, body := h.do(t, "DELETE", "/v1/responses/"+r.ID, "")
	if resp.StatusCode != 200 || !respJSONEqual(t, []byte(body), []byte(`{"id":"`+r.ID+`","object":"response","deleted":true}`)) {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	_, err := c.Responses.Get(context.Background(), r.ID, responses.ResponseGetParams{})
	respMustFail(t, err, 404)
	respMustFail(t, c.Responses.Delete(context.Background(), r.ID), 404)
	respMustFail(t, c.Responses.Delete(context.Background(), "resp_unknown"), 404)
}

func TestResponsesInputItemsPagination(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	var input responses.ResponseInputParam
	for i := 1; i <= 5; i++ {
		input = append(input, responses.ResponseInputItemParamOfMessage(fmt.Sprintf("line %d", i), responses.EasyInputMessageRoleUser))
	}
	p := respParams("")
	p.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: input}
	r := mustRespond(t, c, p)

	type page struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Role    string `json:"role"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"data"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
		HasMore bool    `json:"has_more"`
	}
	list := func(query string) page {
		t.Helper()
		resp, body := h.do(t, "GET", "/v1/responses/"+r.ID+"/input_items"+query, "")
		if resp.StatusCode != 200 {
			t.Fatalf("input_items%s: %d %s", query, resp.StatusCode, body)
		}
		var pg page
		if err := json.Unmarshal([]byte(body), &pg); err != nil {
			t.Fatal(err)
		}
		return pg
	}
	texts := func(pg page) string {
		var out []string
		for _, d := range pg.Data {
			out = append(out, d.Content[0].Text)
		}
		return strings.Join(out, ",")
	}
	all := list("")
	if all.Object != "list" || len(all.Data) != 5 || all.HasMore || texts(all) != "line 5,line 4,line 3,line 2,line 1" {
		t.Fatalf("default (desc) list: %+v", all)
	}
	if *all.FirstID != all.Data[0].ID || *all.LastID != all.Data[4].ID || all.Data[0].Role != "user" || all.Data[0].Content[0].Type != "input_text" {
		t.Fatalf("ids/shape: %+v", all)
	}
	p1 := list("?limit=2&order=asc")
	if texts(p1) != "line 1,line 2" || !p1.HasMore || *p1.LastID != p1.Data[1].ID {
		t.Fatalf("asc page 1: %+v", p1)
	}
	p2 := list("?limit=2&order=asc&after=" + *p1.LastID)
	if texts(p2) != "line 3,line 4" || !p2.HasMore {
		t.Fatalf("asc page 2: %+v", p2)
	}
	p3 := list("?limit=2&order=asc&after=" + *p2.LastID)
	if texts(p3) != "line 5" || p3.HasMore || *p3.FirstID != *p3.LastID {
		t.Fatalf("asc page 3: %+v", p3)
	}
	d1 := list("?limit=3&order=desc")
	if texts(d1) != "line 5,line 4,line 3" || !d1.HasMore {
		t.Fatalf("desc page: %+v", d1)
	}

	// The SDK pages the same way.
	pg, err := c.Responses.InputItems.List(context.Background(), r.ID, responses.InputItemListParams{
		Limit: openai.Int(2), Order: responses.InputItemListParamsOrderAsc, After: openai.String(p1.Data[0].ID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Data) != 2 || !pg.HasMore || pg.Data[0].ID != p1.Data[1].ID {
		t.Fatalf("SDK page: %s", pg.RawJSON())
	}
	resp, body := h.do(t, "GET", "/v1/responses/"+r.ID+"/input_items?limit=0", "")
	if resp.StatusCode != 400 || !strings.Contains(body, `"param":"limit"`) {
		t.Fatalf("limit=0: %d %s", resp.StatusCode, body)
	}
}

func TestResponsesChainSurvivesRestart(t *testing.T) {
	home := t.TempDir()
	first := startHermes(t, map[string]string{"HERMES_HOME": home})
	r := mustRespond(t, first.client(), respParams("the secret is plum"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}

	second := startHermes(t, map[string]string{"HERMES_HOME": home})
	c := second.client()
	got, err := c.Responses.Get(context.Background(), r.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != r.OutputText() {
		t.Fatalf("GET after restart: %v %v", err, got)
	}
	next := mustRespond(t, c, respThen(r.ID, "/echo-history"))
	if !strings.Contains(next.OutputText(), "user: the secret is plum") {
		t.Fatalf("history after restart:\n%s", next.OutputText())
	}
}

func TestResponsesEvictionKeepsNewestContinuable(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_MAX_STORED_RESPONSES": "3"})
	c := h.client()

	// A chain of five: the first ones are evicted, the newest still
	// carries the whole transcript.
	r := mustRespond(t, c, respParams("chain fact 0"))
	firstID := r.ID
	for i := 1; i < 5; i++ {
		r = mustRespond(t, c, respThen(r.ID, fmt.Sprintf("chain fact %d", i)))
	}
	_, err := c.Responses.Get(context.Background(), firstID, responses.ResponseGetParams{})
	respMustFail(t, err, 404)
	last := mustRespond(t, c, respThen(r.ID, "/echo-history"))
	for i := 0; i < 5; i++ {
		if !strings.Contains(last.OutputText(), fmt.Sprintf("user: chain fact %d", i)) {
			t.Fatalf("newest chain lost fact %d:\n%s", i, last.OutputText())
		}
	}

	// A conversation whose latest response is deleted continues from what
	// survives; one whose responses were all evicted starts fresh. Never 404.
	mustRespond(t, c, respInConv("evicted", "keep alpha"))
	beta := mustRespond(t, c, respInConv("evicted", "drop beta"))
	if err := c.Responses.Delete(context.Background(), beta.ID); err != nil {
		t.Fatal(err)
	}
	hist := mustRespond(t, c, respInConv("evicted", "/echo-history")).OutputText()
	if !strings.Contains(hist, "keep alpha") || strings.Contains(hist, "drop beta") {
		t.Fatalf("after deleting the latest:\n%s", hist)
	}
	for i := 0; i < 3; i++ {
		mustRespond(t, c, respParams(fmt.Sprintf("filler %d", i)))
	}
	fresh := mustRespond(t, c, respInConv("evicted", "/echo-history"))
	if fresh.Status != responses.ResponseStatusCompleted || strings.Contains(fresh.OutputText(), "keep alpha") {
		t.Fatalf("after eviction: %s", fresh.RawJSON())
	}
}

// ---- validation ----

func TestResponsesBadContinuation(t *testing.T) {
	h := startHermes(t, nil)
	resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m","input":"hi","previous_response_id":"resp_nope"}`)
	var env struct {
		Error struct {
			Type  string  `json:"type"`
			Code  *string `json:"code"`
			Param *string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || env.Error.Code == nil || *env.Error.Code != "previous_response_not_found" ||
		env.Error.Param == nil || *env.Error.Param != "previous_response_id" || env.Error.Type != "invalid_request_error" {
		t.Fatalf("unknown previous: %d %s", resp.StatusCode, body)
	}
	// The SDK sees the same 400.
	_, err := h.client().Responses.New(context.Background(), respThen("resp_nope", "hi"))
	respMustFail(t, err, 400)

	resp, body = h.do(t, "POST", "/v1/responses", `{"model":"m","input":"hi","previous_response_id":"resp_x","conversation":"c"}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `"invalid_request_error"`) {
		t.Fatalf("conversation + previous: %d %s", resp.StatusCode, body)
	}
	// Same check on a stream request: plain JSON, not SSE.
	resp, body = h.do(t, "POST", "/v1/responses", `{"model":"m","input":"hi","stream":true,"previous_response_id":"resp_nope"}`)
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(body, "previous_response_not_found") {
		t.Fatalf("stream with unknown previous: %d %s", resp.StatusCode, body)
	}
}

// ---- Idempotency-Key ----

func TestResponsesIdempotencyKey(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Text: fmt.Sprintf("answer number %d", n)}
	})
	h := startHermes(t, up.Env())
	const body = `{"model":"hermes-agent","input":"run once"}`

	resp1, body1 := h.do(t, "POST", "/v1/responses", body, "Idempotency-Key", "key-1")
	resp2, body2 := h.do(t, "POST", "/v1/responses", body, "Idempotency-Key", "key-1")
	if resp1.StatusCode != 200 || resp2.StatusCode != 200 || body1 != body2 {
		t.Fatalf("replay differs:\n%d %s\n%d %s", resp1.StatusCode, body1, resp2.StatusCode, body2)
	}
	if n := len(up.Calls()); n != 1 {
		t.Fatalf("upstream called %d times, want 1", n)
	}
	resp3, body3 := h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"something else"}`, "Idempotency-Key", "key-1")
	if resp3.StatusCode != 409 || !strings.Contains(body3, `"error"`) {
		t.Fatalf("different body, same key: %d %s", resp3.StatusCode, body3)
	}

	// Concurrent duplicates run once and all get the same bytes.
	before := len(up.Calls())
	const n = 5
	bodies := make([]string, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","input":"concurrent"}`, "Idempotency-Key", "key-2")
			statuses[i], bodies[i] = resp.StatusCode, b
		}()
	}
	wg.Wait()
	for i := range bodies {
		if statuses[i] != 200 || bodies[i] != bodies[0] {
			t.Fatalf("duplicate %d: %d %s, first %s", i, statuses[i], bodies[i], bodies[0])
		}
	}
	if got := len(up.Calls()) - before; got != 1 {
		t.Fatalf("concurrent duplicates ran %d times, want 1", got)
	}
}

// ---- background and cancel ----

func TestResponsesBackground(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	p := respParams("/tokens 3")
	p.Background = openai.Bool(true)
	r := mustRespond(t, c, p)
	if r.Status != responses.ResponseStatusQueued && r.Status != responses.ResponseStatusInProgress {
		t.Fatalf("background answered with status %q", r.Status)
	}
	if !r.Background {
		t.Fatalf("background flag: %s", r.RawJSON())
	}
	done := respWaitStatus(t, c, r.ID, responses.ResponseStatusCompleted, responses.ResponseStatusFailed)
	if done.Status != responses.ResponseStatusCompleted || done.OutputText() != "tok1 tok2 tok3" || done.Usage.OutputTokens != 3 {
		t.Fatalf("finished background response: %s", done.RawJSON())
	}

	// A background turn in a named conversation keeps the history.
	mustRespond(t, c, respInConv("bg-chat", "remember mango"))
	p = respInConv("bg-chat", "/echo-history")
	p.Background = openai.Bool(true)
	r = mustRespond(t, c, p)
	done = respWaitStatus(t, c, r.ID, responses.ResponseStatusCompleted, responses.ResponseStatusFailed)
	if !strings.Contains(done.OutputText(), "user: remember mango") {
		t.Fatalf("background turn lost the conversation:\n%s", done.OutputText())
	}
}

func TestResponsesBackgroundCancel(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	p := respParams("/sleep 30s")
	p.Background = openai.Bool(true)
	r := mustRespond(t, c, p)
	respWaitStatus(t, c, r.ID, responses.ResponseStatusInProgress)
	cancelled, err := c.Responses.Cancel(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.Status != responses.ResponseStatusCancelled {
		t.Fatalf("cancel answered %s", cancelled.RawJSON())
	}
	got, err := c.Responses.Get(context.Background(), r.ID, responses.ResponseGetParams{})
	if err != nil || got.Status != responses.ResponseStatusCancelled {
		t.Fatalf("GET after cancel: %v %v", err, got)
	}
	// Only background responses can be cancelled.
	fg := mustRespond(t, c, respParams("foreground"))
	_, err = c.Responses.Cancel(context.Background(), fg.ID)
	respMustFail(t, err, 400)
}

// A background response still queued behind another turn on its
// conversation is cancelled before it ever runs.
func TestResponsesBackgroundCancelQueued(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	long := respInConv("queue", "/sleep 30s")
	long.Background = openai.Bool(true)
	first := mustRespond(t, c, long)
	respWaitStatus(t, c, first.ID, responses.ResponseStatusInProgress)
	next := respInConv("queue", "never runs")
	next.Background = openai.Bool(true)
	queued := mustRespond(t, c, next)
	if queued.Status != responses.ResponseStatusQueued {
		t.Fatalf("second turn is %s, want queued", queued.Status)
	}
	cancelled, err := c.Responses.Cancel(context.Background(), queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.Status != responses.ResponseStatusCancelled {
		t.Fatalf("queued cancel answered %s", cancelled.RawJSON())
	}
	if _, err := c.Responses.Cancel(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	respWaitStatus(t, c, first.ID, responses.ResponseStatusCancelled)
}

// ---- client disconnect ----

func TestResponsesClientDisconnectStoresPartial(t *testing.T) {
	h := startHermes(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", h.URL()+"/responses",
		strings.NewReader(`{"model":"hermes-agent","stream":true,"input":"/tokens 200\n/delay 20ms"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var id string
	deltas := 0
	for deltas < 3 && sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Type     string `json:"type"`
			Response struct {
				ID string `json:"id"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case "response.created":
			id = ev.Response.ID
		case "response.output_text.delta":
			deltas++
		}
	}
	cancel()
	resp.Body.Close()
	if id == "" || deltas < 3 {
		t.Fatalf("stream ended early: id %q, %d deltas", id, deltas)
	}

	c := h.client()
	got := respWaitStatus(t, c, id, responses.ResponseStatusIncomplete, responses.ResponseStatusCompleted, responses.ResponseStatusFailed)
	text := got.OutputText()
	if got.Status != responses.ResponseStatusIncomplete || !strings.HasPrefix(text, "tok1 tok2 tok3") || strings.Contains(text, "tok200") ||
		got.IncompleteDetails.Reason != "interrupted" || got.Output[len(got.Output)-1].Status != "incomplete" {
		t.Fatalf("stored after disconnect: status %q text %q", got.Status, text)
	}
}

// ---- Conversations API ----

func TestConversationsAPI(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	bg := context.Background()
	conv, err := c.Conversations.New(bg, conversations.ConversationNewParams{
		Items: []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("the code word is kiwi", responses.EasyInputMessageRoleUser),
		},
		Metadata: shared.Metadata{"topic": "fruit"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(conv.ID, "conv_") || conv.Object != "conversation" {
		t.Fatalf("created %s", conv.RawJSON())
	}
	got, err := c.Conversations.Get(bg, conv.ID)
	if err != nil || got.ID != conv.ID || fmt.Sprint(got.Metadata) != "map[topic:fruit]" {
		t.Fatalf("get: %v %s", err, got.RawJSON())
	}

	added, err := c.Conversations.Items.New(bg, conv.ID, conversations.ItemNewParams{
		Items: []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("and the colour is green", responses.EasyInputMessageRoleUser),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(added.Data) != 1 || added.Data[0].Type != "message" {
		t.Fatalf("items added: %s", added.RawJSON())
	}
	items, err := c.Conversations.Items.List(bg, conv.ID, conversations.ItemListParams{Order: conversations.ItemListParamsOrderAsc})
	if err != nil {
		t.Fatal(err)
	}
	if len(items.Data) != 2 || items.Data[1].ID != added.Data[0].ID {
		t.Fatalf("items: %s", items.RawJSON())
	}

	// A response in the conversation sees its items.
	p := respParams("/echo-history")
	p.Conversation = responses.ResponseNewParamsConversationUnion{OfConversationObject: &responses.ResponseConversationParam{ID: conv.ID}}
	r := mustRespond(t, c, p)
	if !strings.Contains(r.OutputText(), "user: the code word is kiwi") || !strings.Contains(r.OutputText(), "user: and the colour is green") {
		t.Fatalf("history in conversation:\n%s", r.OutputText())
	}
	next := mustRespond(t, c, respInConv(conv.ID, "/echo-history"))
	if n := strings.Count("\n"+next.OutputText()+"\n", "\nuser: the code word is kiwi\n"); n != 1 {
		t.Fatalf("second turn (items must be consumed once):\n%s", next.OutputText())
	}
	items, err = c.Conversations.Items.List(bg, conv.ID, conversations.ItemListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items.Data) < 4 {
		t.Fatalf("items after two turns: %s", items.RawJSON())
	}

	// Adding items after a turn whose assistant message stands for several
	// items (two tool calls) answers with exactly the items added.
	mustRespond(t, c, respInConv(conv.ID, "/tool terminal {\"command\":\"echo a\"}\n/tool terminal {\"command\":\"echo b\"}"))
	added, err = c.Conversations.Items.New(bg, conv.ID, conversations.ItemNewParams{
		Items: []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("one more", responses.EasyInputMessageRoleUser),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(added.Data) != 1 || !strings.Contains(added.Data[0].RawJSON(), "one more") {
		t.Fatalf("items added after a tool turn: %s", added.RawJSON())
	}
	items, err = c.Conversations.Items.List(bg, conv.ID, conversations.ItemListParams{Limit: openai.Int(1)})
	if err != nil || len(items.Data) != 1 || items.Data[0].ID != added.Data[0].ID || !items.HasMore {
		t.Fatalf("newest item: %v %s", err, items.RawJSON())
	}

	_, err = c.Responses.New(bg, respInConv("conv_doesnotexist", "hi"))
	respMustFail(t, err, 404)

	del, err := c.Conversations.Delete(bg, conv.ID)
	if err != nil || !del.Deleted || del.ID != conv.ID {
		t.Fatalf("delete: %v %v", err, del)
	}
	_, err = c.Conversations.Get(bg, conv.ID)
	respMustFail(t, err, 404)
	_, err = c.Responses.New(bg, respInConv(conv.ID, "hi"))
	respMustFail(t, err, 404)
}

// ---- client function tools ----

func TestResponsesClientFunctionTool(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if role, text := call.Last(); role == "tool" {
			return hermestest.Reply{Text: "It is " + text + " in Paris."}
		}
		return hermestest.Reply{ToolCalls: [][2]string{{"get_weather", `{"city":"Paris"}`}}}
	})
	h := startHermes(t, up.Env())
	c := h.client()
	p := respParams("weather in Paris?")
	p.Tools = []responses.ToolUnionParam{responses.ToolParamOfFunction("get_weather",
		map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}, false)}
	first := mustRespond(t, c, p)
	if first.Status != responses.ResponseStatusCompleted || len(first.Output) != 1 {
		t.Fatalf("first: %s", first.RawJSON())
	}
	call := first.Output[0].AsFunctionCall()
	if call.Type != "function_call" || call.Name != "get_weather" || call.Arguments != `{"city":"Paris"}` || call.CallID == "" || !strings.HasPrefix(call.ID, "fc_") {
		t.Fatalf("function call: %s", first.Output[0].RawJSON())
	}
	if len(first.Tools) != 1 || first.Tools[0].Name != "get_weather" {
		t.Fatalf("tools echoed: %s", first.RawJSON())
	}
	if got := respGetRaw(t, h, first.ID); !respJSONEqual(t, []byte(got), []byte(first.RawJSON())) {
		t.Fatalf("GET differs from POST:\n%s\n%s", got, first.RawJSON())
	}

	out := responses.ResponseInputItemParamOfFunctionCallOutput("sunny")
	out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
	second := respThen(first.ID, "")
	second.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{out}}
	second.Tools = p.Tools
	r := mustRespond(t, c, second)
	if r.Status != responses.ResponseStatusCompleted || r.OutputText() != "It is sunny in Paris." {
		t.Fatalf("second: %s", r.RawJSON())
	}
	calls := up.Calls()
	last := calls[len(calls)-1]
	n := len(last.Messages)
	if last.Messages[n-1].Role != "tool" || last.Messages[n-1].ToolCallID != call.CallID || last.Messages[n-2].Role != "assistant" ||
		len(last.Messages[n-2].ToolCalls) != 1 || last.Messages[n-2].ToolCalls[0].ID != call.CallID {
		t.Fatalf("model saw: %+v", last.Messages)
	}

	// Streamed, the call arrives as a function_call item with its arguments.
	evs := respStream(t, c, p)
	respCheckSequence(t, evs)
	final := evs[len(evs)-1]
	if final.Type != "response.completed" || len(final.Response.Output) != 1 || final.Response.Output[0].Type != "function_call" {
		t.Fatalf("streamed: %v %s", respTypes(evs), final.RawJSON())
	}
	var argsDone bool
	for _, ev := range evs {
		if ev.Type == "response.function_call_arguments.done" {
			argsDone = ev.Arguments == `{"city":"Paris"}` && ev.ItemID == final.Response.Output[0].ID
		}
	}
	if !argsDone {
		t.Fatalf("no matching function_call_arguments.done: %v", respTypes(evs))
	}
}

// A function_call_output must answer exactly one call: one in the input
// or in the history the request continues, and only once (issue 10 item
// 8). Codex once sent a second output for a call hermesd had answered and
// the user got a doubled answer.
func TestResponsesOrphanToolOutputs(t *testing.T) {
	up := weatherUpstream(t)
	h := startHermes(t, up.Env())
	tools := `"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]`
	bad := func(body, param, msg string) {
		t.Helper()
		before := len(up.Calls())
		resp, got := h.do(t, "POST", "/v1/responses", body)
		var e struct {
			Error struct{ Message, Type, Param string }
		}
		_ = json.Unmarshal([]byte(got), &e)
		if resp.StatusCode != 400 || e.Error.Param != param || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, msg) {
			t.Fatalf("%s\n-> %d %s, want 400 param %q", body, resp.StatusCode, got, param)
		}
		if n := len(up.Calls()); n != before {
			t.Fatalf("a refused request reached the model (%d calls)", n-before)
		}
	}
	// Stateless: the call must be in the input.
	bad(`{"model":"m","input":[{"role":"user","content":"hi"},{"type":"function_call_output","call_id":"call_nowhere","output":"x"}]}`,
		"input[1].call_id", "No tool call found")
	bad(`{"model":"m","input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{}"},`+
		`{"type":"function_call_output","call_id":"c1","output":"a"},{"type":"function_call_output","call_id":"c1","output":"b"}]}`,
		"input[3].call_id", "Duplicate")
	// An mcp_call carries its own output: another one for it is a second.
	bad(`{"model":"m","input":[{"role":"user","content":"hi"},{"type":"mcp_call","id":"mcp_x","server_label":"hermes","name":"terminal","arguments":"{}","output":"ok"},`+
		`{"type":"function_call_output","call_id":"mcp_x","output":"unsupported call: terminal"}]}`,
		"input[2].call_id", "Duplicate")
	// The stateless form that is right goes through.
	resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m",`+tools+`,"store":false,"input":[{"role":"user","content":"hi"},`+
		`{"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"sunny"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, "It is sunny.") {
		t.Fatalf("stateless round trip: %d %s", resp.StatusCode, body)
	}

	// Chained: the call is in the previous response.
	resp, body = h.do(t, "POST", "/v1/responses", `{"model":"m",`+tools+`,"input":"weather?"}`)
	var first struct {
		ID     string
		Output []struct {
			CallID string `json:"call_id"`
		}
	}
	if err := json.Unmarshal([]byte(body), &first); err != nil || resp.StatusCode != 200 || len(first.Output) != 1 {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	callID := first.Output[0].CallID
	bad(`{"model":"m",`+tools+`,"previous_response_id":"`+first.ID+`","input":[{"type":"function_call_output","call_id":"call_other","output":"x"}]}`,
		"input", "No tool call found")
	answer := `{"model":"m",` + tools + `,"previous_response_id":"` + first.ID + `","input":[{"type":"function_call_output","call_id":"` + callID + `","output":"sunny"}]}`
	resp, body = h.do(t, "POST", "/v1/responses", answer)
	var second struct{ ID string }
	if err := json.Unmarshal([]byte(body), &second); err != nil || resp.StatusCode != 200 || !strings.Contains(body, "It is sunny.") {
		t.Fatalf("answer: %d %s", resp.StatusCode, body)
	}
	// Answering it again, after the answer, is a second output. Streamed,
	// the refusal is still a plain 400 before any event.
	again := `{"model":"m",` + tools + `,"stream":true,"previous_response_id":"` + second.ID + `","input":[{"type":"function_call_output","call_id":"` + callID + `","output":"sunny"}]}`
	resp, body = h.do(t, "POST", "/v1/responses", again)
	if resp.StatusCode != 400 || !strings.Contains(body, "Duplicate") || !strings.Contains(body, `"param":"input"`) {
		t.Fatalf("second answer: %d %s", resp.StatusCode, body)
	}

	// Conversation items: an output answers a call the conversation holds
	// or the same request adds, once.
	resp, body = h.do(t, "POST", "/v1/conversations", `{"items":[{"type":"function_call_output","call_id":"c9","output":"x"}]}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `"param":"items[0].call_id"`) {
		t.Fatalf("orphan in a new conversation: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, "POST", "/v1/conversations", `{"items":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c9","name":"get_weather","arguments":"{}"}]}`)
	var conv struct{ ID string }
	if err := json.Unmarshal([]byte(body), &conv); err != nil || resp.StatusCode != 200 {
		t.Fatalf("conversation: %d %s", resp.StatusCode, body)
	}
	add := `{"items":[{"type":"function_call_output","call_id":"c9","output":"sunny"}]}`
	if resp, body = h.do(t, "POST", "/v1/conversations/"+conv.ID+"/items", add); resp.StatusCode != 200 {
		t.Fatalf("answering the conversation's call: %d %s", resp.StatusCode, body)
	}
	if resp, body = h.do(t, "POST", "/v1/conversations/"+conv.ID+"/items", add); resp.StatusCode != 400 || !strings.Contains(body, "Duplicate") {
		t.Fatalf("answering it again: %d %s", resp.StatusCode, body)
	}
	if resp, body = h.do(t, "POST", "/v1/conversations/"+conv.ID+"/items", `{"items":[{"type":"function_call_output","call_id":"c10","output":"x"}]}`); resp.StatusCode != 400 ||
		!strings.Contains(body, `"param":"items[0].call_id"`) {
		t.Fatalf("an orphan added to the conversation: %d %s", resp.StatusCode, body)
	}
}

// max_tool_calls bounds the agent's own tool runs; reasoning.effort goes
// upstream as reasoning_effort (the environment-only model is marked a
// reasoning model with HERMES_REASONING); both are echoed.
func TestResponsesMaxToolCallsAndReasoning(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		if len(call.Tools) == 0 {
			return hermestest.Reply{Text: "done without tools"}
		}
		return hermestest.Reply{ToolCalls: [][2]string{{"terminal", `{"command":"echo one"}`}, {"terminal", `{"command":"echo two"}`}}}
	})
	env := up.Env()
	env["HERMES_REASONING"] = "true"
	h := startHermes(t, env)
	resp, body := h.do(t, "POST", "/v1/responses",
		`{"model":"m","input":"go","max_tool_calls":1,"reasoning":{"effort":"high","summary":"auto"}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var r struct {
		MaxToolCalls *int `json:"max_tool_calls"`
		Reasoning    struct{ Effort, Summary string }
		Output       []struct {
			Type, Status, Name string
			Output, Error      *string
		}
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.MaxToolCalls == nil || *r.MaxToolCalls != 1 || r.Reasoning.Effort != "high" || r.Reasoning.Summary != "auto" {
		t.Fatalf("echo: %s", body)
	}
	if len(r.Output) != 3 || r.Output[0].Type != "mcp_call" || r.Output[0].Status != "completed" || r.Output[0].Output == nil ||
		!strings.Contains(*r.Output[0].Output, "one") || r.Output[1].Status != "failed" || r.Output[1].Error == nil ||
		!strings.Contains(*r.Output[1].Error, "max_tool_calls") || r.Output[2].Type != "message" {
		t.Fatalf("output: %s", body)
	}
	calls := up.Calls()
	if len(calls) != 2 || len(calls[1].Tools) != 0 || calls[0].ReasoningEffort != "high" || calls[1].ReasoningEffort != "high" {
		t.Fatalf("upstream saw %d calls, tools on the second %d, effort %q", len(calls), len(calls[len(calls)-1].Tools), calls[0].ReasoningEffort)
	}
	for _, b := range []string{`{"input":"x","max_tool_calls":0}`, `{"input":"x","reasoning":{"effort":"extreme"}}`,
		`{"input":"x","max_tool_calls":"many"}`, `{"input":"x","top_logprobs":21}`, `{"input":"x","truncation":"sometimes"}`,
		`{"input":"x","prompt_cache_key":"` + strings.Repeat("k", 65) + `"}`} {
		if resp, body := h.do(t, "POST", "/v1/responses", b); resp.StatusCode != 400 || !strings.Contains(body, `"param":"`) {
			t.Fatalf("%s -> %d %s", b, resp.StatusCode, body)
		}
	}
}

// Hosted tool types: served ones are accepted and echoed as sent; the
// others are refused by name.
func TestResponsesHostedToolTypes(t *testing.T) {
	h := startHermes(t, nil)
	tools := `[{"type":"function","name":"f","parameters":{"type":"object"},"strict":true},` +
		`{"type":"web_search","external_web_access":false},{"type":"web_search_preview"},` +
		`{"type":"namespace","name":"ns","description":"grouped","tools":[{"type":"function","name":"g","strict":false,"parameters":{"type":"object"}}]}]`
	resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m","input":"hi","tools":`+tools+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var r struct{ Tools json.RawMessage }
	_ = json.Unmarshal([]byte(body), &r)
	if !respJSONEqual(t, r.Tools, []byte(tools)) {
		t.Fatalf("tools echoed as\n%s\nsent\n%s", r.Tools, tools)
	}
	for typ, param := range map[string]string{
		`{"type":"file_search","vector_store_ids":["vs_1"]}`:                   "tools[0].type",
		`{"type":"code_interpreter","container":{"type":"auto"}}`:              "tools[0].type",
		`{"type":"computer_use_preview","display_width":1,"display_height":1}`: "tools[0].type",
		`{"type":"image_generation"}`:                                          "tools[0].type",
		`{"type":"mcp","server_label":"gh","connector_id":"connector_gmail"}`:  "tools[0].connector_id",
		`{"type":"function"}`: "tools[0].name",
		`{"type":"namespace","name":"n","tools":[{"type":"web_search"}]}`: "tools[0].tools[0].type",
	} {
		resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m","input":"hi","tools":[`+typ+`]}`)
		if resp.StatusCode != 400 || !strings.Contains(body, `"param":"`+param+`"`) {
			t.Fatalf("%s -> %d %s", typ, resp.StatusCode, body)
		}
	}
	if resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m","input":"hi","tools":[{"type":"file_search"}]}`); !strings.Contains(body, "file_search") {
		t.Fatalf("the refusal does not name the type: %d %s", resp.StatusCode, body)
	}
}

// Items hermesd returned come back in input from stateless clients (Codex
// with store: false, the Agents SDK's to_input_list()): each becomes the
// right transcript for the model, and conversation items show them in the
// shapes they were returned in.
func TestResponsesItemsComeBackAsInput(t *testing.T) {
	h := startHermes(t, nil)
	input := `[{"role":"user","content":"run things"},` +
		`{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"thinking"}],"encrypted_content":"opaque"},` +
		`{"type":"mcp_call","id":"mcp_1","server_label":"hermes","name":"terminal","arguments":"{\"command\":\"ls\"}","output":"a.txt","error":null,"status":"completed"},` +
		`{"type":"mcp_call","id":"mcp_2","server_label":"hermes","name":"read_file","arguments":"{}","output":null,"error":"no such file","status":"failed"},` +
		`{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"golang","sources":[{"type":"url","url":"https://go.dev/"}]}},` +
		`{"type":"message","id":"msg_9","role":"assistant","status":"completed","content":[{"type":"output_text","text":"all done","annotations":[]}]},` +
		`{"role":"user","content":"/echo-history"}]`
	resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m","conversation":"replay","input":`+input+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var r responses.Response
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	history := r.OutputText()
	for _, want := range []string{"user: run things", `[call terminal {"command":"ls"}]`, "tool: a.txt", `tool: {"error":"no such file"}`,
		`[call web_search {"query":"golang"}]`, "https://go.dev/", "assistant: all done", "user: /echo-history"} {
		if !strings.Contains(history, want) {
			t.Errorf("the model did not see %q:\n%s", want, history)
		}
	}
	if strings.Contains(history, "thinking") || strings.Contains(history, "opaque") {
		t.Errorf("reasoning reached the model:\n%s", history)
	}
	// The conversation's items show the agent calls as hosted items again.
	resp, body = h.do(t, "GET", "/v1/conversations/replay/items?order=asc", "")
	var list struct {
		Data []struct{ Type, Status string }
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var types []string
	for _, it := range list.Data {
		types = append(types, it.Type+"/"+it.Status)
	}
	want := "message/completed,mcp_call/completed,mcp_call/failed,web_search_call/completed,message/completed,message/completed,message/completed"
	if strings.Join(types, ",") != want {
		t.Fatalf("conversation items\n got %s\nwant %s", strings.Join(types, ","), want)
	}
}
