package persistence

import (
	"sync"

	hermes "github.com/hermesd/hermesd"
)

// Lease is a node's hold on a conversation's (or chain's) turns in
// cluster mode: while it holds the lease, no other node runs a turn of
// that key. Its epoch fences the turn's writes (Fence): once the lease is
// lost — its holder stalled past its expiry and another node took it —
// those writes fail with EConversationBusy instead of overwriting a newer
// turn. The store that hands leases out (persistence/postgres) builds it
// with NewLease.
type Lease struct {
	Key   string
	Epoch int64
	// Orphan is the response a dead holder of this lease left unfinished
	// (its node stopped renewing the lease), "" when there is none: the
	// new holder marks it failed.
	Orphan string

	release  func()
	lostOnce sync.Once
	lost     chan struct{}
}

// NewLease returns a held lease; release gives it back.
func NewLease(key string, epoch int64, orphan string, release func()) *Lease {
	return &Lease{Key: key, Epoch: epoch, Orphan: orphan, release: release, lost: make(chan struct{})}
}

// Fence returns the op that makes a write conditional on the lease: Apply
// fails the whole write with EConversationBusy unless the lease still
// carries this epoch. Nil gives a zero op's error.
func (l *Lease) Fence() Op {
	if l == nil {
		return Op{}
	}
	return Op{kind: OpFence, id: l.Key, epoch: l.Epoch}
}

// Lost is closed when the holder learns it has lost the lease; a turn
// stops then, its writes would fail anyway.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Lose marks the lease lost.
func (l *Lease) Lose() { l.lostOnce.Do(func() { close(l.lost) }) }

// Release gives the lease back, waking the next turn waiting for it.
func (l *Lease) Release() {
	if l.release != nil {
		l.release()
	}
}

// ErrLeaseLost is the error of a write fenced by a lease another node has
// since taken.
var ErrLeaseLost = &hermes.Error{Code: hermes.EConversationBusy,
	Message: "another server took over this conversation while the turn ran (its lease expired); its answer was not stored: send it again"}
