package llm

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// pieces is a reader that hands out its pieces one Read each, the way
// packets arrive from a socket.
type pieces struct{ p []string }

func (r *pieces) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.p[0])
	if n < len(r.p[0]) {
		r.p[0] = r.p[0][n:]
	} else {
		r.p = r.p[1:]
	}
	return n, nil
}

// chunk frames s as one HTTP/1.1 chunk.
func chunk(s string) string {
	return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n"
}

// readLines reads every line sr gives.
func readLines(t *testing.T, sr *sseReader) ([]string, error) {
	t.Helper()
	var lines []string
	for {
		line, err := sr.next()
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

// ssePayload is a stream whose events are cut across chunks anywhere: in
// the middle of a line, between \r and \n, between the two newlines that
// end an event, with chunk extensions and a trailer.
var (
	sseEvents = []string{
		`data: {"choices":[{"delta":{"role":"assistant","content":""}}]}`,
		``,
		`data: {"choices":[{"delta":{"content":"Hel"}}]}`,
		``,
		`: a comment`,
		`data: {"choices":[{"delta":{"content":"lo, wörld\u2028"}}]}` + "\r",
		"\r",
		`data: {"choices":[{"delta":{},"finish_reason":"stop"}]}`,
		``,
		`data: [DONE]`,
		``,
	}
	sseText = strings.Join(sseEvents, "\n") + "\n"
)

func chunkedBody(cuts ...int) string {
	var b strings.Builder
	prev := 0
	for i, c := range append(cuts, len(sseText)) {
		part := sseText[prev:c]
		prev = c
		if part == "" {
			continue
		}
		if i == 1 {
			// A chunk extension, which must be ignored.
			b.WriteString(strings.ToUpper(strconv.FormatInt(int64(len(part)), 16)) + " ;name=value\r\n" + part + "\r\n")
			continue
		}
		b.WriteString(chunk(part))
	}
	b.WriteString("0\r\nX-Trailer: 1\r\n\r\n")
	return b.String()
}

// TestSSEReaderEveryBoundary reads a chunked SSE body delivered in two
// reads split at every byte boundary (inside chunk-size lines, chunk data,
// the CRLFs and the trailer), with the events themselves cut across
// chunks at every boundary too, and a small buffer that must grow: every
// split gives the same lines and a clean end.
func TestSSEReaderEveryBoundary(t *testing.T) {
	for cut := 0; cut <= len(sseText); cut += 3 {
		body := chunkedBody(cut, min(cut+7, len(sseText)))
		for split := 0; split <= len(body); split++ {
			sr := newSSEReader(&pieces{p: []string{body[:split], body[split:]}}, true, make([]byte, 0, 16), 1<<20)
			lines, err := readLines(t, sr)
			if err != nil {
				t.Fatalf("cut %d split %d: %v", cut, split, err)
			}
			if strings.Join(lines, "\n")+"\n" != sseText {
				t.Fatalf("cut %d split %d: lines %q", cut, split, lines)
			}
			if !sr.clean {
				t.Fatalf("cut %d split %d: end not clean", cut, split)
			}
		}
	}
}

// TestSSEReaderByteAtATime reads the same body one byte a Read, and as one
// read of everything, chunked and not.
func TestSSEReaderByteAtATime(t *testing.T) {
	body := chunkedBody(5, 40, 41, 100)
	for _, tc := range []struct {
		name    string
		src     io.Reader
		chunked bool
	}{
		{"chunked one byte a read", iotest.OneByteReader(strings.NewReader(body)), true},
		{"chunked one read", strings.NewReader(body), true},
		{"identity one byte a read", iotest.OneByteReader(strings.NewReader(sseText)), false},
		{"identity one read", strings.NewReader(sseText), false},
	} {
		sr := newSSEReader(tc.src, tc.chunked, make([]byte, 0, 64), 1<<20)
		lines, err := readLines(t, sr)
		if err != nil || strings.Join(lines, "\n")+"\n" != sseText || !sr.clean {
			t.Errorf("%s: %q, %v, clean %v", tc.name, lines, err, sr.clean)
		}
	}
}

// TestSSEReaderLastLineWithoutNewline gives out the bytes of a body that
// ends inside a line, as bufio.Scanner did.
func TestSSEReaderLastLineWithoutNewline(t *testing.T) {
	sr := newSSEReader(strings.NewReader("a\nb"), false, make([]byte, 0, 16), 1<<10)
	lines, err := readLines(t, sr)
	if err != nil || strings.Join(lines, ",") != "a,b" {
		t.Fatalf("%q %v", lines, err)
	}
}

// TestSSEReaderLeftover: bytes after the last chunk's trailers are not the
// body's; the connection is then not clean for reuse.
func TestSSEReaderLeftover(t *testing.T) {
	sr := newSSEReader(strings.NewReader(chunk("data: x\n\n")+"0\r\n\r\nHTTP/1.1 200 OK\r\n"), true, make([]byte, 0, 64), 1<<10)
	lines, err := readLines(t, sr)
	if err != nil || len(lines) != 2 || lines[0] != "data: x" {
		t.Fatalf("%q %v", lines, err)
	}
	if !sr.eof || sr.clean {
		t.Fatalf("eof %v clean %v, want an unclean end", sr.eof, sr.clean)
	}
}

// TestSSEReaderHostileFraming: broken framing from an upstream is an
// error, never a hang, a panic or unbounded memory.
func TestSSEReaderHostileFraming(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"not hex", "zz\r\ndata\r\n", errBrokenChunk},
		{"empty size", "\r\ndata\r\n", errBrokenChunk},
		{"bare LF after size", "4\ndata\r\n", errBrokenChunk},
		{"no CRLF after data", "4\r\ndataXX", errBrokenChunk},
		{"size too large", "10000000\r\n", errBrokenChunk},
		{"endless size line", "1" + strings.Repeat(" ", 2*maxChunkLine), errBrokenChunk},
		{"endless trailer", chunk("a\n") + "0\r\n" + strings.Repeat("x", 2*maxChunkLine), errBrokenChunk},
		{"closed inside a chunk", "10\r\ndata: abc", io.ErrUnexpectedEOF},
		{"closed before the last chunk", chunk("data: a\n"), io.ErrUnexpectedEOF},
		{"closed inside the trailers", chunk("data: a\n") + "0\r\n", io.ErrUnexpectedEOF},
		{"line longer than the limit", chunk(strings.Repeat("x", 300)), bufio.ErrTooLong},
	} {
		limit := 1 << 20
		if tc.want == bufio.ErrTooLong {
			limit = 256
		}
		sr := newSSEReader(strings.NewReader(tc.body), true, make([]byte, 0, 16), limit)
		_, err := readLines(t, sr)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestSSEReaderDiscard reads past [DONE] to the body's end so the
// connection can be reused, but only so far.
func TestSSEReaderDiscard(t *testing.T) {
	body := chunk("data: [DONE]\n\n") + chunk(": tail\n") + "0\r\n\r\n"
	sr := newSSEReader(&pieces{p: []string{body[:20], body[20:]}}, true, make([]byte, 0, 64), 1<<10)
	if line, err := sr.next(); err != nil || string(line) != "data: [DONE]" {
		t.Fatalf("%q %v", line, err)
	}
	if !sr.discard(4<<10) || !sr.clean {
		t.Fatal("discard did not reach a clean end")
	}
	endless := newSSEReader(iotest.OneByteReader(strings.NewReader(chunk(strings.Repeat(": x\n", 1000)))), true, make([]byte, 0, 64), 1<<20)
	if endless.discard(100) {
		t.Fatal("discard read past its limit")
	}
}

// BenchmarkSSEReader reads a 20-token chunked stream, one chunk a token as
// mockllm writes it, through the reader and the decoder: the per-token
// cost of the upstream side.
func BenchmarkSSEReader(b *testing.B) {
	var body strings.Builder
	body.WriteString(chunk(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"))
	for i := 0; i < 20; i++ {
		body.WriteString(chunk(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}` + "\n\n"))
	}
	body.WriteString(chunk("data: [DONE]\n\n") + "0\r\n\r\n")
	src := body.String()
	buf := make([]byte, 0, 16<<10)
	var r strings.Reader
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		r.Reset(src)
		sr := newSSEReader(&r, true, buf, maxLineBytes)
		for {
			if _, err := sr.next(); err != nil {
				break
			}
		}
	}
}

// BenchmarkStreamDecoderLine decodes one content chunk as OpenAI sends it.
func BenchmarkStreamDecoderLine(b *testing.B) {
	line := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}`)
	var d streamDecoder
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.Line(line); err != nil {
			b.Fatal(err)
		}
		if d.text.Len() > 1<<20 {
			d.text.Reset()
		}
	}
}
