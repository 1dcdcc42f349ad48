//go:build linux

package terminal

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHardenHidesEnviron: a command running as the server's own user read
// API_SERVER_KEY from /proc/$PPID/environ; here a canary variable stands
// for it (output masking would hide a real key). After Harden (non-dumpable) it
// cannot read the server's environment or memory; without it, it can,
// which shows the check itself works. The server is this test binary
// re-executed, so the test process itself stays dumpable; as root (whose
// CAP_SYS_PTRACE reads anything) both run as nobody.
func TestHardenHidesEnviron(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hermesd-harden-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "server")
	// The copy is written by a child process: a write descriptor held by
	// this process would leak into any command a parallel test forks at
	// that moment, and exec of the copy would then fail with "text file busy".
	if out, err := exec.Command("cp", self, bin).CombinedOutput(); err != nil {
		t.Fatalf("copy test binary: %v: %s", err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for _, role := range []string{"plain", "hardened"} {
		cmd := exec.Command(bin)
		cmd.Dir = dir
		cmd.Env = []string{environRoleVar + "=" + role, "HERMES_CANARY=" + canary, "PATH=/usr/local/bin:/usr/bin:/bin"}
		if os.Getuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", role, err, out)
		}
		var r Result
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: %v: %s", role, err, out)
		}
		switch role {
		case "plain":
			if !strings.Contains(r.Output, "HERMES_CANARY="+canary) {
				t.Fatalf("without Harden the command should read the environment (the check is broken): %+v", r)
			}
		case "hardened":
			if strings.Contains(r.Output, canary) || strings.Count(r.Output, "Permission denied") != 2 {
				t.Fatalf("after Harden the command read the server's environment or memory: %+v", r)
			}
		}
	}
}
