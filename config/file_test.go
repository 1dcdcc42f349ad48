package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// withFile loads a config whose $HERMES_HOME/config.yaml is yaml, with the
// environment vars (HERMES_HOME and HERMES_WORKSPACE added).
func withFile(t *testing.T, yaml string, vars map[string]string) (*Config, error) {
	t.Helper()
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}
	for k, v := range vars {
		m[k] = v
	}
	return Load(nil, env(m))
}

const twoModels = `
server:
  port: 9100
  key: ${HERMES_TEST_KEY}
  cors_origins: [http://a, http://b]
  streaming: false
agent:
  max_iterations: 12
  turn_timeout: 90s
tools:
  disabled: [terminal]
default_model: smart
models:
  - id: fast
    base_url: http://127.0.0.1:1/v1
    api_key: ${FAST_KEY:-none}
    model: small-upstream
    context_window: 32000
    fallbacks: [smart]
  - id: smart
    base_url: https://example.invalid/v1
    api_key: "${SMART_KEY}"
    reasoning: true
    vision: true
    tools: false
mcp_servers:
  files:
    command: mcp-files
    args: ["--root", "${HOME_DIR:-/srv}"]
    env: {FILES_TOKEN: "${FILES_TOKEN:-t0ken}"}
    timeout: 5s
  remote:
    url: https://mcp.example.invalid/mcp
    headers:
      Authorization: Bearer ${MCP_TOKEN}
    connect_timeout: 3
`

func TestFileSettingsModelsAndMCP(t *testing.T) {
	c, err := withFile(t, twoModels, map[string]string{"HERMES_TEST_KEY": "k-from-env", "SMART_KEY": "sk-smart", "MCP_TOKEN": "mt"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != "9100" || c.Key != "k-from-env" || c.MaxIterations != 12 || c.TurnTimeout != 90*time.Second || c.Streaming {
		t.Fatalf("port=%s key=%s iter=%d timeout=%v streaming=%v", c.Port, c.Key, c.MaxIterations, c.TurnTimeout, c.Streaming)
	}
	if strings.Join(c.CORSOrigins, " ") != "http://a http://b" || strings.Join(c.DisabledTools, ",") != "terminal" {
		t.Fatalf("cors=%q disabled=%q", c.CORSOrigins, c.DisabledTools)
	}
	if c.DefaultModel != "smart" || len(c.Models) != 2 {
		t.Fatalf("default=%s models=%+v", c.DefaultModel, c.Models)
	}
	fast, smart := c.Models[0], c.Models[1]
	if fast.ID != "fast" || fast.Upstream != "small-upstream" || fast.APIKey != "none" || fast.ContextWindow != 32000 ||
		!fast.Tools || fast.Vision || len(fast.Fallbacks) != 1 || fast.Fallbacks[0] != "smart" {
		t.Fatalf("fast = %+v", fast)
	}
	if smart.Upstream != "smart" || smart.APIKey != "sk-smart" || !smart.Reasoning || !smart.Vision || smart.Tools {
		t.Fatalf("smart = %+v", smart)
	}
	files, remote := c.MCPServers["files"], c.MCPServers["remote"]
	if files.Command != "mcp-files" || strings.Join(files.Args, " ") != "--root /srv" || files.Env["FILES_TOKEN"] != "t0ken" ||
		files.Timeout != 5*time.Second || files.ConnectTimeout != 30*time.Second {
		t.Fatalf("files = %+v", files)
	}
	if remote.URL != "https://mcp.example.invalid/mcp" || remote.Headers["Authorization"] != "Bearer mt" ||
		remote.Timeout != 120*time.Second || remote.ConnectTimeout != 3*time.Second {
		t.Fatalf("remote = %+v", remote)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestFilePrecedence: flags over the environment over .env over the file
// over defaults, each origin reported by check-config.
func TestFilePrecedence(t *testing.T) {
	home := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(home, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("config.yaml", "server:\n  host: 127.0.0.2\n  port: 9001\n  key: file-key-123\n  max_queued_turns: 3\nagent:\n  max_iterations: 5\n")
	write(".env", "API_SERVER_PORT=9002\nAPI_SERVER_KEY=dotenv-key\nHERMES_MAX_ITERATIONS=6\n")
	c, err := Load([]string{"--host", "127.0.0.3"}, env(map[string]string{
		"HERMES_HOME": home, "HERMES_WORKSPACE": home, "API_SERVER_KEY": "env-key-1234",
		"HERMES_MAX_ITERATIONS": "", // set but empty: hides .env and the file, so the default
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "127.0.0.3" || c.Port != "9002" || c.Key != "env-key-1234" || c.MaxQueued != 3 || c.MaxIterations != 90 || c.MaxTurns != 256 {
		t.Fatalf("host=%s port=%s key=%s queued=%d iter=%d turns=%d", c.Host, c.Port, c.Key, c.MaxQueued, c.MaxIterations, c.MaxTurns)
	}
	var b strings.Builder
	c.Describe(&b)
	out := b.String()
	for _, re := range []string{
		`server\.host +API_SERVER_HOST +127\.0\.0\.3 +flag\n`,
		`server\.port +API_SERVER_PORT +9002 +\.env\n`,
		`server\.key +API_SERVER_KEY +\*\*\*\* +env\n`,
		`server\.max_queued_turns +API_SERVER_MAX_QUEUED_TURNS +3 +file:5\n`,
		`agent\.max_iterations +HERMES_MAX_ITERATIONS +90 +default\n`,
		`home +HERMES_HOME +` + regexp.QuoteMeta(home) + ` +env\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("check-config output lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "env-key-1234") || strings.Contains(out, "file-key") {
		t.Fatalf("a secret shows:\n%s", out)
	}
}

func TestFileDescribeMasksSecrets(t *testing.T) {
	c, err := withFile(t, twoModels, map[string]string{"HERMES_TEST_KEY": "k-from-env", "SMART_KEY": "sk-smart", "MCP_TOKEN": "mcp-secret",
		"OPENAI_BASE_URL": "http://user:hunter2@127.0.0.1:9/v1"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	c.Describe(&b)
	out := b.String()
	for _, secret := range []string{"k-from-env", "sk-smart", "mcp-secret", "t0ken", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q shows:\n%s", secret, out)
		}
	}
	for _, want := range []string{"id: fast", "model: small-upstream", "fallbacks: [smart]", "default_model: smart",
		"Authorization: ****", "FILES_TOKEN: ****", "command: mcp-files", "user:xxxxx@127.0.0.1:9", "server.streaming"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestFileRefusals: every way config.yaml can be wrong is refused at load
// or Check with the file, the line and the reason.
func TestFileRefusals(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"syntax", "server:\n  port: [1, 2\n", "config.yaml: [2:"},
		{"unknown group", "sever:\n  port: 1\n", "config.yaml:2: unknown key sever.port"},
		{"unknown key", "server:\n  prot: 1\n", "config.yaml:2: unknown key server.prot"},
		{"group not a mapping", "server: 8080\n", "config.yaml:1: server: want a mapping"},
		{"file not a mapping", "- a\n- b\n", "config.yaml:1: the file: want a mapping"},
		{"mapping as value", "server:\n  port:\n    a: 1\n", "config.yaml:3: server.port: want a single value, got a mapping"},
		{"list as single value", "server:\n  port: [1, 2]\n", "config.yaml:2: server.port: \"1,2\": want a single value, not a list"},
		{"bad integer", "agent:\n  max_iterations: ten\n", "config.yaml:2: agent.max_iterations: \"ten\": want an integer ≥ 1"},
		{"integer too small", "server:\n  max_concurrent_turns: 0\n", "config.yaml:2: server.max_concurrent_turns: \"0\": want an integer ≥ 1"},
		{"bad duration", "agent:\n  turn_timeout: soon\n", "config.yaml:2: agent.turn_timeout: \"soon\": want a duration"},
		{"bad bool", "server:\n  streaming: maybe\n", "config.yaml:2: server.streaming: \"maybe\": want true or false"},
		{"duplicate key", "server:\n  port: 1\n  port: 2\n", "config.yaml:"},
		{"unset variable", "server:\n  key: ${NOT_SET_ANYWHERE}\n", "config.yaml:2: server.key: ${NOT_SET_ANYWHERE} is not set"},
		{"unterminated variable", "server:\n  key: ${OOPS\n", "config.yaml:2: server.key: unterminated ${"},
		{"bad variable name", "server:\n  key: ${1X}\n", "config.yaml:2: server.key: ${1X}: not a variable name"},
		{"alias", "a: &x\n  port: 1\nserver: *x\n", "unknown key a.port"},
		{"merge key", "server:\n  <<: {port: 1}\n", "config.yaml:2: server: merge keys"},
		{"two documents", "server:\n  port: 1\n---\nserver:\n  port: 2\n", "one YAML document expected"},
		{"models not a list", "models:\n  id: a\n", "config.yaml:2: models: want a list"},
		{"model without id", "models:\n  - base_url: http://127.0.0.1:1/v1\n", "config.yaml:2: models[0]: id is required"},
		{"model bad id", "models:\n  - id: has space\n    base_url: http://127.0.0.1:1/v1\n", "models[0]: id \"has space\": want letters"},
		{"model duplicate id", "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n", "config.yaml:4: models[1]: id \"a\" given twice"},
		{"model without url", "models:\n  - id: a\n", "config.yaml:2: models[0] (a): base_url \"\": required"},
		{"model bad url", "models:\n  - id: a\n    base_url: ftp://x/\n", "base_url \"ftp://x/\": want an http:// or https:// URL"},
		{"model unknown key", "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    temprature: 1\n", "config.yaml:4: unknown key models[0].temprature"},
		{"model bad window", "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    context_window: 100\n", "config.yaml:4: models[0].context_window: \"100\": want 0"},
		{"model bad flag", "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    vision: sometimes\n", "config.yaml:4: models[0].vision: \"sometimes\": want true or false"},
		{"fallback unknown", "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    fallbacks: [b]\n", "config.yaml:2: models: a falls back to \"b\", which is not a model here"},
		{"fallback itself", "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    fallbacks: [a]\n", "config.yaml:2: models: a lists itself as a fallback"},
		{"fallbacks not a list", "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    fallbacks: {b: 1}\n", "config.yaml:4: models[0].fallbacks: want a list"},
		{"default model unknown", "default_model: c\nmodels:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n", "config.yaml:1: default_model \"c\" is not one of models"},
		{"mcp neither", "mcp_servers:\n  x:\n    args: [a]\n", "config.yaml:2: mcp_servers.x: give exactly one of command"},
		{"mcp both", "mcp_servers:\n  x:\n    command: a\n    url: http://127.0.0.1:1/\n", "config.yaml:2: mcp_servers.x: give exactly one of command"},
		{"mcp bad name", "mcp_servers:\n  \"a b\":\n    command: a\n", "config.yaml:2: mcp_servers.a b: a server name is"},
		{"mcp bad url", "mcp_servers:\n  x:\n    url: file:///etc/passwd\n", "mcp_servers.x: url \"file:///etc/passwd\": want an http"},
		{"mcp unknown key", "mcp_servers:\n  x:\n    command: a\n    enviroment: {}\n", "config.yaml:4: unknown key mcp_servers.x.enviroment"},
		{"mcp headers on command", "mcp_servers:\n  x:\n    command: a\n    headers: {A: b}\n", "headers are for url servers"},
		{"mcp env on url", "mcp_servers:\n  x:\n    url: http://127.0.0.1:1/\n    env: {A: b}\n", "args, env and cwd are for command servers"},
		{"mcp bad env name", "mcp_servers:\n  x:\n    command: a\n    env: {\"A-B\": c}\n", "mcp_servers.x.env: \"A-B\" is not a variable name"},
		{"mcp bad timeout", "mcp_servers:\n  x:\n    command: a\n    timeout: 0s\n", "config.yaml:4: mcp_servers.x.timeout: \"0s\": want a duration above zero"},
		{"nesting bomb", "server:\n  port: " + strings.Repeat("[", 100_000) + "\n", "config.yaml:2: more than 64 nested [ or {"},
		{"huge file", "# " + strings.Repeat("x", 2<<20) + "\n", "a config file is at most 1048576"},
		{"mcp args not a list", "mcp_servers:\n  x:\n    command: a\n    args: -v\n", "config.yaml:4: mcp_servers.x.args: want a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := withFile(t, tc.yaml, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// Values only Check refuses name the line too.
	for _, tc := range []struct{ name, yaml, want string }{
		{"port", "server:\n  port: 70000\n", "config.yaml:2: server.port: \"70000\": want a number from 1 to 65535"},
		{"progress", "server:\n  tool_progress: loud\n", "config.yaml:2: server.tool_progress: \"loud\": want inline, events, off"},
		{"unknown model", "server:\n  unknown_model: guess\n", "config.yaml:2: server.unknown_model: \"guess\": want default, error"},
		{"log level", "log:\n  level: chatty\n", "config.yaml:2: log.level: \"chatty\": want debug"},
		{"compact", "agent:\n  compact_at: 99%\n", "config.yaml:2: agent.compact_at: \"99%\""},
		{"window", "upstream:\n  context_window: 5\n", "config.yaml:2: upstream.context_window: \"5\""},
		{"workspace", "agent:\n  workspace: /nonexistent/x\n", "config.yaml:2: agent.workspace: \"/nonexistent/x\": not a directory"},
		{"terminal env", "terminal:\n  env: [OK, \"NOT-OK\"]\n", "config.yaml:2: terminal.env: \"NOT-OK\": not a variable name"},
	} {
		t.Run("check "+tc.name, func(t *testing.T) {
			home := t.TempDir()
			if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(nil, env(map[string]string{"HERMES_HOME": home}))
			if err == nil {
				err = c.Check()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFileFlagAndMissing(t *testing.T) {
	home := t.TempDir()
	other := filepath.Join(t.TempDir(), "hermes.yaml")
	if err := os.WriteFile(other, []byte("server:\n  port: 9333\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", other}, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}))
	if err != nil || c.Port != "9333" || c.File != other {
		t.Fatalf("--config: port=%v file=%v err=%v", c.Port, c.File, err)
	}
	// The default file is optional; a named one is not.
	c, err = Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}))
	if err != nil || c.File != "" || c.Port != "8642" {
		t.Fatalf("no file: %+v %v", c, err)
	}
	if _, err := Load([]string{"--config", filepath.Join(home, "absent.yaml")}, env(map[string]string{"HERMES_HOME": home})); err == nil {
		t.Fatal("a missing --config file was accepted")
	}
	// An empty file sets nothing.
	c, err = withFile(t, "# nothing yet\n", nil)
	if err != nil || c.Port != "8642" {
		t.Fatalf("empty file: %v", err)
	}
}

// TestEnvOnlyModel: without models: in a file, the environment's upstream
// is the one model, named API_SERVER_MODEL_NAME.
func TestEnvOnlyModel(t *testing.T) {
	home := t.TempDir()
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home,
		"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk", "HERMES_MODEL": "up", "API_SERVER_MODEL_NAME": "mine", "HERMES_CONTEXT_WINDOW": "4096"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Models) != 1 || c.DefaultModel != "mine" {
		t.Fatalf("models = %+v default %s", c.Models, c.DefaultModel)
	}
	if m := c.Models[0]; m.ID != "mine" || m.BaseURL != "http://127.0.0.1:9/v1" || m.APIKey != "sk" || m.Upstream != "up" || m.ContextWindow != 4096 || !m.Tools {
		t.Fatalf("model = %+v", m)
	}
}

func TestInterpolate(t *testing.T) {
	look := env(map[string]string{"A": "x", "EMPTY": ""})
	for in, want := range map[string]string{
		"plain":          "plain",
		"${A}":           "x",
		"pre-${A}-post":  "pre-x-post",
		"${B:-dflt}":     "dflt",
		"${EMPTY:-dflt}": "dflt",
		"${EMPTY}":       "",
		"${B:-}":         "",
		"$$":             "$",
		"$${A}":          "${A}",
		"cost $5":        "cost $5",
		"${A}${A}":       "xx",
		"${B:-a:-b}":     "a:-b",
		"${A:-${B}":      "x",
	} {
		got, err := interpolate(in, look)
		if err != nil || got != want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"${B}", "${", "${A", "${}", "${A B}"} {
		if got, err := interpolate(bad, look); err == nil {
			t.Errorf("interpolate(%q) = %q, want an error", bad, got)
		}
	}
	// A value with YAML syntax in it stays a value: interpolation is after parsing.
	c, err := withFile(t, "server:\n  key: ${INJECT}\n", map[string]string{"INJECT": "a\nport: 1"})
	if err != nil || c.Key != "a\nport: 1" || c.Port != "8642" {
		t.Fatalf("key=%q port=%s err=%v", c.Key, c.Port, err)
	}
	// .env feeds the file's variables when the environment lacks them.
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, ".env"), []byte("FROM_DOTENV=dk-123456\n"), 0o600)
	os.WriteFile(filepath.Join(home, "config.yaml"), []byte("server:\n  key: ${FROM_DOTENV}\n"), 0o600)
	c, err = Load(nil, env(map[string]string{"HERMES_HOME": home}))
	if err != nil || c.Key != "dk-123456" {
		t.Fatalf(".env interpolation: %v %v", c, err)
	}
}

// TestEveryVariableHasAKey: each setting Load reads from the environment
// can be written in config.yaml.
func TestEveryVariableHasAKey(t *testing.T) {
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": t.TempDir()}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.settings) < 50 {
		t.Fatalf("only %d settings recorded", len(c.settings))
	}
	keys := map[string]bool{}
	for _, s := range c.settings {
		key, ok := fileKeys[s.env]
		if !ok {
			t.Errorf("%s has no config.yaml key in fileKeys", s.env)
		}
		if keys[key] {
			t.Errorf("key %s used twice", key)
		}
		keys[key] = true
	}
	if len(keys) != len(fileKeys) {
		t.Errorf("fileKeys has %d keys, Load reads %d settings", len(fileKeys), len(keys))
	}
}

func TestFileModelVisionAndReasoningFlags(t *testing.T) {
	c, err := withFile(t, "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    vision: false\n    send_reasoning: true\n"+
		"  - id: b\n    base_url: http://127.0.0.1:1/v1\n  - id: c\n    base_url: http://127.0.0.1:1/v1\n    vision: true\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b, cc := c.Models[0], c.Models[1], c.Models[2]
	// Only an explicit vision: false refuses images; no mark forwards them.
	if !a.NoVision || !a.SendReasoning || b.NoVision || b.SendReasoning || cc.NoVision || !cc.Vision {
		t.Errorf("a=%+v b=%+v c=%+v", a, b, cc)
	}
	if _, err := withFile(t, "models:\n  - id: a\n    base_url: http://127.0.0.1:1/v1\n    send_reasoning: maybe\n", nil); err == nil ||
		!strings.Contains(err.Error(), "send_reasoning") {
		t.Errorf("send_reasoning: maybe: %v", err)
	}
}

// TestNestingGuardSparesRealFiles: brackets in comments and quoted
// strings do not count toward the nesting bound.
func TestNestingGuardSparesRealFiles(t *testing.T) {
	many := strings.Repeat("[{", 100)
	c, err := withFile(t, "# "+many+"\nserver:\n  key: \""+many+"\" # "+many+"\n  cors_origins: ['"+many+"', \"b\"]\n", nil)
	if err != nil || c.Key != many || len(c.CORSOrigins) != 2 {
		t.Fatalf("err=%v key=%q cors=%q", err, c.Key, c.CORSOrigins)
	}
}

// TestFileDescribeModelFlags: check-config shows every per-model flag, and
// tells a model marked vision: false (images refused) from one with no
// mark (images forwarded); the environment-only model shows
// HERMES_REASONING.
func TestFileDescribeModelFlags(t *testing.T) {
	c, err := withFile(t, `
models:
  - id: thinker
    base_url: http://127.0.0.1:1/v1
    reasoning: true
    send_reasoning: true
  - id: eyes
    base_url: http://127.0.0.1:1/v1
    vision: true
    fetch_images: true
  - id: blind
    base_url: http://127.0.0.1:1/v1
    vision: false
  - id: plain
    base_url: http://127.0.0.1:1/v1
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	c.Describe(&b)
	blocks := map[string]string{}
	for _, blk := range strings.Split(b.String(), "  - id: ")[1:] {
		id, _, _ := strings.Cut(blk, "\n")
		blocks[id] = blk
	}
	for id, want := range map[string][]string{
		"thinker": {"reasoning: true\n", "send_reasoning: true\n", "fetch_images: false\n", "vision: unmarked"},
		"eyes":    {"vision: true\n", "fetch_images: true\n", "send_reasoning: false\n", "reasoning: false\n"},
		"blind":   {"vision: false # images refused"},
		"plain":   {"vision: unmarked # images forwarded", "reasoning: false\n", "send_reasoning: false\n", "fetch_images: false\n"},
	} {
		for _, w := range want {
			if !strings.Contains(blocks[id], w) {
				t.Errorf("model %s lacks %q:\n%s", id, w, blocks[id])
			}
		}
	}

	c, err = Load(nil, env(map[string]string{"HERMES_HOME": t.TempDir(), "HERMES_WORKSPACE": t.TempDir(), "HERMES_REASONING": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	c.Describe(&b)
	if out := b.String(); !strings.Contains(out, "    reasoning: true\n") || !regexp.MustCompile(`upstream\.reasoning +HERMES_REASONING +true +env\n`).MatchString(out) {
		t.Errorf("the environment-only model does not show HERMES_REASONING:\n%s", out)
	}
	if _, err := Load(nil, env(map[string]string{"HERMES_HOME": t.TempDir(), "HERMES_WORKSPACE": t.TempDir(), "HERMES_REASONING": "sometimes"})); err == nil ||
		!strings.Contains(err.Error(), `HERMES_REASONING="sometimes"`) {
		t.Errorf("HERMES_REASONING=sometimes: %v", err)
	}
}
