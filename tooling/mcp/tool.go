package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// tool is one server tool as the agent sees it.
type tool struct {
	s    *server
	name string // mcp_<server>_<tool>
	orig string // the server's own name for it
	desc string // its description, bounded
	spec hermes.ToolSpec
}

// maxDescription bounds a tool's description (in characters): it is sent with every model
// call, and a server decides what it holds.
const maxDescription = 2048

func newTool(s *server, t *mcp.Tool) *tool {
	name := ToolName(s.name, t.Name)
	desc := t.Description
	if desc == "" {
		desc = t.Title
	}
	desc = tooling.Truncate(desc, maxDescription, "…")
	return &tool{s: s, name: name, orig: t.Name, desc: desc, spec: hermes.ToolSpec{
		Name:        name,
		Description: fmt.Sprintf("[MCP server %s] %s", s.name, desc),
		Parameters:  schema(t.InputSchema),
	}}
}

// schema returns a tool's input schema as an object schema, which is what
// OpenAI-compatible upstreams accept for function parameters; a server
// sending none, or something else, gets an empty object schema.
func schema(in any) []byte {
	b, err := json.Marshal(in)
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil || m == nil {
		return []byte(`{"type":"object","properties":{}}`)
	}
	if m["type"] != "object" {
		m["type"] = "object"
	}
	if _, ok := m["properties"]; !ok {
		m["properties"] = map[string]any{}
	}
	b, _ = json.Marshal(m)
	return b
}

func (t *tool) Spec() hermes.ToolSpec { return t.spec }

func (t *tool) Emoji() string { return "🔌" }

// Label is server.tool: which server, which of its tools.
func (t *tool) Label([]byte) string { return t.s.name + "." + t.orig }

// Server is the server_label of this tool's calls.
func (t *tool) Server() string { return t.s.name }

// ServerTool is the tool's name on its server.
func (t *tool) ServerTool() string { return t.orig }

var errCallTimeout = errors.New("the MCP call's timeout passed")

// maxResult bounds the result the model reads, in bytes.
const maxResult = 100_000

// Run calls the tool on its server within the server's per-call timeout.
// A server being restarted is waited for, within the same timeout.
func (t *tool) Run(ctx context.Context, call tooling.Call) string {
	args := bytes.TrimSpace(call.Args)
	if len(args) == 0 {
		args = []byte("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(args, &obj); err != nil {
		return tooling.ErrorResult("the arguments must be a JSON object matching the tool's schema")
	}
	timeout := t.s.cfg.Timeout
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errCallTimeout)
	defer cancel()
	sess, err := t.s.current(ctx)
	if err != nil {
		return tooling.ErrorResult(fmt.Sprintf("MCP server %s is not connected (it is being restarted or retried); try again later", t.s.name))
	}
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: t.orig, Arguments: json.RawMessage(args)})
	switch {
	case err == nil:
	case context.Cause(ctx) == errCallTimeout:
		return tooling.ErrorResult(fmt.Sprintf("timed out: MCP server %s did not answer %s within %s; the call was cancelled", t.s.name, t.orig, timeout))
	case ctx.Err() != nil:
		return tooling.ErrorResult(fmt.Sprintf("the call to %s on MCP server %s was cancelled", t.orig, t.s.name))
	case lost(err):
		// Reconnect now rather than let the next call find out.
		t.s.drop(sess)
		_ = sess.Close()
		return tooling.ErrorResult(fmt.Sprintf("MCP server %s: the connection failed during the call (%s); it is being reconnected",
			t.s.name, tooling.CutBytes(err.Error(), 500)))
	default:
		return tooling.ErrorResult(fmt.Sprintf("MCP server %s: %s", t.s.name, tooling.CutBytes(err.Error(), 2000)))
	}
	text := resultText(res)
	if res.IsError {
		return tooling.ErrorResult(text)
	}
	return tooling.JSONResult(map[string]string{"result": text})
}

// lost reports whether a call's error is its connection failing (a
// crashed server, a frame past the size limit, a broken stream) rather than
// the server's answer. After such an error the SDK's connection is no
// longer usable, even where it has not closed itself.
func lost(err error) bool {
	var rpc *jsonrpc.Error
	return !errors.As(err, &rpc)
}

// resultText flattens a call's result for the model: text as is, the
// structured content as JSON when there is no text, other content noted rather than dropped
// silently (the model cannot see an image in a tool result), the whole
// bounded.
func resultText(res *mcp.CallToolResult) string {
	var parts []string
	hasText := false
	for _, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			parts = append(parts, c.Text)
			hasText = true
		case *mcp.ImageContent:
			parts = append(parts, fmt.Sprintf("[image: %s, %d bytes, not shown]", c.MIMEType, len(c.Data)))
		case *mcp.AudioContent:
			parts = append(parts, fmt.Sprintf("[audio: %s, %d bytes, not played]", c.MIMEType, len(c.Data)))
		case *mcp.ResourceLink:
			parts = append(parts, fmt.Sprintf("[resource link: %s %s]", c.URI, c.Name))
		case *mcp.EmbeddedResource:
			if r := c.Resource; r != nil && r.Text != "" {
				parts = append(parts, r.Text)
			} else if r != nil {
				parts = append(parts, fmt.Sprintf("[resource: %s, %s, %d bytes, not shown]", r.URI, r.MIMEType, len(r.Blob)))
			}
		default:
			parts = append(parts, fmt.Sprintf("[%T content, not shown]", c))
		}
	}
	// Servers with typed output send it as text too (the spec asks them
	// to, for older clients), often reshaped: the text stands for it then,
	// and the structured content is shown only when there is no text.
	if res.StructuredContent != nil && !hasText {
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			parts = append(parts, string(b))
		}
	}
	s := strings.Join(parts, "\n")
	if len(s) > maxResult {
		s = tooling.CutBytes(s, maxResult) + fmt.Sprintf("\n[truncated: the result was %d bytes; the first %d are shown]", len(s), maxResult)
	}
	return s
}
