package hermes

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. httpfront maps each to an HTTP status and an OpenAI error
// envelope in one place; nothing else decides statuses.
const (
	EInvalid          = "invalid_request_error"
	EUnauthorized     = "invalid_api_key"
	ENotFound         = "not_found"
	EMethodNotAllowed = "method_not_allowed" // the path exists, not for this method
	EForbidden        = "forbidden"          // refused whatever the body, as from an origin not allowed
	EConflict         = "conflict"
	ETooLarge         = "body_too_large"
	ERateLimited      = "rate_limit_exceeded"
	EUpstream         = "upstream_error"
	ETimeout          = "timeout"
	ECancelled        = "cancelled"
	EInternal         = "server_error"
	EUnavailable      = "unavailable"
	EPreviousNotFound = "previous_response_not_found"
	EHeaderTooLarge   = "request_header_too_large"
	ERequestTimeout   = "request_timeout" // the client did not send its request in time
	// EContextLength: the prompt cannot fit the model's context window
	// (OpenAI's code, answered 400).
	EContextLength = "context_length_exceeded"
	// EModelNotVision: the request carries images and the model is marked
	// as not accepting them (answered 400 before any upstream call).
	EModelNotVision = "model_not_vision_capable"
	// EStore: a write to the store failed, timed out or was cut short, so
	// what the request produced is not kept.
	EStore = "store_error"
	// ERestarted marks a background response the server stopped before it
	// finished: at start, records left queued or in_progress become failed
	// with this code.
	ERestarted = "server_restarted"
	// EModelNotFound: the request names a model the server does not have
	// (only when API_SERVER_UNKNOWN_MODEL=error; else the default answers).
	EModelNotFound = "model_not_found"
	// EConversationBusy (cluster mode): the turn's node lost the
	// conversation's lease while the turn ran — it stalled past the lease's
	// expiry and another node took it — so the turn's answer was not
	// stored, lest it overwrite a newer turn (answered 409).
	EConversationBusy = "conversation_busy"
	// ENodeLost marks a response whose node died while producing it
	// (cluster mode): its lease expired and it was marked failed.
	ENodeLost = "node_lost"
)

// Error is a domain error with a machine-readable code, a message meant for
// the client, and the request field at fault when there is one.
type Error struct {
	Code    string
	Message string
	Param   string
	// RetryAfter, when set, is passed to the client as a Retry-After hint.
	RetryAfter time.Duration
	// Cause is the underlying error, for logs only; it never reaches a client.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParam returns an EInvalid error naming the request field at fault.
func InvalidParam(param, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Param: param, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EInternal for errors that are not *Error,
// and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// AsError returns err as an *Error, wrapping foreign errors as EInternal with
// a generic message so internals never leak to a client.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: EInternal, Message: "internal error", Cause: err}
}
