package httpfront

import (
	"context"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	hermes "github.com/hermesd/hermesd"
	"github.com/valyala/fasthttp"
)

// Responses over WebSocket (GET /v1/responses with Upgrade: websocket), as
// OpenAI's WebSocket mode and Open Responses define it: each client message
// is {"type":"response.create", …create body}; the server answers with the
// events a stream would carry, one JSON text message each, one response
// after another in order. The upgrade request was admitted by the
// middleware like any other (origin, key), so CheckOrigin has nothing left
// to decide. A connection is an actors.Session: it orders the responses and
// keeps the latest store: false one for the next to continue.

// socket is one WebSocket connection's write side.
type socket struct {
	c       *websocket.Conn
	mu      sync.Mutex // guards writes: the running response's events and the reader's refusals share the connection
	timeout time.Duration

	pmu sync.Mutex // guards pending
	// pending holds the approval answers of requests asked for and not yet
	// started, resolved when they start (decodeResponsesOn).
	pending map[*hermes.TurnRequest][]approvalAnswer
}

// hold keeps req's unresolved approval answers until its turn starts.
func (k *socket) hold(req *hermes.TurnRequest, answers []approvalAnswer) {
	if len(answers) == 0 {
		return
	}
	k.pmu.Lock()
	defer k.pmu.Unlock()
	if k.pending == nil {
		k.pending = make(map[*hermes.TurnRequest][]approvalAnswer)
	}
	k.pending[req] = answers
}

// take returns and forgets req's held approval answers.
func (k *socket) take(req *hermes.TurnRequest) []approvalAnswer {
	k.pmu.Lock()
	defer k.pmu.Unlock()
	a := k.pending[req]
	delete(k.pending, req)
	return a
}

// write sends b as one text message within the write timeout, so a client
// that stops reading cannot hold its response (and its turn) forever.
func (k *socket) write(b []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	_ = k.c.SetWriteDeadline(time.Now().Add(k.timeout))
	return k.c.WriteMessage(websocket.TextMessage, b)
}

// refuse sends the error event of a message that started no response:
// the status an HTTP request would have got, and the error in both the
// Open Responses form (code, message, param) and OpenAI's (error).
func (k *socket) refuse(err error) {
	e := hermes.AsError(err)
	st, _ := status(e.Code)
	b := append([]byte(nil), `{"type":"error","status":`...)
	b = appendInt(b, int64(st))
	b = append(b, `,"code":`...)
	b = appendNullString(b, wireCode(e))
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	b = append(b, `,"param":`...)
	b = appendNullString(b, e.Param)
	b = append(b, `,"error":`...)
	b = appendErrorObject(b, e)
	_ = k.write(append(b, '}'))
}

// sockets tracks the open WebSocket connections: fasthttp forgets a
// connection once it is hijacked, so neither its connection cap nor its
// Shutdown sees them.
type sockets struct {
	mu      sync.Mutex // guards open and closing
	open    map[*websocket.Conn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// add registers c; false when the server is shutting down or full.
func (ss *sockets) add(c *websocket.Conn, limit int) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closing || limit > 0 && len(ss.open) >= limit {
		return false
	}
	if ss.open == nil {
		ss.open = make(map[*websocket.Conn]struct{})
	}
	ss.open[c] = struct{}{}
	ss.wg.Add(1)
	return true
}

func (ss *sockets) remove(c *websocket.Conn) {
	ss.mu.Lock()
	delete(ss.open, c)
	ss.mu.Unlock()
	ss.wg.Done()
}

func (ss *sockets) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.open)
}

func (ss *sockets) isClosing() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.closing
}

// shutdown stops every connection reading: each finishes its running
// response (the runtime's drain bounds it), then closes with 1001. It
// returns once all have closed.
func (ss *sockets) shutdown() {
	ss.mu.Lock()
	ss.closing = true
	for c := range ss.open {
		_ = c.UnderlyingConn().SetReadDeadline(time.Now())
	}
	ss.mu.Unlock()
	ss.wg.Wait()
}

// responsesSocket answers GET /v1/responses: a WebSocket upgrade, or 405
// for anything else (the route is POST).
func (s *Server) responsesSocket(ctx *fasthttp.RequestCtx) {
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		writeError(ctx, hermes.Errorf("method_not_allowed", "Method GET is not allowed on /v1/responses without Upgrade: websocket"))
		return
	}
	if max := s.opts.MaxConns; max > 0 && s.sockets.count() >= max {
		writeError(ctx, &hermes.Error{Code: hermes.EUnavailable, RetryAfter: time.Second,
			Message: "too many WebSocket connections (API_SERVER_MAX_CONNECTIONS); retry shortly"})
		return
	}
	u := websocket.FastHTTPUpgrader{
		CheckOrigin: func(*fasthttp.RequestCtx) bool { return true }, // admit checked it against API_SERVER_CORS_ORIGINS
		Error: func(ctx *fasthttp.RequestCtx, st int, reason error) {
			writeError(ctx, hermes.Errorf(hermes.EInvalid, "%s", reason.Error()))
			ctx.SetStatusCode(st)
		},
	}
	_ = u.Upgrade(ctx, s.serveSocket)
}

// socketPingEvery is how often an open connection is pinged; a client that
// has not answered within socketPongWait is gone, and its response is
// cancelled.
const (
	socketPingEvery = 15 * time.Second
	socketPongWait  = 2 * socketPingEvery
)

// serveSocket reads one connection's messages until it closes. Messages
// are read while a response runs, so a client that leaves mid-response is
// noticed at once and its turn cancelled.
func (s *Server) serveSocket(c *websocket.Conn) {
	defer c.Close()
	if !s.sockets.add(c, s.opts.MaxConns) {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "server busy"), time.Now().Add(time.Second))
		return
	}
	defer s.sockets.remove(c)
	// A message larger than a request body may be is refused from its frame
	// header, before its payload is read: the connection closes with 1009.
	c.SetReadLimit(int64(s.opts.MaxBodyBytes))
	k := &socket{c: c, timeout: s.opts.StreamWriteTimeout}
	connCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess := s.rt.OpenSession(func(req *hermes.TurnRequest) *hermes.TurnResult {
		return s.socketTurn(connCtx, k, req)
	}, func(req *hermes.TurnRequest, err error) {
		k.take(req)
		k.refuse(err)
	})

	_ = c.SetReadDeadline(time.Now().Add(socketPongWait))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(socketPongWait)) })
	stopPing := make(chan struct{})
	go func() {
		t := time.NewTicker(socketPingEvery)
		defer t.Stop()
		for {
			select {
			case <-stopPing:
				return
			case <-t.C:
				_ = c.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.opts.StreamWriteTimeout))
			}
		}
	}()
	defer close(stopPing)

	for {
		typ, data, err := c.ReadMessage()
		if err != nil {
			break
		}
		_ = c.SetReadDeadline(time.Now().Add(socketPongWait))
		if typ != websocket.TextMessage {
			k.refuse(hermes.InvalidParam("", "Messages must be JSON text, not binary"))
			continue
		}
		req, answers, e := s.decodeSocketMessage(data)
		if e != nil {
			k.refuse(e)
			continue
		}
		k.hold(req, answers)
		sess.Create(req)
	}
	if s.sockets.isClosing() {
		// The server is stopping: the running response may finish (the
		// runtime's drain bounds it); queued ones are dropped.
		<-sess.Close()
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		return
	}
	// The client left: nobody reads what the running response would say.
	cancel()
	<-sess.Close()
}

// decodeSocketMessage turns a client message into a turn request, and the
// approval answers to resolve when it starts.
func (s *Server) decodeSocketMessage(data []byte) (*hermes.TurnRequest, []approvalAnswer, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := decodeObject(data, &head); err != nil {
		return nil, nil, err
	}
	if head.Type != "response.create" {
		return nil, nil, hermes.InvalidParam("type", "Unknown message type '%s': send response.create", head.Type)
	}
	var answers []approvalAnswer
	rr, req, err := s.decodeResponsesOn(data, &answers)
	if err != nil {
		return nil, nil, err
	}
	if rr.Background {
		return nil, nil, hermes.InvalidParam("background", "background responses are not supported over WebSocket: use POST /v1/responses")
	}
	req.Progress = true
	return req, answers, nil
}

// errSocketGone is the result of a response whose client left before it
// ended.
var errSocketGone = &hermes.Error{Code: hermes.ECancelled, Message: "the connection closed before the response ended"}

// socketTurn runs one response of a connection and writes its events with
// the same encoder an SSE stream uses, unframed.
func (s *Server) socketTurn(connCtx context.Context, k *socket, req *hermes.TurnRequest) *hermes.TurnResult {
	if answers := k.take(req); len(answers) > 0 {
		// The session has set PreviousRecord by now when req continues
		// the connection's kept response.
		var err error
		if req.Approvals, err = s.approvals(answers, req, req.Previous, req.PreviousRecord); err != nil {
			k.refuse(err)
			return &hermes.TurnResult{Err: hermes.AsError(err)}
		}
	}
	req.ResponseID = s.opts.NewID("resp_")
	events, cancel, err := s.submitIn(connCtx, req)
	if err != nil {
		k.refuse(err)
		return &hermes.TurnResult{Err: hermes.AsError(err)}
	}
	sw := newSSEWriter(nil, nil, s.opts.StreamWriteTimeout, cancel)
	sw.ws = k
	defer sw.release() // run is over: nothing encodes on sw after it
	st := &responseStream{s: s, req: req, events: events, cancel: cancel}
	st.run(sw)
	if sw.failed {
		// A message cut short leaves the connection unusable: close it, and
		// the reader ends the session.
		_ = k.c.Close()
	}
	if sw.result == nil {
		return &hermes.TurnResult{Err: errSocketGone}
	}
	return sw.result
}
