package persistence

import (
	"fmt"

	"github.com/goccy/go-json"

	hermes "github.com/hermesd/hermesd"
)

// formatVersion is the first byte of every record, so a later format can be
// told apart from this one without guessing from the JSON.
const formatVersion = 1

// encode returns v as one record: the format version byte, then JSON.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+1)
	out = append(out, formatVersion)
	return append(out, b...), nil
}

// decode fills v from a record written by encode. The bytes come from disk
// and may be damaged, so every failure (including a panic in the JSON
// decoder, which is third-party code fed arbitrary bytes) becomes an
// EInternal error naming the record instead of taking the server down.
func decode(kind, id string, data []byte, v any) (err error) {
	corrupt := func(format string, args ...any) *hermes.Error {
		return &hermes.Error{
			Code:    hermes.EInternal,
			Message: fmt.Sprintf("stored %s %q is corrupt: %s", kind, id, fmt.Sprintf(format, args...)),
		}
	}
	if len(data) == 0 {
		return corrupt("empty record")
	}
	if data[0] != formatVersion {
		return corrupt("unknown format version %d", data[0])
	}
	defer func() {
		if r := recover(); r != nil {
			err = corrupt("decoder panic: %v", r)
		}
	}()
	if err := json.Unmarshal(data[1:], v); err != nil {
		e := corrupt("%v", err)
		e.Cause = err
		return e
	}
	return nil
}

// decodeResponse decodes the response record stored under id. A record
// that names another id is as corrupt as one that does not parse.
func decodeResponse(id string, data []byte) (*hermes.StoredResponse, error) {
	var r hermes.StoredResponse
	if err := decode("response", id, data, &r); err != nil {
		return nil, err
	}
	if r.ID != id {
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored response %q is corrupt: it names id %q", id, r.ID)}
	}
	return &r, nil
}

// decodeConversation decodes the conversation record stored under id.
func decodeConversation(id string, data []byte) (*Conversation, error) {
	var c Conversation
	if err := decode("conversation", id, data, &c); err != nil {
		return nil, err
	}
	if c.ID != id {
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored conversation %q is corrupt: it names id %q", id, c.ID)}
	}
	return &c, nil
}

// node is the record of one response's own items, kept under its id in the
// items bucket apart from the response record: the record goes when the
// response is evicted, the items stay while a retained descendant needs
// them. Items holds, in transcript order, the history inherited inline
// (only when the parent was gone before the response was written, so the
// transcript is whole without it), the conversation items the turn
// consumed, its input and its output.
//
// A spliced node (Skip > 0, written by a compaction that kept the most
// recent turns verbatim) has a parent too: its transcript is
// Items[:Inherited] (the head: the first user message, the compaction
// item), then its parent's transcript from item Skip on, then its own.
type node struct {
	Skip      int              `json:"skip,omitempty"`
	Inherited int              `json:"inherited,omitempty"` // Items[:Inherited] came from vanished ancestors, or is a splice's head
	In        int              `json:"in,omitempty"`        // Items[In:Out] is the input
	Out       int              `json:"out,omitempty"`       // Items[Out:] is the output
	Items     []hermes.Message `json:"items,omitempty"`
	// Images are the items' images kept apart, by content (blobs.go);
	// their parts' ImageURL is empty in the record.
	Images []imageRef `json:"images,omitempty"`
}

func (n *node) consumed() []hermes.Message { return orNil(n.Items[n.Inherited:n.In]) }
func (n *node) input() []hermes.Message    { return orNil(n.Items[n.In:n.Out]) }
func (n *node) output() []hermes.Message   { return orNil(n.Items[n.Out:]) }

// orNil keeps "none" as nil, as a record without the field decodes.
func orNil(m []hermes.Message) []hermes.Message {
	if len(m) == 0 {
		return nil
	}
	return m[:len(m):len(m)]
}

// newNode lays out r's own items, after inherited ones.
func newNode(inherited []hermes.Message, r *hermes.StoredResponse) *node {
	items := make([]hermes.Message, 0, len(inherited)+len(r.Consumed)+len(r.Input)+len(r.Output))
	items = append(items, inherited...)
	items = append(items, r.Consumed...)
	in := len(items)
	items = append(items, r.Input...)
	out := len(items)
	items = append(items, r.Output...)
	return &node{Inherited: len(inherited), In: in, Out: out, Items: items}
}

// decodeNode decodes the items stored under id; offsets that do not fit
// the items are as corrupt as bytes that do not parse.
func decodeNode(id string, data []byte) (*node, error) {
	var n node
	if err := decode("items of response", id, data, &n); err != nil {
		return nil, err
	}
	if n.Skip < 0 || n.Inherited < 0 || n.In < n.Inherited || n.Out < n.In || n.Out > len(n.Items) {
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored items of response %q are corrupt: offsets %d/%d/%d for %d items",
				id, n.Inherited, n.In, n.Out, len(n.Items))}
	}
	return &n, nil
}

// appendNode appends the transcript items stored under id to out, the
// transcript of its parent (nil when it has none): a spliced node's head
// replaces the first Skip items of out.
func appendNode(out []hermes.Message, id string, n *node) ([]hermes.Message, error) {
	if n.Skip == 0 {
		return append(out, n.Items...), nil
	}
	if n.Skip > len(out) {
		return nil, &hermes.Error{Code: hermes.EInternal,
			Message: fmt.Sprintf("stored items of response %q are corrupt: they skip %d items of a parent transcript of %d", id, n.Skip, len(out))}
	}
	spliced := make([]hermes.Message, 0, n.Inherited+len(out)-n.Skip+len(n.Items)-n.Inherited)
	spliced = append(spliced, n.Items[:n.Inherited]...)
	spliced = append(spliced, out[n.Skip:]...)
	return append(spliced, n.Items[n.Inherited:]...), nil
}
