package terminal

import (
	"strconv"
	"strings"
)

// A script is parsed just far enough to see which commands it runs: words
// with quotes and backslashes removed, split into simple commands at ; & &&
// || | newlines and parentheses, redirections apart, and the text of every
// command substitution ($(…), `…`, <(…), >(…)) kept to be checked as a
// script of its own. It is not a shell parser; where it is unsure it errs
// towards seeing more commands, never fewer.

// segment is one simple command.
type segment struct {
	words  []string
	redirs []redirect
}

type redirect struct{ op, target string }

// pipeline is a run of segments joined by |.
type pipeline []segment

// subMark starts and ends the placeholder a substitution leaves in its word.
const subMark = '\x00'

type lexer struct {
	src  string
	i    int
	subs []string // inner text of each substitution, by placeholder index
}

func lex(src string) (pipes []pipeline, subs []string) {
	l := &lexer{src: src}
	var (
		cur     pipeline
		seg     segment
		w       strings.Builder
		inWord  bool
		pending string // redirection operator waiting for its target
	)
	endWord := func() {
		if !inWord {
			return
		}
		s := w.String()
		w.Reset()
		inWord = false
		if pending != "" {
			seg.redirs = append(seg.redirs, redirect{pending, s})
			pending = ""
			return
		}
		seg.words = append(seg.words, s)
	}
	endSeg := func() {
		endWord()
		pending = ""
		if len(seg.words) > 0 || len(seg.redirs) > 0 {
			cur = append(cur, seg)
		}
		seg = segment{}
	}
	endPipe := func() {
		endSeg()
		if len(cur) > 0 {
			pipes = append(pipes, cur)
		}
		cur = nil
	}
	addSub := func(inner string) {
		w.WriteByte(subMark)
		w.WriteString(strconv.Itoa(len(l.subs)))
		w.WriteByte(subMark)
		l.subs = append(l.subs, inner)
		inWord = true
	}
	for l.i < len(src) {
		c := src[l.i]
		next := byte(0)
		if l.i+1 < len(src) {
			next = src[l.i+1]
		}
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			endWord()
			l.i++
		case c == '\n' || c == ';' || c == '(' || c == ')':
			endPipe()
			l.i++
		case c == '&' && next == '>':
			endWord()
			l.i += 2
			op := "&>"
			if l.i < len(src) && src[l.i] == '>' {
				op, l.i = "&>>", l.i+1
			}
			pending = op
		case c == '&':
			endPipe()
			l.i++
			if next == '&' {
				l.i++
			}
		case c == '|' && next == '|':
			endPipe()
			l.i += 2
		case c == '|':
			endSeg()
			l.i++
			if next == '&' {
				l.i++
			}
		case (c == '<' || c == '>') && next == '(':
			l.i += 2
			addSub(l.balanced())
		case c == '<' || c == '>':
			if inWord && isDigits(w.String()) { // a file descriptor: 2>
				w.Reset()
				inWord = false
			}
			endWord()
			l.i++
			op := string(c)
			for l.i < len(src) && strings.IndexByte("<>|&-", src[l.i]) >= 0 {
				op += string(src[l.i])
				l.i++
			}
			pending = op
		case c == '\'':
			end := strings.IndexByte(src[l.i+1:], '\'')
			if end < 0 {
				end = len(src) - l.i - 1
			}
			w.WriteString(src[l.i+1 : l.i+1+end])
			inWord = true
			l.i += end + 2
		case c == '"':
			l.i++
			l.doubleQuoted(&w, addSub)
			inWord = true
		case c == '`':
			l.i++
			addSub(l.backquoted())
		case c == '$' && next == '(':
			l.i += 2
			addSub(l.balanced())
		case c == '$' && next == '\'':
			end := strings.IndexByte(src[l.i+2:], '\'')
			if end < 0 {
				end = len(src) - l.i - 2
			}
			w.WriteString(src[l.i+2 : l.i+2+end])
			inWord = true
			l.i += end + 3
		case c == '\\':
			if next == '\n' { // line continuation
				l.i += 2
				continue
			}
			if next != 0 {
				w.WriteByte(next)
				inWord = true
			}
			l.i += 2
		case c == '#' && !inWord:
			end := strings.IndexByte(src[l.i:], '\n')
			if end < 0 {
				end = len(src) - l.i
			}
			l.i += end
		default:
			w.WriteByte(c)
			inWord = true
			l.i++
		}
	}
	endPipe()
	return pipes, l.subs
}

// doubleQuoted reads up to the closing quote; substitutions still run there.
func (l *lexer) doubleQuoted(w *strings.Builder, addSub func(string)) {
	src := l.src
	for l.i < len(src) {
		c := src[l.i]
		switch {
		case c == '"':
			l.i++
			return
		case c == '\\' && l.i+1 < len(src):
			if strings.IndexByte("$`\"\\\n", src[l.i+1]) < 0 {
				w.WriteByte('\\')
			}
			if src[l.i+1] != '\n' {
				w.WriteByte(src[l.i+1])
			}
			l.i += 2
		case c == '`':
			l.i++
			addSub(l.backquoted())
		case c == '$' && l.i+1 < len(src) && src[l.i+1] == '(':
			l.i += 2
			addSub(l.balanced())
		default:
			w.WriteByte(c)
			l.i++
		}
	}
}

// balanced reads up to the parenthesis closing one already consumed,
// skipping quoted text, and returns what is between.
func (l *lexer) balanced() string {
	src, start, depth := l.src, l.i, 1
	for l.i < len(src) {
		switch src[l.i] {
		case '\\':
			l.i++
		case '\'':
			if end := strings.IndexByte(src[l.i+1:], '\''); end >= 0 {
				l.i += end + 1
			}
		case '"':
			for l.i++; l.i < len(src) && src[l.i] != '"'; l.i++ {
				if src[l.i] == '\\' {
					l.i++
				}
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				inner := src[start:l.i]
				l.i++
				return inner
			}
		}
		l.i++
	}
	return src[start:min(l.i, len(src))]
}

// backquoted reads up to the closing backquote.
func (l *lexer) backquoted() string {
	src := l.src
	var b strings.Builder
	for l.i < len(src) {
		c := src[l.i]
		if c == '\\' && l.i+1 < len(src) {
			b.WriteByte(src[l.i+1])
			l.i += 2
			continue
		}
		l.i++
		if c == '`' {
			break
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// subIndexes returns the substitutions a word holds.
func subIndexes(word string) []int {
	var idx []int
	for {
		i := strings.IndexByte(word, subMark)
		if i < 0 {
			return idx
		}
		j := strings.IndexByte(word[i+1:], subMark)
		if j < 0 {
			return idx
		}
		if n, err := strconv.Atoi(word[i+1 : i+1+j]); err == nil {
			idx = append(idx, n)
		}
		word = word[i+j+2:]
	}
}
