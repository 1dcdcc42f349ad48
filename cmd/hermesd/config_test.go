package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfig: hermesd check-config prints the effective configuration
// with origins and secrets masked and exits 0; a bad file exits 2 naming
// its line, and so does hermesd itself.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("server:\n  key: ${CHECK_SECRET}\n  max_queued_turns: 4\nmodels:\n  - id: a\n    base_url: http://127.0.0.1:9/v1\n    api_key: sk-file-secret\n"), 0o600)
	t.Setenv("CHECK_SECRET", "env-secret-value")
	out, errOut, code := runMain(t, "check-config", "--config", good)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"# config file: " + good, "API_SERVER_MAX_QUEUED_TURNS", "file:3", "id: a", "api_key: ****"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "env-secret-value") || strings.Contains(out, "sk-file-secret") {
		t.Fatalf("a secret shows:\n%s", out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server:\n  tool_progress: loud\n"), 0o600)
	for _, args := range [][]string{{"check-config", "--config", bad}, {"--config", bad}} {
		out, errOut, code = runMain(t, args...)
		if code != 2 || !strings.Contains(errOut, bad+":2: server.tool_progress: \"loud\"") {
			t.Fatalf("%q: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
	}
}
