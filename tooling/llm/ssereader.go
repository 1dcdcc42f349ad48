package llm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// sseReader splits an upstream's SSE body into lines. It reads as much as
// has arrived in one Read and gives each line out as a slice of its own
// buffer, valid until the next call: no copy per line.
//
// With chunked set it also undoes HTTP/1.1 chunked framing itself, reading
// the connection's reader directly. fasthttp's streamed body parsed every
// chunk's size line byte by byte through bufio and gave out at most one
// chunk a Read, and bufio.Scanner then copied each chunk into a buffer of
// its own: a stream of one small chunk per token paid all of that a token.
// Here a read brings in every chunk that has arrived, their data is moved
// down over their framing in place, and the lines are cut from the result.
type sseReader struct {
	src     io.Reader
	chunked bool
	max     int // the longest line, framing included, the buffer may grow to
	buf     []byte
	// buf[r:d] is data not yet given out as lines and buf[raw:w] bytes
	// read and not yet unframed (chunked only: otherwise raw == d == w).
	// Data only moves down over framing, so d <= raw.
	r, d, raw, w int
	// left is what remains of the current chunk's data; state says what
	// the unframing expects next.
	left  int
	state chunkState
	// reading, when set, is called with true right before each read of
	// src (which may wait for the network) and with false after it.
	reading func(bool)
	// eof is set once the body ended: src said io.EOF, or (chunked) the
	// last chunk and its trailers were read. clean is set when that end
	// was a proper one with nothing after it, so the connection can carry
	// another request.
	eof, clean bool
}

type chunkState uint8

const (
	chunkSize    chunkState = iota // a chunk-size line comes next
	chunkData                      // left bytes of chunk data come next
	chunkDataEnd                   // the CRLF after a chunk's data
	chunkTrailer                   // trailer lines, up to an empty one
)

// maxChunkLine bounds a chunk-size or trailer line: real ones are a few
// bytes, and without a bound a broken server could make one grow the
// buffer to max.
const maxChunkLine = 4 << 10

var errBrokenChunk = errors.New("malformed chunked encoding from upstream")

func newSSEReader(src io.Reader, chunked bool, buf []byte, max int) *sseReader {
	return &sseReader{src: src, chunked: chunked, buf: buf[:cap(buf)], max: max}
}

// next returns the next line without its \n (a \r before it is left to
// the caller), or the last bytes of a body that ends without a line
// ending. io.EOF means the body ended.
func (s *sseReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.d], '\n'); i >= 0 {
			line := s.buf[s.r : s.r+i]
			s.r += i + 1
			return line, nil
		}
		if s.eof {
			if s.r < s.d {
				line := s.buf[s.r:s.d]
				s.r = s.d
				return line, nil
			}
			return nil, io.EOF
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads once, after making room: the unread bytes move to the front
// of the buffer, which grows (up to max) only when a single line fills it.
func (s *sseReader) fill() error {
	if s.r > 0 {
		n := copy(s.buf, s.buf[s.r:s.w])
		s.d -= s.r
		s.raw -= s.r
		s.r, s.w = 0, n
	}
	if s.w == len(s.buf) {
		if len(s.buf) >= s.max {
			return bufio.ErrTooLong
		}
		nb := make([]byte, min(2*len(s.buf), s.max))
		copy(nb, s.buf[:s.w])
		s.buf = nb
	}
	if s.reading != nil {
		s.reading(true)
	}
	n, err := s.src.Read(s.buf[s.w:])
	if s.reading != nil {
		s.reading(false)
	}
	s.w += n
	if s.chunked {
		if uerr := s.unframe(); uerr != nil {
			return uerr
		}
	} else {
		s.d, s.raw = s.w, s.w
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && !s.chunked:
		s.eof, s.clean = true, true
	case errors.Is(err, io.EOF) && !s.eof:
		return io.ErrUnexpectedEOF // the connection closed inside the body
	case !s.eof:
		return err
	}
	return nil
}

// unframe moves the chunk data of buf[raw:w] down to buf[d:], dropping the
// chunk-size lines and the CRLFs around them, as far as whole pieces of
// framing have been read.
func (s *sseReader) unframe() error {
	for s.raw < s.w && !s.eof {
		switch s.state {
		case chunkData:
			n := min(s.left, s.w-s.raw)
			copy(s.buf[s.d:], s.buf[s.raw:s.raw+n])
			s.d += n
			s.raw += n
			s.left -= n
			if s.left == 0 {
				s.state = chunkDataEnd
			}
		case chunkDataEnd:
			if s.w-s.raw < 2 {
				return nil
			}
			if s.buf[s.raw] != '\r' || s.buf[s.raw+1] != '\n' {
				return errBrokenChunk
			}
			s.raw += 2
			s.state = chunkSize
		case chunkSize, chunkTrailer:
			i := bytes.IndexByte(s.buf[s.raw:s.w], '\n')
			if i < 0 {
				if s.w-s.raw > maxChunkLine {
					return errBrokenChunk
				}
				return nil
			}
			line := s.buf[s.raw : s.raw+i]
			s.raw += i + 1
			if len(line) == 0 || line[len(line)-1] != '\r' || i > maxChunkLine {
				return errBrokenChunk
			}
			line = line[:len(line)-1]
			if s.state == chunkTrailer {
				if len(line) == 0 {
					s.eof = true
					s.clean = s.raw == s.w
				}
				continue
			}
			size, ok := chunkSizeOf(line)
			if !ok {
				return errBrokenChunk
			}
			if size == 0 {
				s.state = chunkTrailer
			} else {
				s.left, s.state = size, chunkData
			}
		}
	}
	return nil
}

// chunkSizeOf parses a chunk-size line: hex digits, then optional
// whitespace and ;extensions, which are ignored.
func chunkSizeOf(line []byte) (int, bool) {
	n, digits := 0, 0
	for _, c := range line {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits == 7 {
			return 0, false // 256 MiB or more in one chunk: not an SSE stream
		}
		n = n<<4 | int(v)
		digits++
	}
	return n, digits > 0
}

// discard reads on to the end of the body, at most limit more bytes, so the
// connection can be reused. It reports whether the end was reached.
func (s *sseReader) discard(limit int) bool {
	for !s.eof && limit > 0 {
		s.r = s.d // what is read is dropped
		before := s.w - s.r
		if s.fill() != nil {
			return false
		}
		limit -= s.w - s.r - before
	}
	return s.eof
}
