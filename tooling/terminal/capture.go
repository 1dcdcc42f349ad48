package terminal

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// capture keeps the first headMax and the last tailMax characters written
// to it and counts the rest, so a command printing gigabytes costs a fixed
// amount of memory. Characters are counted as UTF-8 runes (a stray byte
// that is not part of a rune counts as one).
//
// It is written by one goroutine and read after that goroutine is done.
type capture struct {
	headMax, tailMax int

	head      []byte
	headChars int
	headDone  bool // head full and its last rune complete

	ring  []byte // the last bytes after head, 4*tailMax: at least tailMax runes
	pos   int    // where the next byte goes in ring
	full  bool   // ring wrapped at least once
	total int    // characters written, head included
}

func newCapture(max int) *capture {
	head := max * 2 / 5
	return &capture{headMax: head, tailMax: max - head}
}

func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	c.total += runeStarts(p)
	if !c.headDone {
		i := 0
		for ; i < len(p); i++ {
			if p[i]&0xC0 != 0x80 { // a rune starts here
				if c.headChars == c.headMax {
					c.headDone = true
					break
				}
				c.headChars++
			}
		}
		c.head = append(c.head, p[:i]...)
		p = p[i:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if c.ring == nil {
		c.ring = make([]byte, 4*c.tailMax+utf8.UTFMax)
	}
	if len(p) >= len(c.ring) {
		copy(c.ring, p[len(p)-len(c.ring):])
		c.pos, c.full = 0, true
		return n, nil
	}
	k := copy(c.ring[c.pos:], p)
	if k < len(p) {
		copy(c.ring, p[k:])
		c.full = true
	}
	c.pos = (c.pos + len(p)) % len(c.ring)
	if c.pos == 0 {
		c.full = true
	}
	return n, nil
}

// runeStarts counts the bytes of p that are not UTF-8 continuation bytes
// (10xxxxxx), eight at a time: output can be large.
func runeStarts(p []byte) int {
	n := len(p)
	i := 0
	for ; i+8 <= len(p); i += 8 {
		x := binary.LittleEndian.Uint64(p[i:])
		n -= bits.OnesCount64(x & 0x8080808080808080 &^ (x << 1))
	}
	for ; i < len(p); i++ {
		if p[i]&0xC0 == 0x80 {
			n--
		}
	}
	return n
}

// String returns what was captured: everything, or the head, a marker
// saying how much was left out, and the tail.
func (c *capture) String() string {
	var tail []byte
	if c.full {
		tail = append(append(tail, c.ring[c.pos:]...), c.ring[:c.pos]...)
	} else {
		tail = c.ring[:c.pos]
	}
	if c.total <= c.headMax+c.tailMax {
		return string(c.head) + string(tail)
	}
	// Keep the last tailMax runes: drop bytes from the front, never
	// starting inside a rune.
	chars := runeStarts(tail)
	for len(tail) > 0 && (chars > c.tailMax || tail[0]&0xC0 == 0x80) {
		if tail[0]&0xC0 != 0x80 {
			chars--
		}
		tail = tail[1:]
	}
	omitted := c.total - c.headChars - chars
	return fmt.Sprintf("%s\n\n... [output truncated: %d characters omitted] ...\n\n%s", c.head, omitted, tail)
}
