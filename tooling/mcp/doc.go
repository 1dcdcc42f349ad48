// Package mcp offers the tools of MCP (Model Context Protocol) servers to
// the agent, through the official Go SDK: stdio servers hermesd starts
// itself and remote ones over streamable HTTP (falling back to the older
// HTTP+SSE transport). A Manager connects to every configured server in
// parallel, keeps each one's tool list current (notifications/tools/
// list_changed), reconnects with backoff when a server fails or crashes,
// and hands out tooling.Tool values named mcp_<server>_<tool> that run
// through the same registry and runner as the built-in tools.
//
// It may import the root package, tooling, the standard library and the
// MCP SDK; never config: cmd converts the configuration into Options.
package mcp
