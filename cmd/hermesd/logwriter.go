package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logFlushEvery bounds how long a log line may sit in the buffer.
const logFlushEvery = 100 * time.Millisecond

// bufferedLog batches log lines into few writes. One line per request is
// the contract, but one write syscall per line cost about a tenth of a
// short turn under load; lines reach the output within logFlushEvery and
// at Close.
type bufferedLog struct {
	mu   sync.Mutex // guards w
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newBufferedLog(out io.Writer) *bufferedLog {
	b := &bufferedLog{w: bufio.NewWriterSize(out, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushLoop()
	return b
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.done: // closed: nobody flushes anymore
		if _, err := b.w.Write(p); err != nil {
			return 0, err
		}
		return len(p), b.w.Flush()
	default:
		return b.w.Write(p)
	}
}

func (b *bufferedLog) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.w.Flush()
}

func (b *bufferedLog) flushLoop() {
	defer close(b.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush()
		case <-b.stop:
			b.flush()
			return
		}
	}
}

// Close flushes what is buffered and stops the flusher. Later writes go
// straight to the output. It may be called more than once.
func (b *bufferedLog) Close() error {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
	})
	return nil
}
