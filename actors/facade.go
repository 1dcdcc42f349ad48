package actors

import (
	"context"
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

// DeleteResponse deletes a stored response; conversations pointing at it
// fall back to what survives.
func (r *Runtime) DeleteResponse(id string) error {
	if _, err := r.Response(id); err != nil {
		return err
	}
	return r.commit(persistence.DeleteResponse(id))
}

// Save writes a response record (background status updates).
func (r *Runtime) Save(rec *hermes.StoredResponse) error {
	return r.commit(persistence.PutResponse(rec))
}

// Conversation returns a stored conversation.
func (r *Runtime) Conversation(id string) (*persistence.Conversation, error) {
	c, err := r.store.Conversation(id)
	if hermes.ErrorCode(err) == hermes.ENotFound {
		return nil, conversationNotFound(id)
	}
	return c, err
}

// CreateConversation stores a new conversation record.
func (r *Runtime) CreateConversation(c *persistence.Conversation) error {
	return r.commit(persistence.PutConversation(c))
}

// UpdateConversation changes a stored conversation in place (metadata,
// items added), atomically with respect to turns consuming its items, and
// returns the result.
func (r *Runtime) UpdateConversation(id string, f func(c *persistence.Conversation)) (*persistence.Conversation, error) {
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

// background tracks running background turns so Cancel can stop them.
type background struct {
	mu      sync.Mutex // guards cancels
	cancels map[string]context.CancelCauseFunc
}

func (b *background) add(id string, cancel context.CancelCauseFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancels == nil {
		b.cancels = make(map[string]context.CancelCauseFunc)
	}
	b.cancels[id] = cancel
}

func (b *background) remove(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.cancels, id)
}

func (b *background) cancel(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.cancels[id]
	if ok {
		c(errCancelledByClient)
	}
	return ok
}

// Cancel stops a running background response. It reports false when no
// such response is running (it finished, or never was in the background).
func (r *Runtime) Cancel(id string) bool { return r.bg.cancel(id) }

// Idempotency returns the stored entry for key, if any.
func (r *Runtime) Idempotency(key string) (*persistence.IdemEntry, bool, error) {
	return r.store.Idempotency(key)
}

// SaveIdempotency stores an entry for key.
func (r *Runtime) SaveIdempotency(key string, e *persistence.IdemEntry) error {
	return r.commit(persistence.PutIdempotency(key, e))
}

// flights lets concurrent requests with the same idempotency key run once:
// the first runs, the rest wait for it and then replay what it stored.
type flights struct {
	mu sync.Mutex // guards m
	m  map[string]chan struct{}
}

// Begin claims key. It returns a release func for the first caller; later
// callers get a channel closed when the first releases.
func (r *Runtime) BeginFlight(key string) (release func(), wait <-chan struct{}) {
	f := &r.flights
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.m[key]; ok {
		return nil, ch
	}
	if f.m == nil {
		f.m = make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	f.m[key] = ch
	return func() {
		f.mu.Lock()
		delete(f.m, key)
		f.mu.Unlock()
		close(ch)
	}, nil
}
