package main

import (
	"log/slog"
	"syscall"
)

// fdReserve is the descriptors kept back from client connections before the
// rest is halved: the store, the log, the listener, the runtime's own.
const fdReserve = 64

// connectionCap returns the client connection cap that fits the descriptor
// limit nofile: at most half of what is left after fdReserve, so upstream
// connections, tool processes and files always have descriptors too. A cap
// at the descriptor limit made accept fail with "too many open files".
func connectionCap(configured int, nofile uint64) int {
	if nofile <= fdReserve+2 {
		return 1
	}
	return int(min(uint64(configured), (nofile-fdReserve)/2))
}

// capConnections reads RLIMIT_NOFILE, logs it with the cap that follows
// from it, and returns the cap.
func capConnections(configured int, log *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the file descriptor limit; connection cap as configured", "err", err, "max_connections", configured)
		return configured
	}
	n := connectionCap(configured, lim.Cur)
	if n < configured {
		log.Warn("connection cap lowered to fit the file descriptor limit (RLIMIT_NOFILE)",
			"max_connections", n, "configured", configured, "nofile", lim.Cur)
	} else {
		log.Info("connection cap", "max_connections", n, "nofile", lim.Cur)
	}
	return n
}
