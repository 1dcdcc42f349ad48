package llm

import "strings"

const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
)

// thinkSplitter separates <think>…</think> reasoning from the answer text of
// a model served without a reasoning parser (raw DeepSeek-R1, Qwen3,
// Hermes 4), as content arrives in arbitrary pieces: a tag may be split
// across chunks, so a piece that could still become a tag is held back
// until the next piece settles it.
//
// Only a <think> that opens the content (after whitespace) starts
// reasoning: that is where such models put it, and a model that writes the
// tag later in its answer (explaining tags, quoting HTML) keeps its text.
// For the same reason a </think> with no opening is ordinary text. An
// unterminated <think> is reasoning to the end, as vLLM's parsers read it
// (the model was cut off while thinking).
type thinkSplitter struct {
	state thinkState
	held  []byte // text not yet given out: a possible tag prefix
}

type thinkState uint8

const (
	thinkStart  thinkState = iota // nothing but whitespace seen yet
	thinkInside                   // inside <think>, before </think>
	thinkAfter                    // right after </think>: leading whitespace of the answer is dropped
	thinkPlain                    // ordinary content
)

// plain reports whether content now passes through untouched (feed's hot
// path), so a caller may skip feed.
func (s *thinkSplitter) plain() bool { return s.state == thinkPlain && len(s.held) == 0 }

// feed takes the next piece of content and returns the answer text and the
// reasoning text it settles.
func (s *thinkSplitter) feed(piece string) (text, reasoning string) {
	if s.plain() {
		return piece, "" // the hot path: nothing to look for
	}
	s.held = append(s.held, piece...)
	var tb, rb strings.Builder
	for len(s.held) > 0 {
		switch s.state {
		case thinkStart:
			rest := strings.TrimLeft(string(s.held), " \t\r\n")
			switch {
			case strings.HasPrefix(rest, thinkOpen):
				s.held = append(s.held[:0], rest[len(thinkOpen):]...)
				s.state = thinkInside
			case rest == "" || strings.HasPrefix(thinkOpen, rest):
				return tb.String(), rb.String() // maybe a tag: wait for more
			default:
				s.state = thinkPlain
			}
		case thinkInside:
			h := string(s.held)
			if i := strings.Index(h, thinkClose); i >= 0 {
				rb.WriteString(h[:i])
				s.held = append(s.held[:0], h[i+len(thinkClose):]...)
				s.state = thinkAfter
				continue
			}
			keep := partialSuffix(h, thinkClose)
			rb.WriteString(h[:len(h)-keep])
			s.held = append(s.held[:0], h[len(h)-keep:]...)
			return tb.String(), rb.String()
		case thinkAfter:
			rest := strings.TrimLeft(string(s.held), " \t\r\n")
			if rest == "" {
				s.held = s.held[:0]
				return tb.String(), rb.String()
			}
			s.held = append(s.held[:0], rest...)
			s.state = thinkPlain
		case thinkPlain:
			tb.Write(s.held)
			s.held = s.held[:0]
		}
	}
	return tb.String(), rb.String()
}

// flush gives out what is still held when the content ends: a partial tag
// at the start is answer text, a partial closing tag inside reasoning is
// reasoning.
func (s *thinkSplitter) flush() (text, reasoning string) {
	h := string(s.held)
	s.held = s.held[:0]
	switch s.state {
	case thinkInside:
		return "", h
	case thinkAfter:
		return "", ""
	}
	return h, ""
}

// partialSuffix returns the length of the longest suffix of s that is a
// proper prefix of tag.
func partialSuffix(s, tag string) int {
	for n := min(len(s), len(tag)-1); n > 0; n-- {
		if strings.HasSuffix(s, tag[:n]) {
			return n
		}
	}
	return 0
}

// splitThink separates a whole content string (a non-stream answer).
func splitThink(content string) (text, reasoning string) {
	var s thinkSplitter
	t, r := s.feed(content)
	ft, fr := s.flush()
	return t + ft, r + fr
}
