package httpfront

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"

	hermes "github.com/hermesd/hermesd"
)

// Limits on the images of one request: each costs the model thousands of
// tokens and is kept in the transcript, so a request of hundreds of images
// is a mistake or an attack. 20 MB is what OpenAI accepts for one image.
const (
	maxImages     = 32
	maxImageBytes = 20 << 20
)

// imageDetails are the detail levels OpenAI's image parts take.
var imageDetails = map[string]bool{"": true, "auto": true, "low": true, "high": true}

// checkImages validates the images of a request's new input before any
// model sees them, and turns images given by file_id into data URLs of
// the uploaded file. param names the request field (messages or input).
func (s *Server) checkImages(msgs []hermes.Message, param string) error {
	n := 0
	for i := range msgs {
		for j := range msgs[i].Parts {
			p := &msgs[i].Parts[j]
			if p.Type != "image_url" {
				continue
			}
			n++
			if n > maxImages {
				return hermes.InvalidParam(param, "A request may carry at most %d images; this one has more.", maxImages)
			}
			if !imageDetails[p.Detail] {
				return hermes.InvalidParam(param, "Image %d: detail must be auto, low or high, not '%s'.", n, clipText(p.Detail, 40))
			}
			if p.FileID != "" {
				url, err := s.fileImage(p.FileID)
				if err != nil {
					e := hermes.AsError(err)
					e.Param = param
					return e
				}
				p.ImageURL = url
				continue
			}
			if err := checkImageURL(p.ImageURL); err != "" {
				return hermes.InvalidParam(param, "Image %d: %s", n, err)
			}
		}
	}
	return nil
}

// checkImageURL says what is wrong with an image URL, "" when nothing is:
// an http(s) URL the model's server fetches, or a base64 data URL of an
// image of at most maxImageBytes.
func checkImageURL(url string) string {
	lower := strings.ToLower(url[:min(len(url), 16)])
	switch {
	case strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://"):
		if len(url) > 8192 {
			return "the image URL is longer than 8192 characters."
		}
		return ""
	case strings.HasPrefix(lower, "data:"):
		meta, data, ok := strings.Cut(url[len("data:"):], ",")
		if !ok || !strings.HasPrefix(strings.ToLower(meta), "image/") || !strings.HasSuffix(strings.ToLower(meta), ";base64") {
			return "a data URL image must be data:image/<type>;base64,<data>."
		}
		if base64.StdEncoding.DecodedLen(len(data)) > maxImageBytes+3 {
			return "the image is larger than 20 MB."
		}
		return ""
	}
	return "image_url must be an http(s) URL or a data:image/…;base64 URL."
}

// fileImage reads an uploaded image file as a data URL.
func (s *Server) fileImage(id string) (string, error) {
	if s.opts.Files == nil {
		return "", hermes.Errorf(hermes.EInvalid, "Images by file_id need the Files API, which this server does not serve.")
	}
	r, f, err := s.opts.Files.Open(id)
	if err != nil {
		return "", hermes.Errorf(hermes.EInvalid, "Image file '%s' was not found.", clipText(id, 64))
	}
	defer r.Close()
	if f.Bytes > maxImageBytes {
		return "", hermes.Errorf(hermes.EInvalid, "Image file '%s' is larger than 20 MB.", f.ID)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	if err != nil {
		return "", &hermes.Error{Code: hermes.EInternal, Message: "reading an uploaded file failed", Cause: err}
	}
	ct := http.DetectContentType(b)
	if !strings.HasPrefix(ct, "image/") {
		return "", hermes.Errorf(hermes.EInvalid, "File '%s' is not an image (it reads as %s).", f.ID, ct)
	}
	return "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(b), nil
}
