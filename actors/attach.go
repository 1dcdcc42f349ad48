package actors

import (
	"context"
	"net/url"
	"path"
	"strings"
	"unicode"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling/docs"
)

// Attachments read the files a request's messages carry (file_data,
// file_url, file_id) into text blocks before its turn starts, so the
// model, the store and every later turn see text, never the bytes.
type Attachments struct {
	// Files reads uploaded files by id (persistence.Files).
	Files interface {
		ReadFile(id string, limit int64) (*hermes.File, []byte, error)
	}
	// Fetch gets a file_url's bytes and Content-Type, through the web
	// tools' SSRF guard (web.Fetcher); nil refuses file_url.
	Fetch func(ctx context.Context, url string, limit int64) ([]byte, string, error)
	// Save, when set (HERMES_UPLOADS=workspace), also writes each file
	// into the workspace and returns its path there, which the model is
	// told.
	Save   func(name string, data []byte) (string, error)
	Limits docs.Limits
	// MaxFileBytes bounds one file read into a request: a file_id's file
	// or a file_url's body (default 32 MiB). file_data is bounded by the
	// request body limit.
	MaxFileBytes int64
}

// ReadFiles replaces, in place, every file part of msgs with a text part
// holding the file's text, headed by its name. A file that cannot be had
// or read is an error naming it, and nothing of the request runs.
func (r *Runtime) ReadFiles(ctx context.Context, msgs []hermes.Message) error {
	return r.readFiles(ctx, msgs, true)
}

// readFiles is ReadFiles; save false leaves the workspace alone
// (HERMES_UPLOADS), for requests that only measure or compact what a turn
// would send.
func (r *Runtime) readFiles(ctx context.Context, msgs []hermes.Message, save bool) error {
	for i := range msgs {
		m := &msgs[i]
		if !hasFile(m.Parts) {
			continue
		}
		a := r.opts.Attach
		if a == nil {
			return hermes.InvalidParam("file", "This server does not read files sent in messages")
		}
		parts := make([]hermes.Part, 0, len(m.Parts))
		for _, p := range m.Parts {
			if p.Type != "file" || p.File == nil {
				parts = append(parts, p)
				continue
			}
			block, err := a.read(ctx, p.File, save)
			if err != nil {
				return err
			}
			parts = append(parts, hermes.Part{Type: "file", Text: block})
		}
		m.Content = joinParts(parts)
		m.Parts = nil
		for k := range parts {
			if parts[k].Type == "file" {
				parts[k].Type = "text"
			}
			if parts[k].Type == "image_url" {
				m.Parts = parts // images stay parts; text-only content needs none
			}
		}
	}
	return nil
}

func hasFile(parts []hermes.Part) bool {
	for _, p := range parts {
		if p.Type == "file" {
			return true
		}
	}
	return false
}

// joinParts is the message's text: its text parts in order, a file's
// block set apart from what surrounds it by a blank line.
func joinParts(parts []hermes.Part) string {
	var b strings.Builder
	prevFile := false
	for _, p := range parts {
		if p.Type != "text" && p.Type != "file" {
			continue
		}
		file := p.Type == "file"
		if b.Len() > 0 && (file || prevFile) {
			b.WriteString("\n\n")
		}
		b.WriteString(p.Text)
		prevFile = file
	}
	return b.String()
}

func (a *Attachments) maxBytes() int64 {
	if a.MaxFileBytes > 0 {
		return a.MaxFileBytes
	}
	return 32 << 20
}

// read gets one file's bytes and renders its text block; save writes it
// into the workspace too when the server is set to.
func (a *Attachments) read(ctx context.Context, f *hermes.FileInput, save bool) (string, error) {
	name, data, ctype := f.Filename, f.Data, f.MediaType
	switch {
	case f.ID != "":
		if a.Files == nil {
			return "", hermes.InvalidParam("file_id", "This server keeps no uploaded files")
		}
		rec, b, err := a.Files.ReadFile(f.ID, a.maxBytes())
		if err != nil {
			return "", err
		}
		data = b
		if name == "" {
			name = rec.Filename
		}
	case f.URL != "":
		if a.Fetch == nil {
			return "", hermes.InvalidParam("file_url", "This server does not fetch file_url")
		}
		b, ct, err := a.Fetch(ctx, f.URL, a.maxBytes())
		if err != nil {
			return "", &hermes.Error{Code: hermes.EInvalid, Param: "file_url",
				Message: "The file at file_url could not be fetched: " + err.Error()}
		}
		data, ctype = b, ct
		if name == "" {
			name = urlName(f.URL)
		}
	}
	if name == "" {
		name = "file"
	}
	d, err := docs.Read(name, data, ctype, a.Limits)
	if err != nil {
		return "", err
	}
	saved := ""
	if a.Save != nil && save {
		if p, err := a.Save(name, data); err == nil {
			saved = p
		} else {
			d.Notes = append(d.Notes, "it could not be saved in the workspace: "+err.Error())
		}
	}
	return d.Block(saved), nil
}

// urlName is the last element of a URL's path, the name a file_url gives
// its file when the request names none.
func urlName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	b := path.Base(u.Path)
	if b == "." || b == "/" {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, b)
}
