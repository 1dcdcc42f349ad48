package terminal

import (
	"errors"
	"iter"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// The guard reads a command with a real shell parser (mvdan.cc/sh) and
// walks its syntax tree, so quoting, substitutions, functions, here-docs
// and nesting are seen the way a shell sees them.

// parse reads src as one shell language variant.
func parse(src string, lang syntax.LangVariant) (*syntax.File, error) {
	return syntax.NewParser(syntax.Variant(lang)).Parse(strings.NewReader(src), "")
}

// errorLine is the line of a parse error, or 0 when the error says none.
func errorLine(err error) uint {
	var pe syntax.ParseError
	if errors.As(err, &pe) {
		return pe.Pos.Line()
	}
	var le syntax.LangError
	if errors.As(err, &le) {
		return le.Pos.Line()
	}
	return 0
}

// linesBefore returns the whole lines of src before line n (1-based).
func linesBefore(src string, n uint) string {
	end := 0
	for i := uint(1); i < n; i++ {
		j := strings.IndexByte(src[end:], '\n')
		if j < 0 {
			return src
		}
		end += j + 1
	}
	return src[:end]
}

// word is one word of a command as the guard understands it.
type word struct {
	// s is the word after quote removal, with expansions kept as written
	// ($HOME, $(…)) so rules can still recognise them.
	s string
	// lit: s is exactly what the command receives, with no expansion,
	// glob or brace expansion to change it at run time.
	lit bool
	// w is the syntax node, nil for words made from others.
	w *syntax.Word
}

// maxBraceWords bounds the expansion of {a,b} and {1..9} in arguments;
// a word that expands to more is treated as unknown.
const maxBraceWords = 64

// words resolves the words of a command. A word with brace expansion
// becomes the words it expands to (bash does; dash does not, and the
// expanded form is the more dangerous reading); when it expands to too
// many, it stays one unknown word.
func (fc *fileCheck) words(ws []*syntax.Word) []word {
	out := make([]word, 0, len(ws))
	for _, w := range ws {
		split := *w // SplitBraces rewrites the word; the walk must see it as parsed
		if !syntax.SplitBraces(&split) {
			out = append(out, fc.resolve(w))
			continue
		}
		var exp []word
		for e, err := range braces(&split) {
			if err != nil || len(exp) == maxBraceWords {
				exp = nil
				break
			}
			r := fc.resolve(e)
			r.w = w
			exp = append(exp, r)
		}
		if exp == nil {
			exp = []word{{s: fc.text(w), w: w}}
		}
		out = append(out, exp...)
	}
	return out
}

// braces expands a word's brace expressions lazily, so {1..999999} costs
// nothing beyond the words looked at.
func braces(w *syntax.Word) iter.Seq2[*syntax.Word, error] {
	return expand.BracesSeq(nil, w)
}

// resolve removes quotes from a word the way the shell does.
func (fc *fileCheck) resolve(w *syntax.Word) word {
	var b strings.Builder
	lit := fc.parts(&b, w.Parts, false)
	return word{s: b.String(), lit: lit, w: w}
}

// parts writes the text of word parts to b and reports whether they are
// all literal.
func (fc *fileCheck) parts(b *strings.Builder, parts []syntax.WordPart, quoted bool) bool {
	lit := true
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
			s, glob := unescape(p.Value, quoted)
			b.WriteString(s)
			lit = lit && !glob
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
			// $'…' decodes escapes (\x72m is rm): known only when it has none.
			lit = lit && !(p.Dollar && strings.ContainsRune(p.Value, '\\'))
		case *syntax.DblQuoted:
			lit = fc.parts(b, p.Parts, true) && lit
		default: // $x ${x} $(…) `…` $((…)) <(…) globs, braces: known at run time
			b.WriteString(fc.source(p))
			lit = false
		}
	}
	return lit
}

// unescape removes the backslashes of a literal, inside double quotes or
// not, and reports unquoted glob characters.
func unescape(s string, quoted bool) (out string, glob bool) {
	if !quoted && strings.ContainsAny(s, "*?[") {
		glob = true
	}
	if !strings.ContainsRune(s, '\\') {
		return s, glob
	}
	var b strings.Builder
	glob = false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			next := s[i+1]
			switch {
			case next == '\n':
				i++
				continue
			case !quoted || strings.IndexByte("$`\"\\", next) >= 0:
				b.WriteByte(next)
				i++
				continue
			}
		}
		if !quoted && (c == '*' || c == '?' || c == '[') {
			glob = true
		}
		b.WriteByte(c)
	}
	return b.String(), glob
}

// source is the text of node n as written.
func (fc *fileCheck) source(n syntax.Node) string {
	start, end := n.Pos().Offset(), n.End().Offset()
	if start > end || int(end) > len(fc.src) {
		return ""
	}
	return fc.src[start:end]
}

// text is the resolved text of a word, whether literal or not.
func (fc *fileCheck) text(w *syntax.Word) string { return fc.resolve(w).s }

// literal returns a word's text when it is known before the command runs.
func (fc *fileCheck) literal(w *syntax.Word) (string, bool) {
	r := fc.resolve(w)
	return r.s, r.lit
}

// walk is syntax.Walk with the chain of enclosing nodes, innermost last.
func walk(root syntax.Node, f func(n syntax.Node, stack []syntax.Node) bool) {
	var stack []syntax.Node
	syntax.Walk(root, func(n syntax.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		if !f(n, stack) {
			return false
		}
		stack = append(stack, n)
		return true
	})
}
