package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// Cluster coordinates this node with the other nodes sharing its store
// (cluster mode, persistence/postgres). Local actors still serialize a
// node's own turns; across nodes a turn first takes its conversation's
// lease, and every write it makes is fenced by the lease's epoch.
type Cluster interface {
	// Acquire takes key's lease for a turn producing response, waiting in
	// arrival order behind other nodes' turns (at most queue of them, else
	// ERateLimited), until ctx ends.
	Acquire(ctx context.Context, key, response string, queue int) (*persistence.Lease, error)
	// Enqueue is Acquire's first step: the lease when it is free and
	// nobody waits, else a ticket for Wait, or ERateLimited.
	Enqueue(ctx context.Context, key, response string, queue int) (*persistence.Lease, int64, error)
	// Wait waits with ticket until the lease is the caller's.
	Wait(ctx context.Context, key, response string, ticket int64) (*persistence.Lease, error)
	// GiveUp leaves the queue (ticket from Enqueue).
	GiveUp(key string, ticket int64)
	// Cancel asks the node running background response id to cancel it.
	Cancel(id string) error
	// Finished tells the other nodes that background response id has its
	// final record.
	Finished(id string) error
}

// errLeaseLost stops a turn whose node learned that another node took its
// conversation's lease: its writes would be refused anyway.
var errLeaseLost = persistence.ErrLeaseLost

// remoteCancelWait bounds how long a cancel forwarded to another node is
// remembered while waiting for that node's word that the response ended.
const remoteCancelWait = 30 * time.Second

// leaseKey is the lease a turn must hold, "" when none: a turn continuing
// nothing, or a chain only its connection knows (a WebSocket's store:
// false response), cannot meet another node's turn.
func leaseKey(in *turnInput) string {
	if in.local || (in.prev == nil && in.req.Conversation == "") {
		return ""
	}
	return in.key
}

// place is a turn's place in its lease's queue across nodes, taken when
// the turn reaches its conversation actor: the lease itself, or a ticket
// to wait with.
type place struct {
	lease  *persistence.Lease
	ticket int64
	err    error
}

// placer takes places for one conversation actor's turns, one at a time
// in the order the actor admits them, so the cluster serves this node's
// turns in their arrival order too. Were a later turn of this node to get
// the earlier ticket, the node would deadlock: that turn waits in the
// actor's queue behind the one waiting for it.
// It runs on a pooled worker only while it has turns to place, so an
// idle conversation actor costs no goroutine.
type placer struct {
	rt      *Runtime
	mu      sync.Mutex // guards pending and busy
	pending []*turnInput
	busy    bool // a worker is placing pending turns
}

// add takes in's place after those of the turns added before it, without
// blocking the actor.
func (p *placer) add(in *turnInput) {
	in.place = make(chan place, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, in)
	if !p.busy {
		p.busy = true
		p.rt.workers.run(p.drain)
	}
}

// drain places the pending turns in order until none is left.
func (p *placer) drain() {
	for {
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.pending, p.busy = nil, false
			p.mu.Unlock()
			return
		}
		in := p.pending[0]
		p.pending = p.pending[1:]
		p.mu.Unlock()
		// Not the turn's context: its place must be taken even when the
		// turn is cancelled meanwhile, so whoever drops the turn gives it
		// back.
		ctx, cancel := context.WithTimeout(p.rt.base, p.rt.opts.CommitTimeout)
		l, ticket, err := p.rt.opts.Cluster.Enqueue(ctx, in.key, in.req.ResponseID, p.rt.opts.MaxQueued)
		cancel()
		in.place <- place{lease: l, ticket: ticket, err: err}
	}
}

// lease waits for in's place and then, if it holds a ticket, for the
// lease: no turn of in's conversation runs on any node until it returns.
func (r *Runtime) lease(ctx context.Context, in *turnInput) (*persistence.Lease, error) {
	if in.place == nil {
		return nil, nil
	}
	p := <-in.place
	if p.err != nil || p.lease != nil {
		return p.lease, p.err
	}
	return r.opts.Cluster.Wait(ctx, in.key, in.req.ResponseID, p.ticket)
}

// dropPlace gives back the place of a turn that will not run.
func (r *Runtime) dropPlace(in *turnInput) {
	if in.place == nil {
		return
	}
	p := <-in.place
	if p.lease != nil {
		p.lease.Release()
	}
	r.opts.Cluster.GiveUp(in.key, p.ticket)
}

// fenced prepends the lease's fence to ops, so the write fails rather than
// land after another node took the conversation over.
func fenced(l *persistence.Lease, ops ...persistence.Op) []persistence.Op {
	if l == nil {
		return ops
	}
	return append([]persistence.Op{l.Fence()}, ops...)
}

// watchLease cancels the turn once its node learns the lease is lost; it
// stops watching when ctx ends.
func watchLease(ctx context.Context, l *persistence.Lease, cancel context.CancelCauseFunc) {
	if l == nil {
		return
	}
	go func() {
		select {
		case <-l.Lost():
			cancel(errLeaseLost)
		case <-ctx.Done():
		}
	}()
}

// MarkLost marks failed, with code node_lost, the response id when it is
// still stored as queued or in_progress: the node producing it died (its
// lease, queue place or node row expired). The cluster calls it for what
// its sweeps find.
func (r *Runtime) MarkLost(id string) {
	r.markLost(id, nil)
}

func (r *Runtime) markLost(id string, l *persistence.Lease) {
	if r.store == nil || id == "" {
		return
	}
	rec := r.unfinished(id, hermes.ENodeLost, "the server running this response stopped before it finished; send it again")
	if rec == nil {
		return
	}
	if err := r.commit(fenced(l, persistence.PutResponse(rec))...); err != nil {
		r.log.Error("marking a lost response failed", "response", id, "err", err)
		return
	}
	r.log.Warn("response left unfinished by a lost node marked failed", "response", id, "code", hermes.ENodeLost)
}

// unfinished returns the stored record of id marked failed with code,
// or nil when it is not stored as queued or in_progress.
func (r *Runtime) unfinished(id, code, msg string) *hermes.StoredResponse {
	rec, err := r.store.Response(id)
	if err != nil {
		if hermes.ErrorCode(err) != hermes.ENotFound {
			r.log.Warn("unfinished response unreadable; left as it is", "response", id, "err", err)
		}
		return nil
	}
	if rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress {
		return nil
	}
	rec.Status, rec.Completed = hermes.StatusFailed, r.opts.Now()
	rec.ErrCode, rec.ErrMessage = code, msg
	return rec
}

// CancelFromPeer cancels a background response running on this node, at
// another node's request; its end is announced to the cluster as every
// background response's is.
func (r *Runtime) CancelFromPeer(id string) {
	r.cancelLocal(id)
}

// PeerFinished is told that another node stored the final record of
// background response id: a cancel forwarded there has had its effect.
func (r *Runtime) PeerFinished(id string) {
	r.remote.mu.Lock()
	defer r.remote.mu.Unlock()
	if ch := r.remote.waits[id]; ch != nil {
		close(ch)
		delete(r.remote.waits, id)
	}
}

// remoteCancels are the cancels forwarded to other nodes, waiting for the
// response's end.
type remoteCancels struct {
	mu    sync.Mutex // guards waits
	waits map[string]chan struct{}
}

// forwardCancel asks the cluster to cancel id, which no turn of this node
// runs, when its stored record says it is under way somewhere.
func (r *Runtime) forwardCancel(id string) (<-chan struct{}, bool) {
	if r.opts.Cluster == nil || r.store == nil {
		return nil, false
	}
	rc := &r.remote
	rc.mu.Lock()
	if rc.waits == nil {
		rc.waits = make(map[string]chan struct{})
	}
	ch := rc.waits[id]
	if ch == nil {
		ch = make(chan struct{})
		rc.waits[id] = ch
		time.AfterFunc(remoteCancelWait, func() {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if rc.waits[id] == ch {
				delete(rc.waits, id)
			}
		})
	}
	rc.mu.Unlock()
	// Read after the wait is registered: a response that ends from now
	// on is announced to it; one that ended before is final here.
	rec, err := r.store.ResponseHead(id)
	if err != nil || (rec.Status != hermes.StatusQueued && rec.Status != hermes.StatusInProgress) {
		return nil, false
	}
	if err := r.opts.Cluster.Cancel(id); err != nil {
		r.log.Error("forwarding a cancel failed", "response", id, "err", err)
		return nil, false
	}
	return ch, true
}

// idemLeaseKey is the lease a request with an Idempotency-Key holds across
// nodes while it runs: a digest, so keys of any length (and the
// principal they carry) never reach the lease table as they are.
func idemLeaseKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "idem:" + hex.EncodeToString(sum[:])
}
