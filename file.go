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
