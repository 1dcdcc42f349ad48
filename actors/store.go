package actors

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// Store is what the runtime needs of the response store. Reads go straight
// to it from any goroutine; writes go through the persistence actor.
type Store interface {
	Response(id string) (*hermes.StoredResponse, error)
	// ResponseHead is Response without the items, for routing a turn.
	ResponseHead(id string) (*hermes.StoredResponse, error)
	Transcript(id string) ([]hermes.Message, error)
	Conversation(id string) (*hermes.Conversation, error)
	Idempotency(key string) (*hermes.IdempotencyEntry, bool, error)
	Apply(ops []persistence.Op) error
	Len() int
	// Unfinished lists responses stored as queued or in_progress.
	Unfinished() ([]string, error)
}

// commit asks the persistence actor to write ops.
type commit struct {
	ops  []persistence.Op
	done chan error
}

// flush tells the persistence actor to write what it has gathered.
type flush struct{}

// persister is the single writer to the store. It gathers every commit that
// arrives while the previous write is under way and writes them in one
// Apply — one fsync for many turns. A commit's done channel is answered only
// after its batch is durable.
type persister struct {
	store   Store
	log     *slog.Logger
	pending []commit
	// onBatch, when set, observes each batch: turns grouped, time to
	// commit (metrics).
	onBatch func(n int, d time.Duration, err error)
	// stopped is closed once the actor has stopped, so a commit sent after
	// that (its message is dropped) fails instead of waiting for ever.
	stopped chan struct{}
}

func newPersister(s Store, log *slog.Logger, onBatch func(int, time.Duration, error), stopped chan struct{}) *persister {
	return &persister{store: s, log: log, onBatch: onBatch, stopped: stopped}
}

func (p *persister) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case commit:
		if len(p.pending) == 0 {
			// The flush queues behind every commit already in the mailbox,
			// so they all land in the same batch.
			ctx.Send(ctx.Self(), flush{})
		}
		p.pending = append(p.pending, m)
	case flush:
		p.write()
	case *actor.Stopping:
		p.write()
	case *actor.Stopped:
		close(p.stopped)
	}
}

func (p *persister) write() {
	if len(p.pending) == 0 {
		return
	}
	var ops []persistence.Op
	for _, c := range p.pending {
		ops = append(ops, c.ops...)
	}
	start := time.Now()
	err := p.apply(ops)
	// Observed before anyone is answered: a client told its turn is stored
	// must find the write in /metrics already.
	if p.onBatch != nil {
		p.onBatch(len(p.pending), time.Since(start), err)
	}
	if err != nil && len(p.pending) > 1 {
		// One bad record must not fail its neighbours: retry one by one.
		for _, c := range p.pending {
			c.done <- p.apply(c.ops)
		}
	} else {
		for _, c := range p.pending {
			c.done <- err
		}
	}
	if err != nil {
		p.log.Error("store write failed", "err", err, "ops", len(ops))
	}
	clear(p.pending)
	p.pending = p.pending[:0]
}

// apply writes ops, turning a panic in the store (a corrupted page) into
// the write's error. Left to protoactor's supervisor, the panic would
// restart the actor and drop every pending commit, leaving its callers to
// wait for an answer that never comes.
func (p *persister) apply(ops []persistence.Op) (err error) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("store write panicked", "panic", fmt.Sprint(v), "ops", len(ops), "stack", string(debug.Stack()))
			err = &hermes.Error{Code: hermes.EStore, Message: "the store failed while writing", Cause: fmt.Errorf("panic: %v", v)}
		}
	}()
	return p.store.Apply(ops)
}

// errWriterStopped answers writes after shutdown has stopped the writer.
var errWriterStopped = &hermes.Error{Code: hermes.EUnavailable, RetryAfter: time.Second,
	Message: "the server is shutting down and takes no more writes"}

// commit writes ops through the persistence actor and waits until they are
// durable, at most Options.CommitTimeout: a wedged store or a stopped
// writer is an error for the caller, never a request left hanging.
func (r *Runtime) commit(ops ...persistence.Op) error {
	if r.persist == nil {
		return r.store.Apply(ops)
	}
	select {
	case <-r.persistStopped:
		return errWriterStopped
	default:
	}
	r.writes.Add(1)
	defer r.writes.Add(-1)
	done := make(chan error, 1)
	r.root.Send(r.persist, commit{ops: ops, done: done})
	t := time.NewTimer(r.opts.CommitTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-r.persistStopped:
		// The writer answers what it held before it stops: a commit that
		// made it in has its answer already.
		select {
		case err := <-done:
			return err
		default:
			return errWriterStopped
		}
	case <-t.C:
		return &hermes.Error{Code: hermes.EStore, Message: "the store did not confirm the write in time",
			Cause: fmt.Errorf("no answer within %v", r.opts.CommitTimeout)}
	}
}
