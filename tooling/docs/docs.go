package docs

import (
	"bytes"
	"fmt"
	"mime"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	hermes "github.com/hermesd/hermesd"
)

// Limits bound what one file may cost a turn: the model reads every byte
// of its text in every later call.
type Limits struct {
	// MaxTextBytes cuts a file's text (default 256 KiB, about 64k tokens).
	MaxTextBytes int
	// MaxPages is how many pages of a PDF are read (default 100).
	MaxPages int
	// MaxContentBytes bounds the decompressed page content a PDF may make
	// the reader go through (default 64 MiB): a small file can inflate to
	// gigabytes.
	MaxContentBytes int64
	// MaxCMapBytes bounds one font's decompressed ToUnicode map (default
	// 4 MiB): the reader holds all its entries in memory.
	MaxCMapBytes int64
	// MaxPDFMemory is the heap a PDF worker may use (default 512 MiB), and
	// MaxPDFTime how long it may take, waiting for a free worker included
	// (default 30s); past either the file is refused.
	MaxPDFMemory int64
	MaxPDFTime   time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = 256 << 10
	}
	if l.MaxPages <= 0 {
		l.MaxPages = 100
	}
	if l.MaxContentBytes <= 0 {
		l.MaxContentBytes = 64 << 20
	}
	if l.MaxCMapBytes <= 0 {
		l.MaxCMapBytes = 4 << 20
	}
	if l.MaxPDFMemory <= 0 {
		l.MaxPDFMemory = 512 << 20
	}
	if l.MaxPDFTime <= 0 {
		l.MaxPDFTime = 30 * time.Second
	}
	return l
}

// Document is a file read into text.
type Document struct {
	Name string
	Kind string // "text" or "PDF"
	Text string
	// Pages is a PDF's page count; Read how many of them were read.
	Pages, Read int
	// Notes say what the model should know about the text: cut at the
	// limit, pages left out, no text layer.
	Notes []string
}

// textTypes are media types read as text besides text/*.
var textTypes = map[string]bool{"application/json": true, "application/xml": true, "application/yaml": true,
	"application/x-yaml": true, "application/javascript": true, "application/x-sh": true, "application/toml": true,
	"application/sql": true, "application/x-ndjson": true, "application/csv": true}

// sniffLen is how much of a file is checked for NUL bytes to call it
// binary, as git and grep do.
const sniffLen = 8 << 10

// Read reads a file into text. contentType is what the client or the
// server that sent it declared ("" when nothing did). A PDF is read by its
// text layer; a file declared as text, or with no NUL byte in its first
// 8 KiB (a UTF-16 byte-order mark excepted) and not declared as an image,
// sound, video or font, is read as text in its charset. Anything else (images, archives,
// office files) is an EInvalid error naming the file.
func Read(name string, data []byte, contentType string, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	media, _, _ := mime.ParseMediaType(contentType)
	d := &Document{Name: name}
	sniff := data[:min(len(data), sniffLen)]
	binary := bytes.IndexByte(sniff, 0) >= 0 && !bytes.HasPrefix(data, []byte("\xff\xfe")) && !bytes.HasPrefix(data, []byte("\xfe\xff"))
	switch {
	case bytes.HasPrefix(data, []byte("%PDF-")) || media == "application/pdf" || strings.EqualFold(path.Ext(name), ".pdf"):
		d.Kind = "PDF"
		if err := readPDF(d, data, lim); err != nil {
			return nil, err
		}
	case !binary && !mediaPrefixes(media, "image/", "audio/", "video/", "font/"),
		strings.HasPrefix(media, "text/") || textTypes[media] || strings.HasSuffix(media, "+json") || strings.HasSuffix(media, "+xml"):
		d.Kind = "text"
		d.Text = DecodeText(data, contentType)
		if strings.ContainsRune(d.Text, 0) {
			return nil, unreadable(name, "a binary file")
		}
	default:
		kind := "a binary file"
		if media != "" && media != "application/octet-stream" {
			kind = "a " + media + " file"
		}
		return nil, unreadable(name, kind)
	}
	d.cut(lim.MaxTextBytes)
	return d, nil
}

func mediaPrefixes(media string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(media, p) {
			return true
		}
	}
	return false
}

func unreadable(name, kind string) error {
	return &hermes.Error{Code: hermes.EInvalid, Param: "file",
		Message: fmt.Sprintf("File '%s' is %s; text files (plain text, Markdown, CSV, JSON, YAML, code) and PDFs can be read", name, kind)}
}

// cut shortens the text to at most n bytes, on a rune boundary, saying so.
func (d *Document) cut(n int) {
	if len(d.Text) <= n {
		return
	}
	total := len(d.Text)
	i := n
	for i > 0 && !utf8.RuneStart(d.Text[i]) {
		i--
	}
	d.Text = d.Text[:i]
	d.Notes = append(d.Notes, fmt.Sprintf("the text was cut: only its first %d of %d bytes are shown", i, total))
}

// Block renders the document for the model: a header naming the file
// (and, when savedAt is set, where it lies in the workspace), its text,
// and a closing line, so several files in one message stay apart.
func (d *Document) Block(savedAt string) string {
	var b strings.Builder
	b.WriteString("--- file: ")
	b.WriteString(d.Name)
	if d.Kind == "PDF" {
		fmt.Fprintf(&b, " (PDF, %d pages)", d.Pages)
	}
	b.WriteString(" ---\n")
	if savedAt != "" {
		fmt.Fprintf(&b, "[saved in the workspace at %s; the file tools and the terminal can work on it]\n", savedAt)
	}
	for _, n := range d.Notes {
		fmt.Fprintf(&b, "[%s]\n", n)
	}
	b.WriteString(d.Text)
	if !strings.HasSuffix(d.Text, "\n") {
		b.WriteByte('\n')
	}
	b.WriteString("--- end of file: ")
	b.WriteString(d.Name)
	b.WriteString(" ---")
	return b.String()
}
