package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	hermes "github.com/hermesd/hermesd"
)

var (
	errTurnTimeout = errors.New("turn timeout")
	errShutdown    = errors.New("server shutting down")
)

// Options configure a Runtime.
type Options struct {
	Agent *Agent
	// Store keeps responses and conversations; nil keeps nothing (tests of
	// stateless chat).
	Store Store
	// MaxTurns caps turns admitted at once, running or queued; beyond it
	// Submit answers ERateLimited so a flood cannot exhaust memory.
	MaxTurns int
	// MaxQueued caps turns waiting behind a running one on the same
	// conversation.
	MaxQueued   int
	TurnTimeout time.Duration
	// IdleActor is how long an idle conversation actor lives before it is
	// stopped; its state reloads from the store on the next turn.
	IdleActor time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
	// AdmitTimeout bounds how long Submit waits for a conversation actor to
	// take a turn before refusing it (default 10s; only a stopping or wedged
	// runtime is that slow).
	AdmitTimeout time.Duration
	// WorkerIdle is how long a pooled turn goroutine waits for the next
	// turn before it exits (default 10s).
	WorkerIdle time.Duration
	// OnBatch observes each store write: how many turns it grouped and
	// how long the commit took.
	OnBatch func(turns int, d time.Duration, err error)
	// CommitTimeout bounds how long a write waits for the store to confirm
	// it (default 30s); beyond it the write fails with EStore.
	CommitTimeout time.Duration
	// OpenCompaction opens a compaction item's encrypted content sent back
	// by a client (the sealer of Agent.Seal); nil refuses every one.
	OpenCompaction func(enc string) (string, error)
	// Attach reads files sent in messages into text; nil refuses them.
	Attach *Attachments
	// SealReasoning and OpenReasoning seal a model's reasoning for a
	// reasoning item's encrypted_content and open what a client sends
	// back; nil leaves items without it and refuses every one.
	SealReasoning func(reasoning string) string
	OpenReasoning func(enc string) (string, error)
	// Cluster, in cluster mode, coordinates turns, cancels and
	// idempotency keys with the other nodes sharing Store; nil on a
	// single node.
	Cluster Cluster
}

// Runtime is the facade httpfront talks to: it admits turns, routes them to
// conversation actors and drains them on shutdown.
type Runtime struct {
	opts       Options
	agent      *Agent
	store      Store
	sys        *actor.ActorSystem
	root       *actor.RootContext
	dispatcher *actor.PID
	persist    *actor.PID
	log        *slog.Logger

	admitted atomic.Int64 // turns admitted and not yet done
	running  atomic.Int64 // turns running now
	actors   atomic.Int64 // conversation actors alive
	closing  atomic.Bool
	turns    sync.WaitGroup
	live     sync.Map     // response id → start time of each running turn, for the shutdown report
	writes   atomic.Int64 // commits waiting for the writer's answer
	bg       background
	flights  flights
	remote   remoteCancels
	workers  *workers

	base           context.Context // cancelled when the drain gives up
	cancelBase     context.CancelFunc
	stopTicker     chan struct{}
	persistStopped chan struct{} // closed when the writer has stopped
	drainOnce      sync.Once
	drainErr       error
	closeOnce      sync.Once
	closeErr       error
}

// New starts a Runtime.
func New(opts Options) *Runtime {
	if opts.MaxTurns <= 0 {
		opts.MaxTurns = 256
	}
	if opts.MaxQueued < 0 {
		opts.MaxQueued = 0
	}
	if opts.TurnTimeout <= 0 {
		opts.TurnTimeout = 10 * time.Minute
	}
	if opts.IdleActor <= 0 {
		opts.IdleActor = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AdmitTimeout <= 0 {
		opts.AdmitTimeout = 10 * time.Second
	}
	if opts.WorkerIdle <= 0 {
		opts.WorkerIdle = 10 * time.Second
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = 30 * time.Second
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	if opts.Agent != nil && opts.Agent.running == nil {
		opts.Agent.running = &toolRuns{}
	}
	r := &Runtime{
		opts:           opts,
		agent:          opts.Agent,
		store:          opts.Store,
		sys:            sys,
		root:           sys.Root,
		log:            opts.Logger,
		stopTicker:     make(chan struct{}),
		persistStopped: make(chan struct{}),
		workers:        newWorkers(opts.WorkerIdle),
	}
	r.base, r.cancelBase = context.WithCancel(context.Background())
	if r.store != nil {
		r.persist = r.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newPersister(r.store, r.log, opts.OnBatch, r.persistStopped) }))
	}
	r.dispatcher = r.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newDispatcher(r) }))
	go r.tick()
	return r
}

// Stats is a snapshot of the runtime's gauges.
type Stats struct {
	Admitted, Running, Actors int64
}

// Stats returns the runtime's gauges.
func (r *Runtime) Stats() Stats {
	return Stats{Admitted: r.admitted.Load(), Running: r.running.Load(), Actors: r.actors.Load()}
}

// Submit admits a turn and routes it to its conversation actor. On success
// the turn's events arrive on req.Events, ending with EventDone. An error
// (ERateLimited, EUnavailable) means nothing ran and no event will come.
// A stateless turn without Progress runs on the caller's goroutine: Submit
// returns when it is done, its EventDone already in req.Events.
func (r *Runtime) Submit(req *hermes.TurnRequest) error {
	if r.closing.Load() {
		return &hermes.Error{Code: hermes.EUnavailable, Message: "the server is shutting down", RetryAfter: time.Second}
	}
	if r.admitted.Add(1) > int64(r.opts.MaxTurns) {
		r.admitted.Add(-1)
		return &hermes.Error{Code: hermes.ERateLimited, RetryAfter: time.Second,
			Message: "too many turns in progress (API_SERVER_MAX_CONCURRENT_TURNS); retry shortly"}
	}
	// Files are read once the turn is admitted, so their fetches are
	// bounded with the turns, and before it is routed, so a file that
	// cannot be read fails the request before anything runs.
	if err := r.ReadFiles(req.Ctx, req.Input); err != nil {
		r.admitted.Add(-1)
		return err
	}
	key, in, err := r.route(req)
	if err != nil {
		r.admitted.Add(-1)
		return err
	}
	in.key = key
	if req.Background {
		r.bg.register(req.ResponseID, key)
	}
	r.turns.Add(1)
	if strings.HasPrefix(key, statelessPrefix) {
		// A stateless turn has nothing to serialize with: no actor to
		// spawn and stop, it runs at once. A caller that wants only the
		// final event is waiting anyway, so it runs the turn itself (its
		// one event fits in any buffered channel).
		if !req.Progress && cap(req.Events) > 0 {
			r.runTurn(in, nil, nil)
			return nil
		}
		r.workers.run(func() { r.runTurn(in, nil, nil) })
		return nil
	}
	m := &startTurn{key: key, req: in, admitted: make(chan error, 1)}
	r.root.Send(r.dispatcher, m)
	t := time.NewTimer(r.opts.AdmitTimeout)
	defer t.Stop()
	select {
	case err = <-m.admitted:
	case <-t.C:
		if m.claimed.CompareAndSwap(false, true) {
			// No actor took the turn (the runtime is stopping, or
			// wedged): refuse it; an actor that gets it later drops it.
			err = &hermes.Error{Code: hermes.EUnavailable, Message: "the runtime did not accept the turn in time", RetryAfter: time.Second}
		} else {
			err = <-m.admitted // an actor took it just now; its answer follows
		}
	}
	if err != nil {
		if req.Background {
			r.bg.finish(req.ResponseID)
		}
		r.release()
	}
	return err
}

func (r *Runtime) release() {
	r.admitted.Add(-1)
	r.turns.Done()
}

// Drain stops admitting turns and waits for those in flight to finish.
// When ctx has a deadline it waits until shortly before it — the last fifth
// of the time left (at least 1s, at most 5s, never more than half) is kept
// for cut turns to store their final record — then cancels what is left and
// waits for it to report until ctx ends. It returns nil when every turn
// finished on its own, else an error naming the turns it cut short or
// abandoned. Later calls return the first call's answer.
func (r *Runtime) Drain(ctx context.Context) error {
	r.drainOnce.Do(func() { r.drainErr = r.drain(ctx) })
	return r.drainErr
}

func (r *Runtime) drain(ctx context.Context) error {
	r.closing.Store(true)
	done := make(chan struct{})
	go func() { r.turns.Wait(); close(done) }()
	soft := ctx
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		// Enough for a cut turn's tools to return (abandonAfter) and its
		// record to be stored, where the time allows.
		reserve := min(max(left/5, 2*abandonAfter), left/2, 5*time.Second)
		var cancel context.CancelFunc
		soft, cancel = context.WithDeadline(ctx, dl.Add(-reserve))
		defer cancel()
	}
	select {
	case <-done:
		return nil
	case <-soft.Done():
	}
	cut := r.liveTurns()
	r.cancelBase()
	var err error
	select {
	case <-done:
		err = fmt.Errorf("cancelled %d turns still running when the grace period ran out: %s", len(cut), strings.Join(cut, ", "))
	case <-ctx.Done():
		left := r.liveTurns()
		err = fmt.Errorf("abandoned %d turns that did not end after being cancelled: %s", len(left), strings.Join(left, ", "))
	}
	if r.agent != nil {
		if tools := r.agent.Running(); len(tools) > 0 {
			err = fmt.Errorf("%w; abandoned tool calls still running: %s", err, strings.Join(tools, ", "))
		}
	}
	return err
}

// liveTurns names the running turns, oldest first, as "ID for DURATION".
func (r *Runtime) liveTurns() []string {
	type turn struct {
		id    string
		start time.Time
	}
	var turns []turn
	r.live.Range(func(k, v any) bool {
		turns = append(turns, turn{k.(string), v.(time.Time)})
		return true
	})
	sort.Slice(turns, func(i, j int) bool { return turns[i].start.Before(turns[j].start) })
	out := make([]string, len(turns))
	for i, t := range turns {
		out[i] = t.id + " for " + time.Since(t.start).Round(time.Millisecond).String()
	}
	return out
}

// Shutdown drains the turns (see Drain), then stops the actors: the
// dispatcher with its conversations, then the writer, which stores what it
// holds before it stops. Every step ends when ctx does; what did not finish
// is named in the error. Writes after Shutdown fail with EUnavailable. Call
// it once the HTTP side has stopped writing; later calls return the first
// call's answer.
func (r *Runtime) Shutdown(ctx context.Context) error {
	err := r.Drain(ctx)
	r.closeOnce.Do(func() { r.closeErr = r.stopActors(ctx) })
	return errors.Join(err, r.closeErr)
}

func (r *Runtime) stopActors(ctx context.Context) error {
	close(r.stopTicker)
	r.cancelBase()
	var errs []error
	stopped := make(chan struct{})
	go func() { _ = r.root.StopFuture(r.dispatcher).Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		errs = append(errs, errors.New("the dispatcher did not stop"))
	}
	if r.persist != nil {
		r.root.Poison(r.persist) // poison, not stop: commits already sent are written first
		select {
		case <-r.persistStopped:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("the store writer did not stop; %d writes unconfirmed", r.writes.Load()))
		}
	}
	return errors.Join(errs...)
}

func (r *Runtime) tick() {
	period := r.opts.IdleActor / 2
	if period > 10*time.Second {
		period = 10 * time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-r.stopTicker:
			return
		case <-t.C:
			r.root.Send(r.dispatcher, passivate{})
		}
	}
}
