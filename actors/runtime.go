package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
	bg       background
	flights  flights
	workers  *workers

	base       context.Context // cancelled when the drain gives up
	cancelBase context.CancelFunc
	stopTicker chan struct{}
	closeOnce  sync.Once
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
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	r := &Runtime{
		opts:       opts,
		agent:      opts.Agent,
		store:      opts.Store,
		sys:        sys,
		root:       sys.Root,
		log:        opts.Logger,
		stopTicker: make(chan struct{}),
		workers:    newWorkers(opts.WorkerIdle),
	}
	r.base, r.cancelBase = context.WithCancel(context.Background())
	if r.store != nil {
		r.persist = r.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newPersister(r.store, r.log, opts.OnBatch) }))
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
	key, in, err := r.route(req)
	if err != nil {
		r.admitted.Add(-1)
		return err
	}
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

// Shutdown stops admitting turns and waits for those in flight to finish,
// until ctx ends; then it cancels what is left and waits for it to report.
// Stores are flushed before it returns. Call it once.
func (r *Runtime) Shutdown(ctx context.Context) error {
	r.closing.Store(true)
	done := make(chan struct{})
	go func() { r.turns.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		r.cancelBase()
		<-done
	}
	r.closeOnce.Do(func() {
		close(r.stopTicker)
		r.cancelBase()
		_ = r.root.StopFuture(r.dispatcher).Wait()
		if r.persist != nil {
			_ = r.root.PoisonFuture(r.persist).Wait() // poison: pending commits are written first
		}
	})
	return err
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
