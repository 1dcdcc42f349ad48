// Command mcpserver is the MCP server hermesd's tests run: over stdio by
// default, over streamable HTTP with -http (it prints "listening URL" on
// stdout), or the older HTTP+SSE transport with -sse. Its tools sleep,
// fail, crash, answer hugely and change the tool list, so the client's
// handling of each can be driven from a test.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	httpAddr := flag.String("http", "", "serve streamable HTTP on this address")
	sse := flag.Bool("sse", false, "with -http: serve the older HTTP+SSE transport only")
	hang := flag.Bool("hang", false, "never answer initialize")
	extra := flag.String("extra-tool", "", "also offer a tool with this name")
	failUnless := flag.String("fail-unless", "", "exit 1 at start unless this file exists")
	wantHeader := flag.String("want-header", "", "with -http: answer 401 unless this NAME=VALUE header is sent")
	many := flag.Int("many", 0, "also offer this many tools, each with a 4 KiB description")
	flag.Parse()

	if *failUnless != "" {
		if _, err := os.Stat(*failUnless); err != nil {
			fmt.Fprintln(os.Stderr, "not ready:", err)
			os.Exit(1)
		}
	}
	if *hang {
		if *httpAddr != "" {
			ln, err := net.Listen("tcp", *httpAddr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println("listening http://" + ln.Addr().String() + "/mcp")
			// Accept and hold every connection without a word.
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}
		select {} // reads nothing, answers nothing
	}

	newServer := func() *mcp.Server {
		srv := build(*extra)
		for i := range *many {
			srv.AddTool(&mcp.Tool{Name: fmt.Sprintf("t%04d", i), Description: strings.Repeat("d", 4096),
				InputSchema: json.RawMessage(`{"type":"object","properties":{}}`)},
				func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return &mcp.CallToolResult{}, nil
				})
		}
		return srv
	}
	if *httpAddr == "" {
		if err := newServer().Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	srv := newServer()
	var h http.Handler
	if *sse {
		h = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	} else {
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	}
	if *wantHeader != "" {
		name, value, _ := strings.Cut(*wantHeader, "=")
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(name) != value {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening http://" + ln.Addr().String() + "/mcp")
	_ = http.Serve(ln, h)
}

func build(extra string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "hermes-test", Version: "1"}, nil)
	add := func(name, desc, schema string, h mcp.ToolHandler) {
		s.AddTool(&mcp.Tool{Name: name, Description: desc, InputSchema: json.RawMessage(schema)}, h)
	}
	args := func(req *mcp.CallToolRequest) map[string]any {
		var m map[string]any
		_ = json.Unmarshal(req.Params.Arguments, &m)
		return m
	}
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	obj := `{"type":"object","properties":{}}`
	add("echo", "Echoes text back.", `{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`,
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return text("echo: " + fmt.Sprint(args(req)["text"])), nil
		})
	add("sleep", "Sleeps for ms milliseconds.", `{"type":"object","properties":{"ms":{"type":"number"}}}`,
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			ms, _ := args(req)["ms"].(float64)
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return text("slept"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	add("fail", "Always fails.", obj, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "the widget is broken"}}}, nil
	})
	add("crash", "Exits the server process.", obj, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		os.Exit(3)
		return nil, nil
	})
	add("huge", "Answers with n bytes of text.", `{"type":"object","properties":{"n":{"type":"number"}}}`,
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n, _ := args(req)["n"].(float64)
			return text(strings.Repeat("x", int(n))), nil
		})
	add("structured", "Answers with structured content only.", obj,
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{}, StructuredContent: map[string]any{"answer": 42}}, nil
		})
	add("mixed", "Answers with text, an image and structured content.", obj,
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{
				Content: []mcp.Content{
					&mcp.TextContent{Text: "a chart follows"},
					&mcp.ImageContent{MIMEType: "image/png", Data: []byte("\x89PNG fake")},
				},
				StructuredContent: map[string]any{"answer": 42},
			}, nil
		})
	add("env", "Answers with an environment variable and the working directory.", `{"type":"object","properties":{"name":{"type":"string"}}}`,
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			name, _ := args(req)["name"].(string)
			wd, _ := os.Getwd()
			v, ok := os.LookupEnv(name)
			return text(fmt.Sprintf("%s=%q set=%v cwd=%s", name, v, ok, wd)), nil
		})
	add("header", "Answers with an HTTP request header (over HTTP).", `{"type":"object","properties":{"name":{"type":"string"}}}`,
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			name, _ := args(req)["name"].(string)
			v := ""
			if req.Extra != nil && req.Extra.Header != nil {
				v = req.Extra.Header.Get(name)
			}
			return text(name + ": " + v), nil
		})
	add("add_tool", "Adds a tool with the given name (the tool list changes).", `{"type":"object","properties":{"name":{"type":"string"}}}`,
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			name, _ := args(req)["name"].(string)
			s.AddTool(&mcp.Tool{Name: name, Description: "Added at run time.", InputSchema: json.RawMessage(obj)},
				func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return text("hello from " + name), nil
				})
			return text("added " + name), nil
		})
	if extra != "" {
		add(extra, "An extra tool.", obj, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return text("extra " + extra), nil
		})
	}
	return s
}
