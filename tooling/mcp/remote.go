package mcp

import (
	"context"
	"log/slog"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// Remote is a request's MCP server (the Responses API's mcp tool),
// connected for one turn: its tools, as the request allows them, and the
// list a client is shown.
type Remote struct {
	s     *server
	close func()
	tools []tooling.Tool
	list  hermes.MCPList
}

// RemoteOptions says how to reach a request's server.
type RemoteOptions struct {
	Label  string
	Server Server // URL, Headers, timeouts, Dial, NoRedirects
	// Allowed names the tools offered (nil: all of them).
	Allowed []string
	Logger  *slog.Logger
}

const (
	// maxRemoteTools and maxRemoteList bound what one request's server
	// adds to a turn: every tool goes to the model in each call, and the
	// list is stored with the response.
	maxRemoteTools = 128
	maxRemoteList  = 1 << 20
	// remoteConnectTimeout is a request server's default connect timeout:
	// the client waits for it before its first byte.
	remoteConnectTimeout = 10 * time.Second
)

// Dial connects to a request's server, initializes and lists its tools.
// Nothing reconnects it: a connection that fails fails the calls after it.
func Dial(ctx context.Context, o RemoteOptions) (*Remote, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := check(o.Label, o.Server); err != nil {
		return nil, err
	}
	if o.Server.Timeout <= 0 {
		o.Server.Timeout = defaultTimeout
	}
	if o.Server.ConnectTimeout <= 0 {
		o.Server.ConnectTimeout = remoteConnectTimeout
	}
	m := &Manager{opts: Options{Logger: o.Logger}}
	s := &server{m: m, name: o.Label, cfg: o.Server, ready: make(chan struct{}), oneShot: true}
	c, _, stop, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	r := &Remote{s: s, close: func() { stop(); _ = c.Close() }, list: hermes.MCPList{Server: o.Label}}
	var allowed map[string]bool
	if o.Allowed != nil {
		allowed = make(map[string]bool, len(o.Allowed))
		for _, n := range o.Allowed {
			allowed[n] = true
		}
	}
	size := 0
	for _, t := range s.listed() {
		if allowed != nil && !allowed[t.orig] {
			continue
		}
		size += len(t.orig) + len(t.desc) + len(t.spec.Parameters)
		if len(r.tools) == maxRemoteTools || size > maxRemoteList {
			o.Logger.Warn("a request's MCP server lists more tools than a turn takes; the rest are left out",
				"server_label", o.Label, "kept", len(r.tools))
			break
		}
		r.tools = append(r.tools, t)
		r.list.Tools = append(r.list.Tools, hermes.MCPTool{Name: t.orig, Description: t.desc, InputSchema: t.spec.Parameters})
	}
	return r, nil
}

// Tools are the server's tools the request allows, named
// mcp_<label>_<tool> for the model.
func (r *Remote) Tools() []tooling.Tool { return r.tools }

// List is the server's tool list as the client is shown it.
func (r *Remote) List() hermes.MCPList { return r.list }

// Close ends the connection.
func (r *Remote) Close() { r.close() }
