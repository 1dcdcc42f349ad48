package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	hermes "github.com/hermesd/hermesd"
)

// turnDone reports a finished turn to its conversation actor.
type turnDone struct {
	rec *hermes.StoredResponse // the committed record, nil when nothing was stored
}

// conversation runs the turns of one chain or named conversation, one at a
// time in arrival order. It never blocks in Receive: each turn runs in its
// own goroutine and reports back with turnDone.
type conversation struct {
	rt      *Runtime
	key     string
	running bool
	queue   []*startTurn
	done    uint64
	// last is the latest committed record of this conversation with its
	// transcript, so the next turn need not read the transcript back from
	// the store (a walk over every ancestor). It lives as long as the actor:
	// passivation (API_SERVER_ACTOR_IDLE) bounds what idle actors hold.
	// Its transcript's array is extended in place by the turn continuing
	// it, and only by that turn: turns run one at a time, and the cache
	// moves to the turn's record or is dropped when the turn ends.
	last *hermes.StoredResponse
	// placer queues the turns in the cluster's lease queue as they
	// arrive (cluster mode), started with the first turn needing it.
	placer *placer
}

func newConversation(rt *Runtime, key string) *conversation {
	return &conversation{rt: rt, key: key}
}

func (c *conversation) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *startTurn:
		if !m.claimed.CompareAndSwap(false, true) {
			// Submit gave up waiting and told its caller no; the turn
			// must not run.
			c.done++
			if !c.running && len(c.queue) == 0 {
				ctx.Send(c.rt.dispatcher, idle{key: c.key, done: c.done})
			}
			return
		}
		if !c.running {
			m.admitted <- nil
			c.place(m.req)
			c.start(ctx, m)
			return
		}
		if len(c.queue) >= c.rt.opts.MaxQueued {
			m.admitted <- &hermes.Error{Code: hermes.ERateLimited, RetryAfter: time.Second,
				Message: "too many requests queued on this conversation (API_SERVER_MAX_QUEUED_TURNS); retry after the current turn"}
			c.done++ // refused turns count as done so the dispatcher's tally matches
			return
		}
		m.admitted <- nil
		c.place(m.req)
		c.queue = append(c.queue, m)
	case cancelQueued:
		for i, q := range c.queue {
			if q.req.req.ResponseID == m.id {
				c.queue = append(c.queue[:i], c.queue[i+1:]...)
				c.done++
				c.rt.workers.run(func() { c.rt.dropPlace(q.req); c.rt.skipTurn(q.req) })
				if !c.running && len(c.queue) == 0 {
					ctx.Send(c.rt.dispatcher, idle{key: c.key, done: c.done})
				}
				return
			}
		}
	case turnDone:
		c.running = false
		c.done++
		// A turn that stored nothing may still have appended to the cached
		// transcript's array beyond its length (Agent.Run extends it in
		// place): drop the cache so no later turn writes over that.
		c.last = m.rec
		if len(c.queue) > 0 {
			next := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.start(ctx, next)
			return
		}
		ctx.Send(c.rt.dispatcher, idle{key: c.key, done: c.done})
	}
}

// place asks for in's place in the cluster's queue of its lease, when it
// needs one, after every turn admitted before it.
func (c *conversation) place(in *turnInput) {
	if c.rt.opts.Cluster == nil || leaseKey(in) == "" {
		return
	}
	if c.placer == nil {
		c.placer = &placer{rt: c.rt}
	}
	c.placer.add(in)
}

func (c *conversation) start(ctx actor.Context, m *startTurn) {
	c.running = true
	self := ctx.Self()
	last := c.last
	c.rt.workers.run(func() {
		c.rt.runTurn(m.req, last, func(rec *hermes.StoredResponse) { c.rt.root.Send(self, turnDone{rec: rec}) })
	})
}
