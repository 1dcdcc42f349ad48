package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	hermes "github.com/hermesd/hermesd"
)

// Serve runs one turn of a session to its end and returns its result: the
// front end's part, which submits the turn (Runtime.Submit, so it goes
// through the conversation actors as any other) and delivers its events.
// A turn refused before it ran returns a result holding only the error.
type Serve func(req *hermes.TurnRequest) *hermes.TurnResult

// Session is a connection that asks for turns one after another (a
// Responses WebSocket): its turns run one at a time, in the order asked,
// and it keeps its latest store: false response in memory so the next turn
// may continue it with previous_response_id. Nothing else can see that
// response: on another connection its id is unknown.
type Session struct {
	rt  *Runtime
	pid *actor.PID
}

// OpenSession starts a session actor. serve runs each turn; refuse is told
// of a turn refused without running (its queue is full). Both are called
// from goroutines of the session, never two at once for serve.
func (r *Runtime) OpenSession(serve Serve, refuse func(req *hermes.TurnRequest, err error)) *Session {
	pid := r.root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &session{rt: r, serve: serve, refuse: refuse}
	}))
	return &Session{rt: r, pid: pid}
}

// Create asks for a turn after those already asked for.
func (s *Session) Create(req *hermes.TurnRequest) {
	s.rt.root.Send(s.pid, sessionCreate{req: req})
}

// Close drops the turns still queued and stops the session once its
// running turn, if any, has ended; the returned channel is closed then.
// The caller ends a running turn sooner by cancelling its context.
func (s *Session) Close() <-chan struct{} {
	done := make(chan struct{})
	s.rt.root.Send(s.pid, sessionClose{done: done})
	return done
}

// Messages of the session actor.
type (
	sessionCreate struct{ req *hermes.TurnRequest }
	sessionDone   struct {
		req *hermes.TurnRequest
		res *hermes.TurnResult
	}
	sessionClose struct{ done chan struct{} }
)

// session is the actor behind a Session.
type session struct {
	rt      *Runtime
	serve   Serve
	refuse  func(*hermes.TurnRequest, error)
	running bool
	queue   []*hermes.TurnRequest
	// last is the latest store: false response, transcript included, that
	// the next turn may continue. A failed continuation drops it: what it
	// held may have been extended in place by the turn that failed.
	last    *hermes.StoredResponse
	closing chan struct{} // set by Close; closed when the running turn ends
}

func (s *session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case sessionCreate:
		switch {
		case s.closing != nil:
			// The connection is gone: nobody would read the answer.
		case !s.running:
			s.start(ctx, m.req)
		case len(s.queue) >= s.rt.opts.MaxQueued:
			// The same bound as a conversation's queue, so a client
			// flooding its connection holds no more than an HTTP client.
			s.refuse(m.req, &hermes.Error{Code: hermes.ERateLimited, RetryAfter: time.Second,
				Message: "too many responses queued on this connection (API_SERVER_MAX_QUEUED_TURNS); wait for the current one"})
		default:
			s.queue = append(s.queue, m.req)
		}
	case sessionDone:
		s.running = false
		s.remember(m.req, m.res)
		if s.closing != nil {
			close(s.closing)
			ctx.Stop(ctx.Self())
			return
		}
		if len(s.queue) > 0 {
			next := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.start(ctx, next)
		}
	case sessionClose:
		s.queue, s.last = nil, nil
		if s.running {
			s.closing = m.done
			return
		}
		close(m.done)
		ctx.Stop(ctx.Self())
	}
}

// start runs req, continuing the kept response when req names it.
func (s *session) start(ctx actor.Context, req *hermes.TurnRequest) {
	s.running = true
	if s.last != nil && req.Previous == s.last.ID {
		req.PreviousRecord = s.last
	}
	self := ctx.Self()
	go func() {
		res := s.serve(req)
		s.rt.root.Send(self, sessionDone{req: req, res: res})
	}()
}

// remember keeps what the next turn may continue: a store: false response
// that completed. A stored one is found in the store; a failed
// continuation of the kept response drops it.
func (s *session) remember(req *hermes.TurnRequest, res *hermes.TurnResult) {
	ok := res != nil && res.Err == nil && res.Record != nil && res.Record.Status == hermes.StatusCompleted
	switch {
	case ok && !req.Store:
		s.last = res.Record
	case ok:
		s.last = nil // the latest response is stored: continuing the kept one would fork the connection's chain
	case req.PreviousRecord != nil:
		s.last = nil
	}
}
