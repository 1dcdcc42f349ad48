package todo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// Name is the tool's name; its earlier results are found in the history by it.
const Name = "todo"

// Statuses of an item.
const (
	Pending    = "pending"
	InProgress = "in_progress"
	Completed  = "completed"
	Cancelled  = "cancelled"
)

// Limits keep the list, which is repeated in every todo result of the
// transcript, from growing the prompt without bound.
const (
	MaxItems       = 100
	MaxContentRune = 500
)

// Item is one task.
type Item struct {
	ID      string `json:"id"`
	Content string `json:"content"`
	Status  string `json:"status"`
}

// Summary counts items by status.
type Summary struct {
	Pending    int `json:"pending"`
	InProgress int `json:"in_progress"`
	Completed  int `json:"completed"`
	Cancelled  int `json:"cancelled"`
}

// Result is the JSON the tool returns and, later, recovers from the history.
type Result struct {
	Todos   []Item  `json:"todos"`
	Summary Summary `json:"summary"`
}

// Tool is the `todo` tool. It is stateless and safe for concurrent use.
type Tool struct{}

// New returns the todo tool.
func New() *Tool { return &Tool{} }

var _ tooling.Tool = (*Tool)(nil)

const description = `Keep a task list for the current conversation when a job has several steps.
Call with no todos to read the list. Pass todos to write it: by default the list is replaced by the one you pass; with merge=true, items are updated by id (only the fields you give) and new ids are appended.
Status is pending, in_progress, completed or cancelled. Mark a task in_progress when you start it and completed as soon as it is done. Several tasks may be in_progress at once when you really work on them in parallel.`

const parameters = `{"type":"object","properties":{` +
	`"todos":{"type":"array","description":"the tasks to write; omit to read the list","items":{"type":"object","properties":{` +
	`"id":{"type":"string","description":"unique id of the task"},` +
	`"content":{"type":"string","description":"what to do"},` +
	`"status":{"type":"string","enum":["pending","in_progress","completed","cancelled"]}},` +
	`"required":["id"]}},` +
	`"merge":{"type":"boolean","description":"true: update items by id and append new ones; false (default): replace the whole list"}` +
	`},"additionalProperties":false}`

// Spec describes the tool to the model.
func (t *Tool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{Name: Name, Description: description, Parameters: []byte(parameters)}
}

// Emoji is the progress marker of the tool.
func (t *Tool) Emoji() string { return "📋" }

// args are the arguments of one call. Todos is a pointer so an absent list
// (read) differs from an empty one (clear).
type args struct {
	Todos *[]Item `json:"todos"`
	Merge bool    `json:"merge"`
}

// Label says what the call does: "read tasks", "3 tasks", "update 1 task".
func (t *Tool) Label(raw []byte) string {
	var a args
	if tooling.DecodeArgs(raw, &a) != nil {
		return "tasks"
	}
	if a.Todos == nil {
		return "read tasks"
	}
	n := len(*a.Todos)
	s := fmt.Sprintf("%d tasks", n)
	if n == 1 {
		s = "1 task"
	}
	if a.Merge {
		s = "update " + s
	}
	return s
}

// Run reads or writes the list.
func (t *Tool) Run(ctx context.Context, call tooling.Call) string {
	var a args
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(hermes.AsError(err).Message)
	}
	current := Recover(call.History)
	if a.Todos == nil {
		return tooling.JSONResult(result(current))
	}
	var next []Item
	var err error
	if a.Merge {
		next, err = merge(current, *a.Todos)
	} else {
		next, err = replace(*a.Todos)
	}
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	return tooling.JSONResult(result(next))
}

func result(items []Item) Result {
	if items == nil {
		items = []Item{}
	}
	r := Result{Todos: items}
	for _, it := range items {
		switch it.Status {
		case Pending:
			r.Summary.Pending++
		case InProgress:
			r.Summary.InProgress++
		case Completed:
			r.Summary.Completed++
		case Cancelled:
			r.Summary.Cancelled++
		}
	}
	return r
}

// replace validates a whole new list. A missing status means pending.
func replace(in []Item) ([]Item, error) {
	out := make([]Item, 0, len(in))
	seen := make(map[string]bool, len(in))
	for i, it := range in {
		it = clean(it)
		if it.ID == "" {
			return nil, fmt.Errorf("todos[%d]: id is required", i)
		}
		if seen[it.ID] {
			return nil, fmt.Errorf("todos[%d]: duplicate id %q", i, it.ID)
		}
		seen[it.ID] = true
		if it.Status == "" {
			it.Status = Pending
		}
		if err := check(it); err != nil {
			return nil, fmt.Errorf("todos[%d]: %w", i, err)
		}
		out = append(out, it)
	}
	if len(out) > MaxItems {
		return nil, fmt.Errorf("too many tasks (%d): at most %d", len(out), MaxItems)
	}
	return out, nil
}

// merge updates current by id (only the fields given) and appends new ids,
// keeping the order of current then of the new items.
func merge(current, in []Item) ([]Item, error) {
	out := append([]Item(nil), current...)
	index := make(map[string]int, len(out))
	for i, it := range out {
		index[it.ID] = i
	}
	given := make(map[string]bool, len(in))
	for i, it := range in {
		it = clean(it)
		if it.ID == "" {
			return nil, fmt.Errorf("todos[%d]: id is required", i)
		}
		if given[it.ID] {
			return nil, fmt.Errorf("todos[%d]: duplicate id %q", i, it.ID)
		}
		given[it.ID] = true
		if j, ok := index[it.ID]; ok {
			if it.Content != "" {
				out[j].Content = it.Content
			}
			if it.Status != "" {
				out[j].Status = it.Status
			}
			it = out[j]
		} else {
			if it.Status == "" {
				it.Status = Pending
			}
			index[it.ID] = len(out)
			out = append(out, it)
		}
		if err := check(it); err != nil {
			return nil, fmt.Errorf("todos[%d]: %w", i, err)
		}
	}
	if len(out) > MaxItems {
		return nil, fmt.Errorf("too many tasks (%d): at most %d", len(out), MaxItems)
	}
	return out, nil
}

func clean(it Item) Item {
	it.ID = strings.TrimSpace(it.ID)
	it.Content = strings.TrimSpace(it.Content)
	it.Status = strings.TrimSpace(it.Status)
	return it
}

func check(it Item) error {
	switch it.Status {
	case Pending, InProgress, Completed, Cancelled:
	default:
		return fmt.Errorf("invalid status %q for %q: use pending, in_progress, completed or cancelled", it.Status, it.ID)
	}
	if it.Content == "" {
		return fmt.Errorf("task %q needs content", it.ID)
	}
	if utf8.RuneCountInString(it.Content) > MaxContentRune {
		return fmt.Errorf("task %q content is longer than %d characters", it.ID, MaxContentRune)
	}
	return nil
}

// Recover returns the list held by the latest successful todo result in
// history, or nil when there is none. A tool message is a todo result when
// its Name is "todo" or, for transcripts that come back from clients without
// names, when it answers an assistant call to "todo". Failed calls changed
// nothing, so error results are skipped.
func Recover(history []hermes.Message) []Item {
	var todoCalls map[string]bool // built lazily: most turns have a named result
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if m.Role != hermes.RoleTool {
			continue
		}
		if m.Name != Name {
			if m.Name != "" || m.ToolCallID == "" {
				continue
			}
			if todoCalls == nil {
				todoCalls = callsTo(history)
			}
			if !todoCalls[m.ToolCallID] {
				continue
			}
		}
		var r struct {
			Todos *[]Item `json:"todos"`
		}
		if json.Unmarshal([]byte(m.Text()), &r) != nil || r.Todos == nil {
			continue
		}
		return *r.Todos
	}
	return nil
}

// callsTo returns the ids of assistant tool calls naming the todo tool.
func callsTo(history []hermes.Message) map[string]bool {
	ids := make(map[string]bool)
	for _, m := range history {
		for _, c := range m.ToolCalls {
			if c.Name == Name {
				ids[c.ID] = true
			}
		}
	}
	return ids
}
