package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadPrecedence(t *testing.T) {
	home := t.TempDir()
	dot := "# comment\nexport API_SERVER_PORT=9000\nAPI_SERVER_KEY='from-dotenv'\nHERMES_MAX_ITERATIONS=7 # seven\nAPI_SERVER_CORS_ORIGINS=http://a, http://b\n"
	if err := os.WriteFile(filepath.Join(home, ".env"), []byte(dot), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--host", "::1"}, env(map[string]string{
		"HERMES_HOME":               home,
		"API_SERVER_KEY":            "from-environment",
		"API_SERVER_SHUTDOWN_GRACE": "5",
		"HERMES_WORKSPACE":          home,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != "9000" || c.Key != "from-environment" || c.MaxIterations != 7 || c.Host != "::1" {
		t.Fatalf("got port=%s key=%s iter=%d host=%s", c.Port, c.Key, c.MaxIterations, c.Host)
	}
	if c.ShutdownGrace != 5*time.Second || len(c.CORSOrigins) != 2 || c.CORSOrigins[1] != "http://b" {
		t.Fatalf("grace=%v cors=%q", c.ShutdownGrace, c.CORSOrigins)
	}
	if c.DBPath() != filepath.Join(home, "api_server.db") {
		t.Fatal(c.DBPath())
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	for _, kv := range [][2]string{
		{"HERMES_MAX_ITERATIONS", "many"},
		{"HERMES_MAX_PARALLEL_TOOLS", "0"},
		{"HERMES_MAX_PARALLEL_TOOLS", "-8"},
		{"HERMES_MAX_PARALLEL_TOOLS", "8x"},
		{"HERMES_MAX_PARALLEL_TOOLS", "99999999999999999999"},
		{"HERMES_FILES_ALLOW_HARDLINKS", "yes please"},
		{"HERMES_WEB_ALLOW_PRIVATE", "2"},
		{"API_SERVER_MAX_CONVERSATIONS", "0"},
		{"API_SERVER_MAX_CONVERSATIONS", "-1"},
		{"API_SERVER_MAX_PENDING_BYTES", "10"},
		{"API_SERVER_MAX_PENDING_BYTES", "1MB"},
		{"API_SERVER_IDEMPOTENCY_MAX_ENTRIES", "0"},
		{"API_SERVER_IDEMPOTENCY_MAX_BYTES", "99999999999999999999"},
	} {
		_, err := Load(nil, env(map[string]string{"HERMES_HOME": t.TempDir(), kv[0]: kv[1]}))
		if err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Fatalf("%s=%s: err = %v", kv[0], kv[1], err)
		}
	}
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": t.TempDir(), "HERMES_WORKSPACE": t.TempDir()}))
	if err != nil || c.MaxParallel != 8 {
		t.Fatalf("default HERMES_MAX_PARALLEL_TOOLS = %d, %v; want 8", c.MaxParallel, err)
	}
	if c.FilesHardlinks {
		t.Fatal("HERMES_FILES_ALLOW_HARDLINKS is on by default")
	}
	c, err = Load(nil, env(map[string]string{"HERMES_HOME": t.TempDir(), "HERMES_FILES_ALLOW_HARDLINKS": "true"}))
	if err != nil || !c.FilesHardlinks {
		t.Fatalf("HERMES_FILES_ALLOW_HARDLINKS=true: %v, %v", c.FilesHardlinks, err)
	}
}

func TestValidate(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())

	ws := t.TempDir()
	cases := []struct {
		name, host, port, key, want string
	}{
		{"loopback without key", "127.0.0.1", "0", "", "API_SERVER_PORT"},
		{"port not a number", "127.0.0.1", "http", "", "1 to 65535"},
		{"port too big", "127.0.0.1", "70000", "", "1 to 65535"},
		{"public without key", "0.0.0.0", "18642", "", "without API_SERVER_KEY"},
		{"public short key", "0.0.0.0", "18642", "short", "shorter than 8"},
		{"port in use", "127.0.0.1", busyPort, "", "cannot listen"},
		{"ok", "localhost", freePort(t), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			c.Host, c.Port, c.Key, c.Workspace = tc.host, tc.port, tc.key, ws
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("reason is not one line: %q", err)
			}
		})
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func TestAgentToolItemsSetting(t *testing.T) {
	home := t.TempDir()
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}))
	if err != nil || c.AgentToolItems != "hosted" {
		t.Fatalf("default: %q, %v", c.AgentToolItems, err)
	}
	c, err = Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home, "API_SERVER_AGENT_TOOL_ITEMS": "function_call"}))
	if err != nil || c.AgentToolItems != "function_call" {
		t.Fatalf("function_call: %q, %v", c.AgentToolItems, err)
	}
	d := Defaults()
	d.Workspace, d.Port = home, freePort(t)
	for _, bad := range []string{"mcp_call", "Hosted", "function_call\n"} {
		d.AgentToolItems = bad
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "API_SERVER_AGENT_TOOL_ITEMS") {
			t.Fatalf("%q: err = %v", bad, err)
		}
	}
}
