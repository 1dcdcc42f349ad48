package docs

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
)

// onePage is a one-page PDF whose page shows content (a stream dictionary
// and its data) with font F1 given by font.
func onePage(contentDict, content, font string, extra ...string) []byte {
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d %s >>\nstream\n%s\nendstream", len(content), contentDict, content),
		font,
	}
	return hermestest.RawPDF(append(objs, extra...), "0")
}

func zlibbed(t *testing.T, data []byte) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.String()
}

// TestReadPDFBombs: small PDFs that expand hugely are refused with a 400
// naming the file and why, quickly, without the server's memory growing:
// a page's content and a font's ToUnicode map each a 4 KB double-Flate
// stream of 1 GiB; an xref table claiming two billion objects (the reader
// allocates for every one, and the Go runtime aborts the process it runs
// in); a ToUnicode map that turns each byte of the page into 60 KB of
// text; a predictor claiming 2^40 columns. Each runs in a PDF worker: the
// server process is never the one that grows.
func TestReadPDFBombs(t *testing.T) {
	gig, err := os.ReadFile("testdata/zeros-1g.zz.zz") // zlib(zlib(1 GiB of zeros)), 4,337 bytes
	if err != nil {
		t.Fatal(err)
	}
	helv := "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
	text := "BT /F1 12 Tf 72 700 Td (fine) Tj ET"
	long := strings.Repeat("0041", 30000) // 60 KB of UTF-16 for one code
	cmap := "/CIDInit /ProcSet findresource begin 12 dict begin begincmap 1 begincodespacerange <00> <ff> endcodespacerange " +
		"1 beginbfchar <01> <" + long + "> endbfchar endcmap end end"
	cases := []struct {
		name string
		pdf  []byte
		lim  Limits
		want string
	}{
		// A content budget of 8 MiB (64 by default) keeps the test quick
		// under the race detector, which slows inflating tenfold.
		{"content bomb", onePage("/Filter [/FlateDecode /FlateDecode]", string(gig), helv), Limits{MaxContentBytes: 8 << 20},
			"a page's content expands past 8388608 bytes when decompressed"},
		{"ToUnicode bomb", onePage("", text, "<< /Type /Font /Subtype /Type1 /BaseFont /X /ToUnicode 6 0 R >>",
			fmt.Sprintf("<< /Length %d /Filter [/FlateDecode /FlateDecode] >>\nstream\n%s\nendstream", len(gig), gig)), Limits{},
			"a font's ToUnicode map expands past 4194304 bytes"},
		{"two billion objects", hermestest.RawPDF([]string{"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"}, "2000000000"), Limits{},
			"could not be read as a PDF"},
		{"text amplification", onePage("/Filter /FlateDecode", zlibbed(t, []byte("BT /F1 12 Tf ("+strings.Repeat("\x01", 64<<10)+") Tj ET")),
			"<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding /Identity-H /ToUnicode 6 0 R >>",
			fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(cmap), cmap)), Limits{MaxPDFMemory: 32 << 20},
			"needed more than 32 MiB of memory"},
		{"2^40 predictor columns", onePage("/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 1099511627776 >>", zlibbed(t, []byte(text)), helv), Limits{},
			"declares 1099511627776 columns"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			d, err := Read("evil.pdf", c.pdf, "application/pdf", c.lim)
			took := time.Since(start)
			t.Logf("%d-byte file: %v in %s", len(c.pdf), err, took.Round(time.Millisecond))
			if hermes.ErrorCode(err) != hermes.EInvalid || !strings.Contains(err.Error(), "evil.pdf") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %+v, %v; want a 400 saying %q", d, err, c.want)
			}
			if took > 15*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
	// The same reader still reads an honest file with a ToUnicode map.
	ok := onePage("", "BT /F1 12 Tf (\x01) Tj ET", "<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding /Identity-H /ToUnicode 6 0 R >>",
		"<< /Length 110 >>\nstream\n"+fmt.Sprintf("%-110s", "1 begincodespacerange <00> <ff> endcodespacerange 1 beginbfchar <01> <00480069> endbfchar")+"\nendstream")
	d, err := Read("ok.pdf", ok, "", Limits{})
	if err != nil || !strings.Contains(d.Text, "Hi") {
		t.Fatalf("an honest mapped font: %+v %v", d, err)
	}
}

// TestPDFWorkerArgs: a worker started with bad limits refuses to run.
func TestPDFWorkerArgs(t *testing.T) {
	var out bytes.Buffer
	if code := runWorker([]string{"1", "2"}, strings.NewReader(""), &out); code != exitBadArgs {
		t.Errorf("two arguments: exit %d", code)
	}
	if code := runWorker([]string{"1", "2", "3", "4", "-5"}, strings.NewReader(""), &out); code != exitBadArgs {
		t.Errorf("a negative limit: exit %d", code)
	}
}
