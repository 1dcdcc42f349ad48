package docs

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/ledongthuc/pdf"
)

// maxTreeDepth and the node budget bound the walk of a PDF's page tree: a
// tree whose kids lead back to their parent would otherwise be walked for
// ever (the reader's own Page(n) loops on one).
const maxTreeDepth = 32

// extractPDF reads a PDF's text layer, page by page, within lim; it runs
// in a worker process (worker.go). A PDF the reader cannot open
// (encrypted, malformed, a header it does not know) is an EInvalid error,
// as is one stream that decompresses past the content budget on its own
// or a font's ToUnicode map past the CMap budget (compression bombs); one
// whose pages hold no text is read as empty, with a note saying so, so
// the model is told rather than sent nothing.
func extractPDF(d *Document, data []byte, lim Limits) (err error) {
	defer func() {
		// The reader reports some malformed input by panicking.
		if p := recover(); p != nil {
			err = pdfError(fmt.Sprint(p))
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return pdfError(err.Error())
	}
	pages := collectPages(r.Trailer().Key("Root").Key("Pages"), lim.MaxPages+1)
	d.Pages = max(r.NumPage(), len(pages))
	if len(pages) > lim.MaxPages {
		pages = pages[:lim.MaxPages]
	}
	budget := lim.MaxContentBytes
	var b strings.Builder
	for i, p := range pages {
		if err := checkFonts(p, lim.MaxCMapBytes); err != nil {
			return err
		}
		n, fits, err := contentSize(p, budget, lim.MaxContentBytes)
		if err != nil {
			return err
		}
		if !fits {
			d.Notes = append(d.Notes, fmt.Sprintf("reading stopped at page %d: the pages' content passed %d bytes uncompressed", i+1, lim.MaxContentBytes))
			break
		}
		budget -= n
		text, err := p.GetPlainText(nil)
		d.Read = i + 1
		if err != nil {
			d.Notes = append(d.Notes, fmt.Sprintf("page %d could not be read", i+1))
			continue
		}
		if text = strings.TrimSpace(text); text != "" {
			if b.Len() > 0 {
				b.WriteString("\n\n")
			}
			b.WriteString(text)
		}
		if b.Len() > lim.MaxTextBytes {
			break // cut to the limit below, with a note
		}
	}
	d.Text = b.String()
	if d.Read < d.Pages {
		d.Notes = append(d.Notes, fmt.Sprintf("only the first %d of %d pages were read", d.Read, d.Pages))
	}
	if strings.TrimSpace(d.Text) == "" {
		d.Notes = append(d.Notes, "this PDF has no text layer (it is probably scanned or made of images), so its text could not be read; ask for a text version or describe what it shows")
	}
	return nil
}

// pdfError is why a worker could not read a PDF; the server turns it into
// badPDF's 400 naming the file, which the worker does not know.
type pdfError string

func (e pdfError) Error() string { return string(e) }

func badPDF(name, why string) error {
	if strings.Contains(why, "password") || strings.Contains(why, "encrypt") {
		why = "it is encrypted"
	}
	return &hermes.Error{Code: hermes.EInvalid, Param: "file",
		Message: fmt.Sprintf("File '%s' could not be read as a PDF: %s", name, clip(why, 200))}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// collectPages walks the page tree in order and returns at most limit
// pages, visiting a bounded number of nodes at a bounded depth.
func collectPages(root pdf.Value, limit int) []pdf.Page {
	var out []pdf.Page
	nodes := 4*limit + 1000
	var walk func(v pdf.Value, depth int)
	walk = func(v pdf.Value, depth int) {
		if len(out) >= limit || nodes <= 0 || depth > maxTreeDepth {
			return
		}
		nodes--
		switch v.Key("Type").Name() {
		case "Page":
			out = append(out, pdf.Page{V: v})
		case "Pages":
			kids := v.Key("Kids")
			for i := 0; i < kids.Len() && len(out) < limit && nodes > 0; i++ {
				walk(kids.Index(i), depth+1)
			}
		}
	}
	walk(root, 0)
	return out
}

// contentSize is how many bytes a page's content streams decompress to,
// counted up to budget; fits is false past it. Reading them first bounds
// the work a compression bomb can cause before the text is extracted. A
// single stream that passes the whole content budget (max) by itself is
// not a long document but a bomb, and the file is refused.
func contentSize(p pdf.Page, budget, max int64) (n int64, fits bool, err error) {
	c := p.V.Key("Contents")
	streams := []pdf.Value{c}
	if c.Kind() == pdf.Array {
		streams = streams[:0]
		for i := 0; i < c.Len(); i++ {
			streams = append(streams, c.Index(i))
		}
	}
	for _, s := range streams {
		if s.Kind() != pdf.Stream {
			continue
		}
		m, err := streamSize(s, budget-n)
		if err != nil {
			return n, false, err
		}
		n += m
		if n > budget {
			// Past what is left: measure it on to the whole budget to
			// tell a long document from a bomb.
			if all, err := streamSize(s, max); err != nil || all > max {
				return n, false, bomb("a page's content", max)
			}
			return n, false, nil
		}
	}
	return n, true, nil
}

// checkFonts refuses a page whose fonts' ToUnicode maps decompress past
// limit: the reader parses each whole into memory, entry by entry.
func checkFonts(p pdf.Page, limit int64) error {
	fonts := p.Resources().Key("Font")
	for _, k := range fonts.Keys() {
		tu := fonts.Key(k).Key("ToUnicode")
		if tu.Kind() != pdf.Stream {
			continue
		}
		if n, err := streamSize(tu, limit); err != nil || n > limit {
			if err != nil {
				return err
			}
			return bomb("a font's ToUnicode map", limit)
		}
	}
	return nil
}

// maxPredictorColumns bounds a stream's /DecodeParms /Columns: the reader
// allocates two rows of that many bytes before reading anything.
const maxPredictorColumns = 1 << 16

// streamSize is how many bytes stream s decompresses to, counted up to
// limit+1.
func streamSize(s pdf.Value, limit int64) (int64, error) {
	params := []pdf.Value{s.Key("DecodeParms")}
	if params[0].Kind() == pdf.Array {
		params = params[:0]
		for i := 0; i < s.Key("DecodeParms").Len(); i++ {
			params = append(params, s.Key("DecodeParms").Index(i))
		}
	}
	for _, p := range params {
		if c := p.Key("Columns").Int64(); c < 0 || c > maxPredictorColumns {
			return 0, pdfError(fmt.Sprintf("a stream declares %d columns", c))
		}
	}
	rd := s.Reader()
	defer rd.Close()
	return io.Copy(io.Discard, io.LimitReader(rd, limit+1))
}

func bomb(what string, limit int64) error {
	return pdfError(fmt.Sprintf("%s expands past %d bytes when decompressed; it is refused as a possible compression bomb", what, limit))
}
