//go:build !linux

package terminal

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// Harden does nothing where there is no prctl: a command's processes are
// then followed by their process group only.
func Harden() error { return nil }

type tree struct{ root int }

func start(cmd *exec.Cmd, _ string, _ bool) (*tree, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &tree{root: cmd.Process.Pid}, nil
}

func (t *tree) kill() { _ = syscall.Kill(-t.root, syscall.SIGKILL) }

func (t *tree) watch(done <-chan struct{}, _ time.Duration) { <-done }

func (t *tree) unregister() {}

func sweepOrphans() {}

// LandlockAvailable reports whether the kernel can confine commands: only
// Linux can.
func LandlockAvailable() bool { return false }

func startConfined(*exec.Cmd, string, bool, []string) (*tree, error) {
	return nil, errors.New("Landlock is only available on Linux (HERMES_TERMINAL_LANDLOCK is on): commands are not run")
}
