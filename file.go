package hermes

import "time"

// File is the record of a file uploaded through the Files API. Its bytes
// live beside the record in the file store; a turn reads them by ID when a
// request names the file (file_id).
type File struct {
	ID       string    `json:"id"` // file-…
	Bytes    int64     `json:"bytes"`
	Created  time.Time `json:"created"`
	Filename string    `json:"filename"` // as the client named it, cleaned; never a path
	Purpose  string    `json:"purpose"`
}

// FileInput is a file a request carries in a message: its bytes
// (file_data), a URL to fetch them from (file_url) or the id of an
// uploaded file (file_id); exactly one is set.
type FileInput struct {
	Filename string `json:"filename,omitempty"`
	Data     []byte `json:"data,omitempty"`
	// MediaType is what a data URL declared ("" when it was bare base64).
	MediaType string `json:"media_type,omitempty"`
	URL       string `json:"url,omitempty"`
	ID        string `json:"id,omitempty"`
}
