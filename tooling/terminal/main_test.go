//go:build linux

package terminal

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/hermesd/hermesd/tooling"
)

// environRoleVar makes the test binary, re-executed by
// TestHardenHidesEnviron, play a server that runs one command reading its
// own environment through /proc.
const environRoleVar = "HERMESD_TEST_ENVIRON_ROLE"

func TestMain(m *testing.M) {
	// hermesd is a child subreaper (Harden); so is the test binary, or
	// orphans of the commands tested would go to init, out of reach.
	if err := setSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if role := os.Getenv(environRoleVar); role != "" {
		os.Exit(environRole(role))
	}
	os.Exit(m.Run())
}

// environRole runs as a server would: hardened or not, it runs a command
// that reads the server's environment and memory, and prints what the
// command saw.
func environRole(role string) int {
	if role == "hardened" {
		if err := Harden(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	wd, _ := os.Getwd()
	tool := New(Options{Workspace: wd})
	fmt.Print(tool.Run(context.Background(), tooling.Call{ID: "call_1",
		Args: []byte(`{"command": "cat /proc/$PPID/environ; echo; head -c 16 /proc/$PPID/mem"}`)}))
	return 0
}
