package web

import (
	"net/url"
	"os"
	"strings"
	"testing"
)

// BenchmarkHTMLToText converts a page of about 1 MB of article markup.
func BenchmarkHTMLToText(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("<html><head><title>Bench</title><script>var x = 1 < 2;</script></head><body>")
	for sb.Len() < 1<<20 {
		sb.WriteString(`<h2>Section</h2><p class="lead">Some <b>bold</b> text &amp; a <a href="/rel/link?a=1&amp;b=2">link</a>.</p><ul><li>one</li><li>two</li></ul><div><span>cell</span><br></div>`)
	}
	sb.WriteString("</body></html>")
	page := sb.String()
	base, _ := url.Parse("https://bench.example/dir/")
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		htmlToText(page, base)
	}
}

func BenchmarkParseDuckDuckGo(b *testing.B) {
	page, err := os.ReadFile("testdata/ddg.html")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		parseDuckDuckGo(string(page))
	}
}
