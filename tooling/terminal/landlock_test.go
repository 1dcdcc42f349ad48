//go:build linux

package terminal

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// threads is the number of OS threads of this process.
func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads line")
	return 0
}

// TestLandlockConfinesCommands: with Landlock on, a command writes the
// workspace and the temporary directory and reads the system, but cannot
// read a secret in the home directory or write outside; the server itself
// stays unconfined, and the threads that started commands are gone.
func TestLandlockConfinesCommands(t *testing.T) {
	if !LandlockAvailable() {
		t.Skip("Landlock is not available on this kernel: confinement is not tested here")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory to hide a secret in")
	}
	secretDir, err := os.MkdirTemp(home, ".hermesd-landlock-")
	if err != nil {
		t.Skipf("cannot write the home directory: %v", err)
	}
	defer os.RemoveAll(secretDir)
	secret := filepath.Join(secretDir, "id_key")
	if err := os.WriteFile(secret, []byte("landlock-canary"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	tool := newTool(t, Options{Workspace: ws, Landlock: true})
	if !strings.Contains(tool.Spec().Description, "write only the workspace") {
		t.Fatal("the model is not told where it may write")
	}
	before := threads(t)
	tests := []struct {
		cmd, output string
	}{
		{"echo hi > in.txt && cat in.txt && rm in.txt", "hi\n"},
		{"f=$(mktemp) && echo tmp > $f && cat $f && rm $f", "tmp\n"},
		{"head -c 5 /etc/passwd >/dev/null && ls /usr/bin >/dev/null && echo read", "read\n"},
		{"cat " + secret + " 2>/dev/null || echo denied", "denied\n"},
		{"(echo x > " + filepath.Join(secretDir, "new") + ") 2>/dev/null || echo denied", "denied\n"},
		{"ls " + secretDir + " 2>/dev/null || echo denied", "denied\n"},
	}
	for range 5 { // several, to see threads come and go
		for _, tt := range tests {
			r := run(t, tool, context.Background(), cmdArgs(tt.cmd))
			if r.Output != tt.output {
				t.Fatalf("%q: %+v %s", tt.cmd, r, errText(r))
			}
		}
	}
	if _, err := os.Stat(filepath.Join(secretDir, "new")); err == nil {
		t.Fatal("a confined command wrote outside the workspace")
	}
	// The server is not confined: it still writes beside the secret.
	if err := os.WriteFile(filepath.Join(secretDir, "server"), []byte("x"), 0o600); err != nil {
		t.Fatalf("the server itself was confined: %v", err)
	}
	if after := threads(t); after > before+4 {
		t.Errorf("threads %d → %d: the confined threads did not end", before, after)
	}
}
