package hermestest

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time (user and system) this process has used so
// far. On a machine shared with other work a benchmark's CPU per
// operation says more about its cost than the wall clock does.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
