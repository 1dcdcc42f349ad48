package httpfront

import (
	"strconv"

	"github.com/hermesd/hermesd/internal/jsonenc"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string (jsonenc.AppendString: the SSE
// hot path builds frames by appending rather than reflecting).
func appendString(b []byte, s string) []byte { return jsonenc.AppendString(b, s) }

// appendNullString appends s as a JSON string, or null when empty.
func appendNullString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }
