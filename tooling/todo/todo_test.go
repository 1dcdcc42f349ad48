package todo

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

func call(t *testing.T, history []hermes.Message, args string) (Result, string) {
	t.Helper()
	raw := New().Run(context.Background(), tooling.Call{ID: "x", Args: []byte(args), History: history})
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	if e.Error != "" {
		return Result{}, e.Error
	}
	var r Result
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	if r.Todos == nil {
		t.Fatalf("todos must be an array, got %s", raw)
	}
	return r, ""
}

// turn appends an assistant call and its named result, as the agent loop does.
func turn(t *testing.T, history []hermes.Message, id, args string) []hermes.Message {
	t.Helper()
	out := New().Run(context.Background(), tooling.Call{ID: id, Args: []byte(args), History: history})
	return append(history,
		hermes.Message{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: id, Name: Name, Arguments: args}}},
		hermes.Message{Role: hermes.RoleTool, ToolCallID: id, Name: Name, Content: out},
	)
}

func TestReadEmpty(t *testing.T) {
	r, errMsg := call(t, nil, `{}`)
	if errMsg != "" || len(r.Todos) != 0 || r.Summary != (Summary{}) {
		t.Fatalf("%+v %q", r, errMsg)
	}
}

func TestReplaceAndSummary(t *testing.T) {
	r, errMsg := call(t, nil, `{"todos":[{"id":"1","content":"plan","status":"completed"},{"id":"2","content":"build","status":"in_progress"},{"id":"3","content":"test"},{"id":"4","content":"ship","status":"cancelled"}]}`)
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	if r.Todos[2].Status != Pending {
		t.Fatalf("missing status should default to pending: %+v", r.Todos[2])
	}
	if want := (Summary{Pending: 1, InProgress: 1, Completed: 1, Cancelled: 1}); r.Summary != want {
		t.Fatalf("summary %+v", r.Summary)
	}
	// Replace drops what the new list does not name; an empty list clears.
	h := turn(t, nil, "a", `{"todos":[{"id":"1","content":"a"},{"id":"2","content":"b"}]}`)
	r, _ = call(t, h, `{"todos":[{"id":"9","content":"z"}]}`)
	if len(r.Todos) != 1 || r.Todos[0].ID != "9" {
		t.Fatalf("%+v", r.Todos)
	}
	r, _ = call(t, h, `{"todos":[]}`)
	if len(r.Todos) != 0 {
		t.Fatalf("clear: %+v", r.Todos)
	}
}

func TestMerge(t *testing.T) {
	h := turn(t, nil, "a", `{"todos":[{"id":"1","content":"plan"},{"id":"2","content":"build"}]}`)
	r, errMsg := call(t, h, `{"merge":true,"todos":[{"id":"1","status":"completed"},{"id":"3","content":"test"},{"id":"2","content":"build it"}]}`)
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	want := []Item{{"1", "plan", Completed}, {"2", "build it", Pending}, {"3", "test", Pending}}
	if !reflect.DeepEqual(r.Todos, want) {
		t.Fatalf("merged %+v\nwant %+v", r.Todos, want)
	}
	if _, errMsg := call(t, h, `{"merge":true,"todos":[{"id":"new"}]}`); !strings.Contains(errMsg, "needs content") {
		t.Fatalf("new item without content: %q", errMsg)
	}
}

func TestRecoveryFromHistory(t *testing.T) {
	var h []hermes.Message
	h = append(h, hermes.Message{Role: hermes.RoleUser, Content: "do things"})
	h = turn(t, h, "a", `{"todos":[{"id":"1","content":"first"}]}`)
	h = turn(t, h, "b", `{"merge":true,"todos":[{"id":"1","status":"in_progress"},{"id":"2","content":"second"}]}`)
	// A failed call and another tool's result come later; neither counts.
	h = turn(t, h, "c", `{"todos":[{"id":"1","content":"x","status":"bogus"}]}`)
	h = append(h, hermes.Message{Role: hermes.RoleTool, ToolCallID: "d", Name: "terminal", Content: `{"todos":[]}`})

	r, errMsg := call(t, h, ``)
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	want := []Item{{"1", "first", InProgress}, {"2", "second", Pending}}
	if !reflect.DeepEqual(r.Todos, want) {
		t.Fatalf("recovered %+v\nwant %+v", r.Todos, want)
	}
}

func TestRecoveryWithoutNames(t *testing.T) {
	// Chat completion clients send tool results back with only tool_call_id.
	h := []hermes.Message{
		{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: Name}}},
		{Role: hermes.RoleTool, ToolCallID: "call_1", Content: `{"todos":[{"id":"1","content":"kept","status":"pending"}],"summary":{"pending":1}}`},
		{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_2", Name: "other"}}},
		{Role: hermes.RoleTool, ToolCallID: "call_2", Content: `{"todos":[{"id":"z","content":"not mine","status":"pending"}]}`},
	}
	got := Recover(h)
	if len(got) != 1 || got[0].Content != "kept" {
		t.Fatalf("%+v", got)
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		args, want string
	}{
		{`{"todos":[{"id":"1","content":"a","status":"done"}]}`, `invalid status "done"`},
		{`{"todos":[{"id":"1","content":"a"},{"id":"1","content":"b"}]}`, `duplicate id "1"`},
		{`{"todos":[{"content":"a"}]}`, `id is required`},
		{`{"todos":[{"id":"1"}]}`, `needs content`},
		{`{"todos":[{"id":"1","content":"` + strings.Repeat("x", MaxContentRune+1) + `"}]}`, `longer than`},
		{`{"todos":"nope"}`, `invalid tool arguments`},
		{`{"merge":true,"todos":[{"id":"1","content":"a","status":"later"}]}`, `invalid status`},
	}
	for _, tc := range tests {
		if _, errMsg := call(t, nil, tc.args); !strings.Contains(errMsg, tc.want) {
			t.Errorf("%.60s: error %q, want %q", tc.args, errMsg, tc.want)
		}
	}
	var many []Item
	for i := range MaxItems + 1 {
		many = append(many, Item{ID: strconv.Itoa(i), Content: "c"})
	}
	b, _ := json.Marshal(map[string]any{"todos": many})
	if _, errMsg := call(t, nil, string(b)); !strings.Contains(errMsg, "too many") {
		t.Fatalf("too many: %q", errMsg)
	}
}

func TestLabel(t *testing.T) {
	tests := map[string]string{
		``:                               "read tasks",
		`{"todos":[{"id":"1"}]}`:         "1 task",
		`{"todos":[{},{},{}]}`:           "3 tasks",
		`{"merge":true,"todos":[{},{}]}`: "update 2 tasks",
		`{`:                              "tasks",
	}
	for in, want := range tests {
		if got := New().Label([]byte(in)); got != want {
			t.Errorf("Label(%s) = %q, want %q", in, got, want)
		}
	}
}
