package docs

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
)

// DecodeText returns body as UTF-8, decoded from the charset the
// Content-Type, a byte-order mark or an HTML <meta> names. Without one,
// text that is valid UTF-8 is UTF-8 and anything else Windows-1252, the
// HTML5 default (so its curly quotes are not control characters).
func DecodeText(body []byte, contentType string) string {
	enc, name, certain := charset.DetermineEncoding(body, contentType)
	if !certain && utf8.Valid(body) || name == "utf-8" {
		// DetermineEncoding looks at the first 1 KB only, and a <meta> that
		// names a single-byte charset on a UTF-8 page is a common mistake.
		return strings.ToValidUTF8(strings.TrimPrefix(string(body), "\uFEFF"), "\uFFFD")
	}
	out, err := enc.NewDecoder().Bytes(body)
	if err != nil {
		return strings.ToValidUTF8(string(body), "\uFFFD")
	}
	return strings.TrimPrefix(string(out), "\uFEFF")
}
