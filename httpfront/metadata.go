package httpfront

import (
	"unicode/utf8"

	hermes "github.com/hermesd/hermesd"
)

// OpenAI's limits on the metadata of a response or a conversation. Every
// pair is stored with the record and echoed on every read, so without them
// one request could store 100,000 keys (issue 10.9).
const (
	maxMetadataPairs    = 16
	maxMetadataKeyLen   = 64
	maxMetadataValueLen = 512
)

// checkMetadata refuses metadata beyond OpenAI's limits with 400 and param
// "metadata", in OpenAI's words. Lengths count characters, not bytes.
func checkMetadata(m map[string]string) error {
	if len(m) > maxMetadataPairs {
		return hermes.InvalidParam("metadata", "Invalid 'metadata': too many properties. Expected an object with at most %d properties, but got an object with %d properties instead.",
			maxMetadataPairs, len(m))
	}
	for k, v := range m {
		if n := utf8.RuneCountInString(k); n > maxMetadataKeyLen {
			return hermes.InvalidParam("metadata", "Invalid 'metadata': key too long. Expected a key with maximum length %d, but got a key with length %d instead.",
				maxMetadataKeyLen, n)
		}
		if n := utf8.RuneCountInString(v); n > maxMetadataValueLen {
			return hermes.InvalidParam("metadata", "Invalid 'metadata.%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.",
				k, maxMetadataValueLen, n)
		}
	}
	return nil
}
