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
