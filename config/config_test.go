package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env is a lookup over m, as os.LookupEnv is over the environment.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

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
		{"HERMES_MCP_ALLOW_PRIVATE", "maybe"},
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

// TestTerminalEnvSetting: HERMES_TERMINAL_ENV is a comma-separated list of
// variable names; anything else is refused by Validate.
func TestTerminalEnvSetting(t *testing.T) {
	home := t.TempDir()
	c, err := Load(nil, env(map[string]string{"HERMES_TERMINAL_ENV": " GOPATH, ,NODE_ENV,_X1 ,", "HERMES_HOME": home, "HERMES_WORKSPACE": home, "API_SERVER_PORT": freePort(t)}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.TerminalEnv, "|") != "GOPATH|NODE_ENV|_X1" {
		t.Fatalf("TerminalEnv = %q", c.TerminalEnv)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"BAD-NAME", "1X", "A=B", "PATH;rm", "$HOME", "Ä"} {
		c.TerminalEnv = []string{"GOPATH", bad}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "HERMES_TERMINAL_ENV") || !strings.Contains(err.Error(), "not a variable name") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestLoadLimits: the connection and body-memory settings load, and hostile
// values are refused with the variable's name.
func TestLoadLimits(t *testing.T) {
	home := t.TempDir()
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home,
		"API_SERVER_MAX_BODY_MEMORY": "33554432", "API_SERVER_MAX_CONNECTIONS": "100", "API_SERVER_MAX_CONNECTIONS_PER_IP": "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.BodyMemory != 32<<20 || c.MaxConns != 100 || c.MaxConnsPerIP != 0 {
		t.Fatalf("got body memory %d, connections %d, per IP %d", c.BodyMemory, c.MaxConns, c.MaxConnsPerIP)
	}
	d := Defaults()
	if d.BodyMemory < d.MaxBodyBytes || d.MaxConns < 1 || d.MaxConnsPerIP < 1 {
		t.Fatalf("defaults: %+v", d)
	}
	for k, v := range map[string]string{
		"API_SERVER_MAX_BODY_MEMORY":        "10",
		"API_SERVER_MAX_CONNECTIONS":        "0",
		"API_SERVER_MAX_CONNECTIONS_PER_IP": "-1",
	} {
		for _, bad := range []string{v, "lots", "1e9", " 5"} {
			_, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home, k: bad}))
			if err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%s=%q: err = %v", k, bad, err)
			}
		}
	}
	c.Port = freePort(t)
	c.BodyMemory = c.MaxBodyBytes - 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "API_SERVER_MAX_BODY_MEMORY") {
		t.Fatalf("a budget below the body limit: %v", err)
	}
}

// TestLoadDotEnv: .env is read as dotenv tools write it (quotes go, an
// inline comment after a quoted value goes), and a variable set in the
// environment wins over .env even when it is empty.
func TestLoadDotEnv(t *testing.T) {
	home := t.TempDir()
	dot := `OPENAI_API_KEY="sk-quoted" # the upstream key
OPENAI_BASE_URL='http://127.0.0.1:9/v1'
HERMES_MODEL=plain-model # comment
export API_SERVER_PORT=9100
API_SERVER_MODEL_NAME="from-dotenv"
API_SERVER_KEY="dotenv-key-long-enough"
`
	if err := os.WriteFile(filepath.Join(home, ".env"), []byte(dot), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env(map[string]string{
		"HERMES_HOME":           home,
		"HERMES_WORKSPACE":      home,
		"API_SERVER_MODEL_NAME": "from-environment",
		"API_SERVER_KEY":        "", // set but empty: hides the .env key
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIKey != "sk-quoted" || c.BaseURL != "http://127.0.0.1:9/v1" || c.Model != "plain-model" || c.Port != "9100" {
		t.Fatalf("from .env: key=%q base=%q model=%q port=%q", c.APIKey, c.BaseURL, c.Model, c.Port)
	}
	if c.ModelName != "from-environment" {
		t.Fatalf("API_SERVER_MODEL_NAME = %q: the environment must win over .env", c.ModelName)
	}
	if c.Key != "" {
		t.Fatalf("API_SERVER_KEY = %q: set empty in the environment, it must hide the .env value", c.Key)
	}

	// Hostile: a quote left open is an error naming the file, not a value
	// that runs to the end of the file.
	if err := os.WriteFile(filepath.Join(home, ".env"), []byte("OPENAI_API_KEY=\"sk-open\nHERMES_MODEL=m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(nil, env(map[string]string{"HERMES_HOME": home}))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(home, ".env")) {
		t.Fatalf("unterminated quote: err = %v", err)
	}
}

// TestLoadHelp: -h and --help ask for help (ErrHelp, which main answers
// with the usage and exit 0); an unknown flag is an error that says where
// help is.
func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		if _, err := Load([]string{arg}, env(nil)); err != ErrHelp {
			t.Fatalf("%s: err = %v, want ErrHelp", arg, err)
		}
	}
	_, err := Load([]string{"--nope"}, env(nil))
	if err == nil || err == ErrHelp || !strings.Contains(err.Error(), "--help") {
		t.Fatalf("unknown flag: err = %v", err)
	}
	var b strings.Builder
	Usage(&b)
	for _, want := range []string{"Usage: hermesd", "-port", "-home", "HERMES_HOME/.env"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("usage lacks %q:\n%s", want, b.String())
		}
	}
}

// TestTerminalLandlockSetting: HERMES_TERMINAL_LANDLOCK is a boolean, off
// by default; anything else is refused with the variable's name.
func TestTerminalLandlockSetting(t *testing.T) {
	home := t.TempDir()
	base := map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}
	c, err := Load(nil, env(base))
	if err != nil || c.TerminalLock {
		t.Fatalf("default: %v %v", c, err)
	}
	base["HERMES_TERMINAL_LANDLOCK"] = "true"
	if c, err := Load(nil, env(base)); err != nil || !c.TerminalLock {
		t.Fatalf("true: %v %v", c, err)
	}
	for _, bad := range []string{"sometimes", "on", "yes please", "2"} {
		base["HERMES_TERMINAL_LANDLOCK"] = bad
		if _, err := Load(nil, env(base)); err == nil || !strings.Contains(err.Error(), "HERMES_TERMINAL_LANDLOCK") {
			t.Errorf("%q: %v", bad, err)
		}
	}
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

func TestContextWindowSettings(t *testing.T) {
	d := Defaults()
	d.Workspace = t.TempDir()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := d.CompactThreshold(100_000); got != 80_000 {
		t.Errorf("default threshold of a 100k window = %d, want 80,000", got)
	}
	d.CompactAt = "6000"
	if got := d.CompactThreshold(100_000); got != 6000 {
		t.Errorf("threshold = %d, want 6,000", got)
	}
	if got := d.CompactThreshold(4096); got != 4096 {
		t.Errorf("threshold past the window = %d, want the window", got)
	}
	for _, bad := range []string{"", "0%", "100%", "9%", "eighty", "80 %", "-5", "511", "1e9", "%"} {
		d.CompactAt = bad
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "HERMES_COMPACT_AT") {
			t.Errorf("HERMES_COMPACT_AT=%q: err = %v", bad, err)
		}
	}
	d.CompactAt = "80%"
	for _, bad := range []string{"", "Error", "compact ", "truncate"} {
		d.ChatOverflow = bad
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "API_SERVER_CHAT_OVERFLOW") {
			t.Errorf("API_SERVER_CHAT_OVERFLOW=%q: err = %v", bad, err)
		}
	}
	d.ChatOverflow = "error"
	for _, bad := range []int{1, 1023, -1} {
		d.ContextWindow = bad
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "HERMES_CONTEXT_WINDOW") {
			t.Errorf("HERMES_CONTEXT_WINDOW=%d: err = %v", bad, err)
		}
	}
	if _, err := Load(nil, env(map[string]string{"HERMES_HOME": t.TempDir(), "HERMES_CONTEXT_WINDOW": "lots"})); err == nil {
		t.Error("HERMES_CONTEXT_WINDOW=lots accepted")
	}
}

func TestFileSettings(t *testing.T) {
	home := t.TempDir()
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}))
	if err != nil || c.MaxFileBytes != 1<<30 || c.MaxUploadBytes != 100<<20 || c.Uploads != "" {
		t.Fatalf("defaults: %d %d %q, %v", c.MaxFileBytes, c.MaxUploadBytes, c.Uploads, err)
	}
	c, err = Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home,
		"API_SERVER_MAX_FILE_BYTES": "5000", "API_SERVER_MAX_UPLOAD_BYTES": "4000", "HERMES_UPLOADS": "workspace"}))
	if err != nil || c.MaxFileBytes != 5000 || c.MaxUploadBytes != 4000 || c.Uploads != "workspace" {
		t.Fatalf("set: %d %d %q, %v", c.MaxFileBytes, c.MaxUploadBytes, c.Uploads, err)
	}
	for _, bad := range []string{"0", "-1", "1023", "lots"} {
		if _, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "API_SERVER_MAX_FILE_BYTES": bad})); err == nil {
			t.Errorf("API_SERVER_MAX_FILE_BYTES=%q accepted", bad)
		}
	}
	d := Defaults()
	d.Workspace, d.Port = home, freePort(t)
	d.MaxUploadBytes = d.MaxFileBytes + 1
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "API_SERVER_MAX_UPLOAD_BYTES") {
		t.Errorf("upload limit above the store's cap: err = %v", err)
	}
	d.MaxUploadBytes = 1 << 20
	for _, bad := range []string{"Workspace", "tmp", "/tmp", "workspace "} {
		d.Uploads = bad
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "HERMES_UPLOADS") {
			t.Errorf("HERMES_UPLOADS=%q: err = %v", bad, err)
		}
	}
}

// TestAllowedHostsSetting: API_SERVER_ALLOWED_HOSTS loads from the
// environment and config.yaml; a value that is no host name (a port, a
// path, a scheme, spaces, a zone, an empty label) is refused by name.
func TestAllowedHostsSetting(t *testing.T) {
	home := t.TempDir()
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home, "API_SERVER_PORT": freePort(t)}))
	if err != nil || c.AllowedHosts != nil {
		t.Fatalf("default: %q, %v", c.AllowedHosts, err)
	}
	c, err = Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home, "API_SERVER_PORT": freePort(t),
		"API_SERVER_ALLOWED_HOSTS": " hermes.internal, ,Box-1.lan,[::1],10.0.0.5,host_name "}))
	if err != nil || strings.Join(c.AllowedHosts, "|") != "hermes.internal|Box-1.lan|[::1]|10.0.0.5|host_name" {
		t.Fatalf("set: %q, %v", c.AllowedHosts, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.AllowedHosts = []string{"*"}
	if err := c.Check(); err != nil {
		t.Fatalf("*: %v", err)
	}
	for _, bad := range []string{"evil.example:8642", "http://evil.example", "evil.example/x", "evil example", "a..b", ".evil",
		"evil.", "[fe80::1%eth0]", "*.example", "ev\x00il", strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "aa"} {
		c.AllowedHosts = []string{"ok.example", bad}
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), "API_SERVER_ALLOWED_HOSTS") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte("server:\n  allowed_hosts: [a.example, b.example]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}))
	if err != nil || strings.Join(c.AllowedHosts, "|") != "a.example|b.example" {
		t.Fatalf("config.yaml: %q, %v", c.AllowedHosts, err)
	}
}

// TestToolPatterns: HERMES_TOOLS and HERMES_DISABLED_TOOLS take names and
// patterns (mcp_github_*); a malformed pattern is refused rather than
// matching nothing.
func TestToolPatterns(t *testing.T) {
	for _, tc := range []struct {
		only, disabled []string
		want           string
	}{
		{[]string{"terminal", "mcp_github_*"}, []string{"mcp_fs_write_?ile"}, ""},
		{[]string{"mcp_[gh"}, nil, `HERMES_TOOLS="mcp_[gh": not a valid name pattern`},
		{nil, []string{"terminal", `mcp_\`}, `HERMES_DISABLED_TOOLS="mcp_\\": not a valid name pattern`},
	} {
		c := Defaults()
		c.Workspace, c.Tools, c.DisabledTools = t.TempDir(), tc.only, tc.disabled
		err := c.Check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v / %v: err = %v, want %q", tc.only, tc.disabled, err, tc.want)
		}
	}
}

// TestDatabaseURLSetting: HERMES_DATABASE_URL or store.postgres selects
// PostgreSQL; check-config never shows its password, in either form of
// connection string; a URL of another scheme is refused with the
// password masked in the message.
func TestDatabaseURLSetting(t *testing.T) {
	home := t.TempDir()
	describe := func(c *Config) string {
		var b strings.Builder
		c.Describe(&b)
		return b.String()
	}
	for _, tt := range []struct{ in, shown string }{
		{"postgres://hermes:s3cret@db.example:5432/hermes?sslmode=require", "postgres://hermes:xxxxx@db.example:5432/hermes?sslmode=require"},
		{"postgresql://hermes@db/hermes?password=s3cret", "postgresql://hermes@db/hermes?password=xxxxx"},
		{"host=db user=hermes password=s3cret dbname=hermes", "host=db user=hermes password=xxxxx dbname=hermes"},
		{"host=db password = s3cret", "****"},
	} {
		c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home, "HERMES_DATABASE_URL": tt.in}))
		if err != nil {
			t.Fatal(err)
		}
		if c.DatabaseURL != tt.in || c.Check() != nil {
			t.Fatalf("DatabaseURL = %q, Check %v", c.DatabaseURL, c.Check())
		}
		out := describe(c)
		if strings.Contains(out, "s3cret") || !strings.Contains(out, tt.shown) {
			t.Errorf("check-config for %q shows:\n%s\nwant %q and no password", tt.in, out, tt.shown)
		}
	}
	for _, bad := range []string{"mysql://root:s3cret@db/x", "just-a-name", "postgres://u:s3cret@[::1/x"} {
		c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home, "HERMES_DATABASE_URL": bad}))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Check()
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "HERMES_DATABASE_URL") {
			t.Errorf("Check with %q: %v; want a refusal naming the setting, without the password", bad, err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte("store:\n  postgres: postgres://hermes:s3cret@db/hermes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env(map[string]string{"HERMES_HOME": home, "HERMES_WORKSPACE": home}))
	if err != nil || c.DatabaseURL != "postgres://hermes:s3cret@db/hermes" {
		t.Fatalf("store.postgres: %v, %q", err, c.DatabaseURL)
	}
	if out := describe(c); strings.Contains(out, "s3cret") || !strings.Contains(out, "store.postgres") {
		t.Errorf("check-config:\n%s", out)
	}
}

func TestClusterSettings(t *testing.T) {
	env := map[string]string{"HERMES_HOME": t.TempDir(), "HERMES_WORKSPACE": t.TempDir(),
		"HERMES_LEASE_TTL": "2s", "HERMES_NODE_ID": "node-a.example"}
	c, err := Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaseTTL != 2*time.Second || c.NodeID != "node-a.example" {
		t.Fatalf("lease ttl %v, node %q", c.LeaseTTL, c.NodeID)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if d := Defaults(); d.LeaseTTL != 10*time.Second {
		t.Fatalf("default lease TTL %v, want 10s", d.LeaseTTL)
	}
	for _, bad := range []time.Duration{0, -time.Second, 999 * time.Millisecond, 11 * time.Minute} {
		c.LeaseTTL = bad
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), "HERMES_LEASE_TTL") {
			t.Errorf("HERMES_LEASE_TTL=%v: err = %v", bad, err)
		}
	}
	c.LeaseTTL = 10 * time.Second
	for _, bad := range []string{"a b", "tab\there", "new\nline", "nul\x00", "é", strings.Repeat("n", 129)} {
		c.NodeID = bad
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), "HERMES_NODE_ID") {
			t.Errorf("HERMES_NODE_ID=%q: err = %v", bad, err)
		}
	}
	env["HERMES_LEASE_TTL"] = "soon"
	if _, err := Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), "HERMES_LEASE_TTL") {
		t.Fatalf("HERMES_LEASE_TTL=soon: err = %v", err)
	}
}
