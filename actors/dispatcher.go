package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// statelessPrefix marks keys of one-shot turns (chat completions): they
// have no conversation to serialize with and run without an actor.
const statelessPrefix = "once:"

// startTurn asks for a turn; admitted receives nil when it is running or
// queued, or the reason it was refused. Whichever of Submit (giving up) and
// the conversation actor (taking the turn) sets claimed first decides, so
// a turn is never both refused to its caller and run.
type startTurn struct {
	key      string
	req      *turnInput
	admitted chan error
	claimed  atomic.Bool
}

// idle tells the dispatcher a conversation actor finished done turns and
// has nothing queued.
type idle struct {
	key  string
	done uint64
}

// passivate asks the dispatcher to stop actors idle for too long.
type passivate struct{}

// cancelQueued asks the conversation actor of key to drop the queued turn
// id, if it has not started.
type cancelQueued struct{ key, id string }

type route struct {
	pid       *actor.PID
	sent      uint64    // turns forwarded
	idleSince time.Time // zero while turns are outstanding
}

// dispatcher owns key → conversation actor. It alone spawns and stops them,
// so a passivating actor never races a new turn: it is stopped only when
// every turn forwarded to it has reported done.
type dispatcher struct {
	rt     *Runtime
	routes map[string]*route
	peak   int // most routes held since the map was last rebuilt
}

func newDispatcher(rt *Runtime) *dispatcher {
	return &dispatcher{rt: rt, routes: make(map[string]*route)}
}

func (d *dispatcher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *startTurn:
		r := d.routes[m.key]
		if r == nil {
			key := m.key
			// Spawned from the root, not as the dispatcher's children: the
			// pinned protoactor keeps a removed child's PID in its child
			// set's spare capacity, so 10,000 passivated children would
			// stay reachable (and their actors with them).
			r = &route{pid: d.rt.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newConversation(d.rt, key) }))}
			d.routes[m.key] = r
			d.peak = max(d.peak, len(d.routes))
			d.rt.actors.Add(1)
		}
		r.sent++
		r.idleSince = time.Time{}
		ctx.Send(r.pid, m)
	case idle:
		r := d.routes[m.key]
		if r == nil || r.sent != m.done {
			return // more turns are on their way to it
		}
		r.idleSince = d.rt.opts.Now()
	case cancelQueued:
		if r := d.routes[m.key]; r != nil {
			ctx.Send(r.pid, m)
		}
	case passivate:
		cutoff := d.rt.opts.Now().Add(-d.rt.opts.IdleActor)
		for key, r := range d.routes {
			if !r.idleSince.IsZero() && r.idleSince.Before(cutoff) {
				d.stop(ctx, key, r)
			}
		}
		if d.peak > 1024 && len(d.routes) < d.peak/4 {
			// Go maps never shrink: after a burst of conversations has
			// passivated, move the survivors to a map of their own size.
			routes := make(map[string]*route, len(d.routes))
			for k, r := range d.routes {
				routes[k] = r
			}
			d.routes, d.peak = routes, len(routes)
		}
	case *actor.Stopping:
		for key, r := range d.routes {
			d.stop(ctx, key, r)
		}
	}
}

func (d *dispatcher) stop(ctx actor.Context, key string, r *route) {
	ctx.Stop(r.pid)
	delete(d.routes, key)
	d.rt.actors.Add(-1)
}
