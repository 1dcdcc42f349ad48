package persistence

import (
	"fmt"

	hermes "github.com/hermesd/hermesd"
)

// OpSpec is an Op as another implementation of the store (the PostgreSQL
// one) reads it. Records are already encoded with this package's codec,
// so every store keeps the same bytes and decodes them the same way.
type OpSpec struct {
	Kind OpKind
	// ID is the response id, conversation id or idempotency key.
	ID string

	// PutResponse: the record without items, the response's own items,
	// the parent those continue, the conversation it belongs to, its
	// status.
	Record       []byte
	Items        []byte
	Parent       string
	Conversation string
	Status       hermes.Status

	Conv   *Conversation       // PutConversation
	Idem   *IdemEntry          // PutIdempotency
	Update func(*Conversation) // UpdateConversation
	Epoch  int64               // Fence: the lease epoch the write requires; ID is the lease key

	op Op
}

// Spec checks o as Apply does and returns what it writes; a bad op is the
// error Apply would give it (wrap it with OpError).
func (o Op) Spec() (OpSpec, error) {
	if err := o.check(); err != nil {
		return OpSpec{}, err
	}
	items := o.node
	if len(o.blobs) > 0 {
		// Another store keeps no blobs: it gets the images inline.
		n := o.ownNode()
		if o.parent == "" {
			n = newNode(o.inherit, o.own)
		}
		var err error
		if items, err = encode(n); err != nil {
			return OpSpec{}, &hermes.Error{Code: hermes.EInternal, Message: "cannot encode record", Cause: err}
		}
	}
	return OpSpec{Kind: o.kind, ID: o.id, Record: o.rec, Items: items, Parent: o.parent,
		Conversation: o.respConv, Status: o.status, Conv: o.conv, Idem: o.idem, Update: o.update, Epoch: o.epoch, op: o}, nil
}

// InlineItems is the response's items with the history it was given
// before them: what to store, with no parent, when the parent's items are
// gone by the time the response is written.
func (s OpSpec) InlineItems() ([]byte, error) {
	if s.op.parent == "" {
		return s.Items, nil
	}
	return encode(newNode(s.op.inherit, s.op.own))
}

// EncodeRecord encodes v as every store keeps its records: a format
// byte, then JSON.
func EncodeRecord(v any) ([]byte, error) { return encode(v) }

// DecodeResponse decodes a response record stored under id.
func DecodeResponse(id string, data []byte) (*hermes.StoredResponse, error) {
	return decodeResponse(id, data)
}

// DecodeConversation decodes a conversation record stored under id.
func DecodeConversation(id string, data []byte) (*Conversation, error) {
	return decodeConversation(id, data)
}

// DecodeIdempotency decodes an idempotency entry stored under key.
func DecodeIdempotency(key string, data []byte) (*IdemEntry, error) {
	var e IdemEntry
	if err := decode("idempotency entry", key, data, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// FillItems sets r's Consumed, Input and Output from the items stored
// under r.ID.
func FillItems(r *hermes.StoredResponse, data []byte) error {
	n, err := decodeNode(r.ID, data)
	if err != nil {
		return err
	}
	r.Consumed, r.Input, r.Output = n.consumed(), n.input(), n.output()
	return nil
}

// AppendItems appends the transcript items stored under id to out, the
// transcript of its parent (nil when it has none): its inherited
// history, if any, then its own; a spliced record's head replaces the
// start of out.
func AppendItems(out []hermes.Message, id string, data []byte) ([]hermes.Message, error) {
	n, err := decodeNode(id, data)
	if err != nil {
		return nil, err
	}
	return appendNode(out, id, n)
}

// DecodeFile decodes a file record stored under id.
func DecodeFile(id string, data []byte) (*hermes.File, error) {
	var f hermes.File
	if err := decode("file", id, data, &f); err != nil {
		return nil, err
	}
	if f.ID != id {
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored file %q is corrupt: it names id %q", id, f.ID)}
	}
	return &f, nil
}

// FileNotFound is the error for a file id the store does not hold.
func FileNotFound(id string) error { return fileNotFound(id) }
