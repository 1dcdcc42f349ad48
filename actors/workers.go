package actors

import "time"

// workers runs turns on reused goroutines. A turn's call chain is deep
// (HTTP codec → agent loop → model client), so a fresh goroutine spends a
// large share of a short turn growing and copying its stack; a worker
// keeps its grown stack for the next turn.
type workers struct {
	tasks chan func()
	idle  time.Duration
}

func newWorkers(idle time.Duration) *workers {
	return &workers{tasks: make(chan func()), idle: idle}
}

// run hands f to an idle worker, or starts a new one.
func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(w.idle)
		select {
		case f = <-w.tasks:
		case <-t.C:
			return // idle too long: let the goroutine and its stack go
		}
	}
}
