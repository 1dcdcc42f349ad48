package docs

import (
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
)

func TestReadPDF(t *testing.T) {
	data := hermestest.PDF([]string{"Quarterly revenue rose", "Second page text"}, "")
	d, err := Read("report.pdf", data, "", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "PDF" || d.Pages != 2 || d.Read != 2 || !strings.Contains(d.Text, "Quarterly revenue rose") ||
		!strings.Contains(d.Text, "Second page text") || len(d.Notes) != 0 {
		t.Fatalf("%+v", d)
	}
	block := d.Block("uploads/report.pdf")
	for _, want := range []string{"--- file: report.pdf (PDF, 2 pages) ---", "uploads/report.pdf", "Quarterly revenue rose", "--- end of file: report.pdf ---"} {
		if !strings.Contains(block, want) {
			t.Errorf("block lacks %q:\n%s", want, block)
		}
	}
}

// TestReadPDFNoTextLayer: a PDF whose pages are only drawings says so
// instead of sending nothing.
func TestReadPDFNoTextLayer(t *testing.T) {
	d, err := Read("scan.pdf", hermestest.PDF([]string{"", ""}, ""), "application/pdf", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(d.Text) != "" || !strings.Contains(d.Block(""), "no text layer") {
		t.Fatalf("%q\n%s", d.Text, d.Block(""))
	}
}

// TestReadPDFLimits: pages past MaxPages are left out, content past
// MaxContentBytes stops the reading, text past MaxTextBytes is cut; each
// says so.
func TestReadPDFLimits(t *testing.T) {
	data := hermestest.PDF([]string{"one", "two", "three"}, "")
	d, err := Read("a.pdf", data, "", Limits{MaxPages: 2})
	if err != nil || d.Read != 2 || strings.Contains(d.Text, "three") || !strings.Contains(d.Block(""), "only the first 2 of 3 pages") {
		t.Fatalf("page limit: %+v %v", d, err)
	}
	long := strings.Repeat("x", 300)
	d, err = Read("a.pdf", hermestest.PDF([]string{long, long}, ""), "", Limits{MaxContentBytes: 400})
	if err != nil || d.Read != 1 || !strings.Contains(d.Block(""), "reading stopped at page 2") {
		t.Fatalf("content limit: %+v %v", d, err)
	}
	d, err = Read("a.pdf", hermestest.PDF([]string{long}, ""), "", Limits{MaxTextBytes: 100})
	if err != nil || len(d.Text) != 100 || !strings.Contains(d.Block(""), "first 100 of 300 bytes") {
		t.Fatalf("text limit: %+v %v", d, err)
	}
}

// TestReadPDFHostile: malformed, truncated, not-really PDFs and a page
// tree that leads back to itself are answered with a 400-class error or
// read within bounds, never a hang or a panic.
func TestReadPDFHostile(t *testing.T) {
	good := hermestest.PDF([]string{"text"}, "")
	cases := map[string][]byte{
		"truncated":      good[:len(good)/2],
		"header only":    []byte("%PDF-1.4\n"),
		"garbage":        []byte("%PDF-1.4\n" + strings.Repeat("\x00\xff", 100) + "\n%%EOF"),
		"bad startxref":  []byte(strings.Replace(string(good), "startxref\n", "startxref\n999999", 1)),
		"named pdf, png": []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
	}
	for name, data := range cases {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, err := Read("x.pdf", data, "", Limits{})
			if hermes.ErrorCode(err) != hermes.EInvalid {
				t.Errorf("%s: %v, want EInvalid", name, err)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer in 10s", name)
		}
	}
	// Kids that name the page tree itself, over and over.
	loop := hermestest.PDF([]string{"text"}, "[2 0 R 2 0 R 4 0 R]")
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, err := Read("loop.pdf", loop, "", Limits{})
		if err != nil || !strings.Contains(d.Text, "text") {
			t.Errorf("cyclic page tree: %+v %v", d, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("cyclic page tree: no answer in 10s")
	}
}

func TestReadText(t *testing.T) {
	cases := []struct {
		name, ctype string
		data        []byte
		want        string
	}{
		{"notes.md", "", []byte("# Title\nbody ✓"), "# Title\nbody ✓"},
		{"win.txt", "", []byte("\x93quoted\x94"), "\u201cquoted\u201d"},
		{"latin.csv", "text/csv; charset=iso-8859-1", []byte("caf\xe9"), "café"},
		{"utf16.txt", "", []byte("\xff\xfeh\x00i\x00"), "hi"},
		{"data.json", "application/json", []byte(`{"a":1}`), `{"a":1}`},
		{"main.go", "", []byte("package main\n"), "package main\n"},
	}
	for _, c := range cases {
		d, err := Read(c.name, c.data, c.ctype, Limits{})
		if err != nil || d.Kind != "text" || d.Text != c.want {
			t.Errorf("%s: %+v %v, want %q", c.name, d, err, c.want)
		}
	}
	d, err := Read("big.txt", []byte(strings.Repeat("é", 100)), "", Limits{MaxTextBytes: 51})
	if err != nil || len(d.Text) != 50 || !strings.Contains(d.Block(""), "first 50 of 200 bytes") {
		t.Fatalf("cut on a rune boundary: %q %v", d.Text, err)
	}
	for name, data := range map[string][]byte{"pic.png": []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "a.zip": []byte("PK\x03\x04\x00\x00")} {
		if _, err := Read(name, data, "", Limits{}); hermes.ErrorCode(err) != hermes.EInvalid || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want EInvalid naming it", name, err)
		}
	}
	if _, err := Read("x.png", []byte("abc"), "image/png", Limits{}); err == nil {
		t.Error("an image/png declared file was read as text")
	}
}
