package hermestest

import (
	"fmt"
	"strings"
)

// PDF writes a minimal valid PDF by hand: one page per entry of
// pages, each showing its text in Helvetica (a page whose text is "" has
// only a drawn line, no text layer). Offsets in the xref table are
// computed, so the reader finds every object. kids, when not empty,
// replaces the page tree's Kids array (to build hostile trees).
func PDF(pages []string, kids string) []byte {
	var objs []string
	objs = append(objs, "<< /Type /Catalog /Pages 2 0 R >>")
	n := len(pages)
	var refs []string
	for i := range pages {
		refs = append(refs, fmt.Sprintf("%d 0 R", 4+2*i))
	}
	if kids == "" {
		kids = "[" + strings.Join(refs, " ") + "]"
	}
	objs = append(objs, fmt.Sprintf("<< /Type /Pages /Kids %s /Count %d >>", kids, n))
	objs = append(objs, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	for _, text := range pages {
		objs = append(objs, fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 3 0 R >> >> >>", len(objs)+2))
		content := "0 0 m 100 100 l S"
		if text != "" {
			content = "BT /F1 12 Tf 72 700 Td (" + text + ") Tj ET"
		}
		objs = append(objs, fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
	}
	return RawPDF(objs, "0")
}

// RawPDF writes a PDF of objs, numbered from 1 (object 1 the catalog),
// with an xref table of computed offsets whose first object number is
// xrefStart ("0" for an honest file; a huge one for a hostile file).
// Objects may hold streams of any bytes.
func RawPDF(objs []string, xrefStart string) []byte {
	var b strings.Builder
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n%s %d\n0000000000 65535 f \n", xrefStart, len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return []byte(b.String())
}
