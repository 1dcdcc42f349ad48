package httpfront

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// retryListener keeps accepting through errors that pass. fasthttp's Serve
// retries only timeouts and returns on anything else, so one "too many open
// files" left hermesd alive but deaf for good. Here such errors are retried
// with a growing pause (the pending connection waits in the kernel's
// backlog), logged at error once per streak.
type retryListener struct {
	net.Listener
	log *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}
}

func newRetryListener(ln net.Listener, log *slog.Logger) *retryListener {
	return &retryListener{Listener: ln, log: log, closed: make(chan struct{})}
}

const (
	acceptRetryFirst = 5 * time.Millisecond
	acceptRetryMax   = time.Second
)

func (l *retryListener) Accept() (net.Conn, error) {
	var pause time.Duration
	failures := 0
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if failures > 0 {
				l.log.Warn("accepting connections again", "failed_accepts", failures)
			}
			return c, nil
		}
		if !temporaryAcceptError(err) {
			return nil, err
		}
		if failures == 0 {
			l.log.Error("cannot accept connections; retrying", "err", err)
		}
		failures++
		pause = min(max(2*pause, acceptRetryFirst), acceptRetryMax)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-l.closed:
			t.Stop() // the next Accept reports the closed listener
		}
	}
}

func (l *retryListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// temporaryAcceptError reports the accept errors that a later accept can
// get past: descriptor or memory exhaustion, and a connection that was
// aborted before it was accepted.
func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
