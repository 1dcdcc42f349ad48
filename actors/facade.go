package actors

import (
	"context"
	"errors"
	"sync"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// errCancelledByClient marks a background turn stopped through Cancel.
var errCancelledByClient = &hermes.Error{Code: hermes.ECancelled, Message: "the response was cancelled"}

// Response returns a stored response.
func (r *Runtime) Response(id string) (*hermes.StoredResponse, error) {
	if r.store == nil {
		return nil, hermes.Errorf(hermes.ENotFound, "Response with id '%s' not found.", id)
	}
	rec, err := r.store.Response(id)
	if hermes.ErrorCode(err) == hermes.ENotFound {
		return nil, hermes.Errorf(hermes.ENotFound, "Response with id '%s' not found.", id)
	}
	return rec, err
}

// Transcript returns the whole transcript a stored response ends.
func (r *Runtime) Transcript(id string) ([]hermes.Message, error) {
	if r.store == nil {
		return nil, hermes.Errorf(hermes.ENotFound, "Response with id '%s' not found.", id)
	}
	return r.store.Transcript(id)
}

// InputTokens estimates the prompt tokens the first model call of req
// would send: the system prompt, the history it continues, its input (its
// files read into text, as a turn reads them) and the tool specs (POST
// /v1/responses/input_tokens). Nothing is stored.
func (r *Runtime) InputTokens(ctx context.Context, req *hermes.TurnRequest) (int, error) {
	msgs, err := r.wouldSend(ctx, req)
	if err != nil {
		return 0, err
	}
	system, specs, _ := r.agent.prompt(req)
	return r.agent.estimate(system, specs, msgs), nil
}

// wouldSend returns the messages req's turn would start from, without
// running it: the history it continues, then its input with its files
// read into text (not saved in the workspace: no turn runs).
func (r *Runtime) wouldSend(ctx context.Context, req *hermes.TurnRequest) ([]hermes.Message, error) {
	if err := r.readFiles(ctx, req.Input, false); err != nil {
		return nil, err
	}
	_, in, err := r.route(req)
	if err != nil {
		return nil, err
	}
	history, _, _, err := r.history(in, nil)
	if err != nil {
		return nil, err
	}
	return append(history[:len(history):len(history)], req.Input...), nil
}

// Compact compacts the conversation req would continue plus its input
// (POST /v1/responses/compact) and returns the compacted items; nothing is
// stored. ctx bounds the summarising calls, as does the turn timeout.
func (r *Runtime) Compact(ctx context.Context, req *hermes.TurnRequest) ([]hermes.Message, hermes.Usage, error) {
	msgs, err := r.wouldSend(ctx, req)
	if err != nil {
		return nil, hermes.Usage{}, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.opts.TurnTimeout, errTurnTimeout)
	defer cancel()
	out, usage, cerr := r.agent.Compact(ctx, req, msgs)
	if cerr != nil {
		return nil, usage, cerr
	}
	return out, usage, nil
}

// OpenCompaction returns the summary sealed in a compaction item's
// encrypted content, or an EInvalid error when this server did not seal it
// or it was altered.
func (r *Runtime) OpenCompaction(enc string) (string, error) {
	var summary string
	err := errors.New("compaction items are not enabled")
	if r.opts.OpenCompaction != nil {
		summary, err = r.opts.OpenCompaction(enc)
	}
	if err != nil {
		return "", &hermes.Error{Code: hermes.EInvalid, Param: "input",
			Message: "The encrypted content of a compaction item could not be verified: it was not produced by this server or was altered.", Cause: err}
	}
	return summary, nil
}

// SealReasoning returns reasoning sealed for a reasoning item's
// encrypted_content, the same every time for the same text; "" when
// sealing is not enabled.
func (r *Runtime) SealReasoning(reasoning string) string {
	if r.opts.SealReasoning == nil {
		return ""
	}
	return r.opts.SealReasoning(reasoning)
}

// OpenReasoning returns the reasoning sealed in a reasoning item's
// encrypted content; ok is false when this server did not seal it (another
// provider's item), it was altered, or sealing is not enabled.
func (r *Runtime) OpenReasoning(enc string) (text string, ok bool) {
	if r.opts.OpenReasoning == nil {
		return "", false
	}
	text, err := r.opts.OpenReasoning(enc)
	return text, err == nil
}

// DeleteResponse deletes a stored response; conversations pointing at it
// fall back to what survives.
func (r *Runtime) DeleteResponse(id string) error {
	if _, err := r.Response(id); err != nil {
		return err
	}
	return r.commit(persistence.DeleteResponse(id))
}

// Save writes a response record as it is: the queued record of a
// background response, shown until its turn stores its own.
func (r *Runtime) Save(rec *hermes.StoredResponse) error {
	return r.commit(persistence.PutResponse(rec))
}

// Conversation returns a stored conversation.
func (r *Runtime) Conversation(id string) (*hermes.Conversation, error) {
	c, err := r.store.Conversation(id)
	if hermes.ErrorCode(err) == hermes.ENotFound {
		return nil, conversationNotFound(id)
	}
	return c, err
}

// CreateConversation stores a new conversation record.
func (r *Runtime) CreateConversation(c *hermes.Conversation) error {
	return r.commit(persistence.PutConversation(c))
}

// UpdateConversation changes a stored conversation in place (metadata,
// items added), atomically with respect to turns consuming its items, and
// returns the result.
func (r *Runtime) UpdateConversation(id string, f func(c *hermes.Conversation)) (*hermes.Conversation, error) {
	if _, err := r.Conversation(id); err != nil {
		return nil, err
	}
	if err := r.commit(persistence.UpdateConversation(id, f)); err != nil {
		return nil, err
	}
	return r.Conversation(id)
}

// DeleteConversation deletes a conversation record.
func (r *Runtime) DeleteConversation(id string) error {
	if _, err := r.Conversation(id); err != nil {
		return err
	}
	return r.commit(persistence.DeleteConversation(id))
}

// background tracks background turns from Submit until they end, so Cancel
// can stop one whether it is running or still queued behind another turn.
type background struct {
	mu    sync.Mutex // guards turns
	turns map[string]*bgTurn
}

type bgTurn struct {
	key       string                  // the conversation it is queued on
	cancel    context.CancelCauseFunc // set when the turn starts
	cancelled bool                    // Cancel came first: stop at start
	done      chan struct{}           // closed once the final record is stored
}

func (b *background) register(id, key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.turns == nil {
		b.turns = make(map[string]*bgTurn)
	}
	b.turns[id] = &bgTurn{key: key, done: make(chan struct{})}
}

// start attaches the running turn's cancel func, and applies a cancel that
// arrived while the turn was queued.
func (b *background) start(id string, cancel context.CancelCauseFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.turns[id]; t != nil {
		t.cancel = cancel
		if t.cancelled {
			cancel(errCancelledByClient)
		}
	}
}

func (b *background) finish(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.turns[id]; t != nil {
		close(t.done)
		delete(b.turns, id)
	}
}

// finishBackground ends id's tracking once its final record is stored.
// In cluster mode every node hears of it: one that forwarded a cancel of
// it answers then, even when the response ended on its own just before
// the cancel reached its node.
func (r *Runtime) finishBackground(id string) {
	r.bg.finish(id)
	if r.opts.Cluster != nil {
		if err := r.opts.Cluster.Finished(id); err != nil {
			r.log.Warn("announcing a background response's end failed", "response", id, "err", err)
		}
	}
}

// Cancel stops a background response, running or queued, on this node
// or (cluster mode) on the node running it. It returns a channel closed
// once the response's final (cancelled) record is stored, or false when
// no such response is under way.
func (r *Runtime) Cancel(id string) (<-chan struct{}, bool) {
	if done, ok := r.cancelLocal(id); ok {
		return done, true
	}
	return r.forwardCancel(id)
}

func (r *Runtime) cancelLocal(id string) (<-chan struct{}, bool) {
	b := &r.bg
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.turns[id]
	if t == nil {
		return nil, false
	}
	t.cancelled = true
	if t.cancel != nil {
		t.cancel(errCancelledByClient)
	} else {
		// Still queued: ask its conversation actor to drop it. Should it
		// start first, start applies the cancel instead.
		r.root.Send(r.dispatcher, cancelQueued{key: t.key, id: id})
	}
	return t.done, true
}

// skipTurn ends a queued turn that was cancelled before it ran: it stores
// the cancelled response (outside its conversation, which never saw it) and
// reports done.
func (r *Runtime) skipTurn(in *turnInput) {
	req := in.req
	defer r.finishBackground(req.ResponseID)
	res := hermes.TurnResult{ResponseID: req.ResponseID, Added: req.Input, Err: errCancelledByClient}
	rec := r.record(in, nil, "", nil, nil, &res)
	rec.Conversation = ""
	if r.store != nil {
		if err := r.commit(persistence.PutResponse(rec)); err != nil {
			r.log.Error("storing cancelled response failed", "response", rec.ID, "err", err)
		}
	}
	res.Record = rec
	r.release()
	req.Send(hermes.Event{Kind: hermes.EventDone, Result: &res})
}

// FailUnfinished marks failed, with code server_restarted, every stored
// response left queued or in_progress by an earlier process: nothing will
// run them, and a client polling one must not wait for ever. Call it at
// start, before serving. It returns how many it marked.
func (r *Runtime) FailUnfinished() (int, error) {
	if r.store == nil {
		return 0, nil
	}
	ids, err := r.store.Unfinished()
	if err != nil {
		return 0, err
	}
	ops := make([]persistence.Op, 0, len(ids))
	for _, id := range ids {
		if rec := r.unfinished(id, hermes.ERestarted, "the server restarted before this response finished; send it again"); rec != nil {
			ops = append(ops, persistence.PutResponse(rec))
		}
	}
	if len(ops) == 0 {
		return 0, nil
	}
	if err := r.commit(ops...); err != nil {
		return 0, err
	}
	return len(ops), nil
}

// Idempotency returns the stored entry for key, if any.
func (r *Runtime) Idempotency(key string) (*hermes.IdempotencyEntry, bool, error) {
	return r.store.Idempotency(key)
}

// SaveIdempotency stores an entry for key.
func (r *Runtime) SaveIdempotency(key string, e *hermes.IdempotencyEntry) error {
	return r.commit(persistence.PutIdempotency(key, e))
}

// flights lets concurrent requests with the same idempotency key run once:
// the first runs, the rest wait for it and then replay what it stored.
type flights struct {
	mu      sync.Mutex // guards m and waiting
	m       map[string]*flight
	waiting int
}

type flight struct {
	done    chan struct{}
	waiters int
}

// BeginFlight claims key. It returns a release func for the first caller;
// later callers get a channel closed when the first releases. In cluster
// mode the first caller of this node also takes the key's lease, waiting
// while a request with the key runs on another node, so the caller's
// next look at the stored entries finds that request's answer.
func (r *Runtime) BeginFlight(key string) (release func(), wait <-chan struct{}) {
	local, wait := r.beginLocalFlight(key)
	if local == nil || r.opts.Cluster == nil {
		return local, wait
	}
	ctx, cancel := context.WithTimeout(r.base, r.opts.TurnTimeout)
	defer cancel()
	lease, err := r.opts.Cluster.Acquire(ctx, idemLeaseKey(key), "", r.opts.MaxTurns)
	if err != nil {
		// Run anyway: a request is not refused because the cluster's
		// bookkeeping failed; only a duplicate on another node at this
		// very moment could then run twice.
		r.log.Warn("idempotency key lease not taken", "err", err)
		return local, nil
	}
	return func() { lease.Release(); local() }, nil
}

func (r *Runtime) beginLocalFlight(key string) (release func(), wait <-chan struct{}) {
	f := &r.flights
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		fl.waiters++
		f.waiting++
		return nil, fl.done
	}
	if f.m == nil {
		f.m = make(map[string]*flight)
	}
	fl := &flight{done: make(chan struct{})}
	f.m[key] = fl
	return func() {
		f.mu.Lock()
		delete(f.m, key)
		f.waiting -= fl.waiters
		f.mu.Unlock()
		close(fl.done)
	}, nil
}

// FlightWaiters is how many requests wait for an earlier one with the
// same idempotency key (a client retrying while its first request runs).
func (r *Runtime) FlightWaiters() int {
	f := &r.flights
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiting
}
