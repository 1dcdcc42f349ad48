package hermestest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The test MCP server (tooling/mcp/testdata/mcpserver) is built once per
// test binary: tooling/mcp's tests and cmd/hermesd's both run it.
var (
	mcpOnce sync.Once
	mcpBin  string
	mcpErr  error
)

// MCPServer builds the test MCP server once and returns its path. A
// package that calls it removes the build from its TestMain with
// RemoveMCPServer.
func MCPServer(t testing.TB) string {
	t.Helper()
	mcpOnce.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(here), "..", "..", "tooling", "mcp", "testdata", "mcpserver")
		dir, err := os.MkdirTemp("", "hermes-mcpserver")
		if err != nil {
			mcpErr = err
			return
		}
		mcpBin = filepath.Join(dir, "mcpserver")
		cmd := exec.Command("go", "build", "-o", mcpBin, ".")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			mcpErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if mcpErr != nil {
		t.Fatal(mcpErr)
	}
	return mcpBin
}

// RemoveMCPServer deletes what MCPServer built, if anything.
func RemoveMCPServer() {
	if mcpBin != "" {
		os.RemoveAll(filepath.Dir(mcpBin))
	}
}

// StartMCPHTTP runs the test MCP server over HTTP on loopback with args
// and returns its URL; the server is killed when the test ends.
func StartMCPHTTP(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(MCPServer(t), append([]string{"-http", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "listening "))
}
