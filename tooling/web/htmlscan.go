package web

import (
	"html"
	"strings"
)

// The scanner below splits HTML into text, start tags and end tags. It is
// not an HTML5 parser: it builds no tree and never fixes nesting. It only
// has to be right about where tags begin and end (quoted attribute values
// may hold '>'), about comments, and about raw-text elements whose content
// is not markup (a '<' inside a script must not start a tag).

type tokenKind int

const (
	textToken tokenKind = iota
	startTagToken
	endTagToken
)

type token struct {
	kind        tokenKind
	name        string // lower-case tag name
	attrs       string // raw attribute text of a start tag
	selfClosing bool
	text        string // raw text, entities not yet decoded
	raw         string // a tag's source text
}

// rawTextElements hold text up to their end tag, whatever it looks like.
var rawTextElements = map[string]bool{
	"script": true, "style": true, "textarea": true, "title": true,
	"xmp": true, "iframe": true, "noembed": true, "noframes": true,
	"noscript": true,
}

type scanner struct {
	s   string
	pos int
	raw string // name of the raw-text element being read, if any
}

func newScanner(s string) *scanner { return &scanner{s: s} }

// next returns the next token, or false at the end of input.
func (z *scanner) next() (token, bool) {
	for z.pos < len(z.s) {
		if z.raw != "" {
			end := indexFold(z.s[z.pos:], "</"+z.raw)
			z.raw = ""
			if end < 0 {
				end = len(z.s) - z.pos
			}
			if end > 0 {
				t := token{kind: textToken, text: z.s[z.pos : z.pos+end]}
				z.pos += end
				return t, true
			}
			continue
		}
		rest := z.s[z.pos:]
		if rest[0] != '<' {
			n := strings.IndexByte(rest[1:], '<') + 1
			if n == 0 {
				n = len(rest)
			}
			z.pos += n
			return token{kind: textToken, text: rest[:n]}, true
		}
		switch {
		case strings.HasPrefix(rest, "<!--"):
			z.pos += skipPast(rest, 4, "-->")
			continue
		case strings.HasPrefix(rest, "<!"), strings.HasPrefix(rest, "<?"):
			z.pos += skipPast(rest, 2, ">")
			continue
		case len(rest) > 2 && rest[1] == '/' && isASCIILetter(rest[2]):
			name, n := tagName(rest[2:])
			end := skipPast(rest, 2+n, ">")
			z.pos += end
			return token{kind: endTagToken, name: name, raw: rest[:end]}, true
		case len(rest) > 1 && isASCIILetter(rest[1]):
			name, n := tagName(rest[1:])
			attrEnd, tagEnd := scanTagEnd(rest, 1+n)
			attrs := rest[1+n : attrEnd]
			t := token{kind: startTagToken, name: name, attrs: attrs, raw: rest[:tagEnd]}
			t.selfClosing = strings.HasSuffix(strings.TrimSpace(attrs), "/")
			z.pos += tagEnd
			if rawTextElements[name] && !t.selfClosing {
				z.raw = name
			}
			return t, true
		}
		// A '<' that starts no tag is text.
		n := strings.IndexByte(rest[1:], '<') + 1
		if n == 0 {
			n = len(rest)
		}
		z.pos += n
		return token{kind: textToken, text: rest[:n]}, true
	}
	return token{}, false
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// tagName reads a tag name at the start of s.
func tagName(s string) (string, int) {
	n := 0
	for n < len(s) {
		c := s[n]
		if isHTMLSpace(c) || c == '/' || c == '>' {
			break
		}
		n++
	}
	return strings.ToLower(s[:n]), n
}

// scanTagEnd finds the '>' closing a start tag whose attributes begin at
// from, skipping quoted values. It returns where the attributes end and
// where the tag ends (just past '>', or the end of input).
func scanTagEnd(s string, from int) (attrEnd, tagEnd int) {
	for i := from; i < len(s); i++ {
		switch s[i] {
		case '>':
			return i, i + 1
		case '"', '\'':
			if j := strings.IndexByte(s[i+1:], s[i]); j >= 0 {
				i += j + 1
			} else {
				// An unmatched quote: fall back to the next '>'.
				if k := strings.IndexByte(s[i:], '>'); k >= 0 {
					return i + k, i + k + 1
				}
				return len(s), len(s)
			}
		}
	}
	return len(s), len(s)
}

// skipPast returns the offset just past the first sep at or after from, or
// len(s) when there is none.
func skipPast(s string, from int, sep string) int {
	if from > len(s) {
		return len(s)
	}
	if i := strings.Index(s[from:], sep); i >= 0 {
		return from + i + len(sep)
	}
	return len(s)
}

// indexFold is strings.Index ignoring ASCII case of sub (given lower-case).
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// attr returns the decoded value of the named attribute in a start tag's
// attribute text, in whatever order the attributes come. An attribute
// without a value has the empty value.
func attr(attrs, name string) (string, bool) {
	i := 0
	for i < len(attrs) {
		if isHTMLSpace(attrs[i]) || attrs[i] == '/' {
			i++
			continue
		}
		// Name: up to whitespace, '/', '=' (a leading '=' belongs to it).
		start := i
		i++
		for i < len(attrs) && !isHTMLSpace(attrs[i]) && attrs[i] != '/' && attrs[i] != '=' {
			i++
		}
		key := attrs[start:i]
		for i < len(attrs) && isHTMLSpace(attrs[i]) {
			i++
		}
		var val string
		if i < len(attrs) && attrs[i] == '=' {
			i++
			for i < len(attrs) && isHTMLSpace(attrs[i]) {
				i++
			}
			if i < len(attrs) && (attrs[i] == '"' || attrs[i] == '\'') {
				q := attrs[i]
				i++
				end := strings.IndexByte(attrs[i:], q)
				if end < 0 {
					end = len(attrs) - i
				}
				val = attrs[i : i+end]
				i = min(i+end+1, len(attrs))
			} else {
				start := i
				for i < len(attrs) && !isHTMLSpace(attrs[i]) {
					i++
				}
				val = attrs[start:i]
			}
		}
		if strings.EqualFold(key, name) {
			return html.UnescapeString(val), true
		}
	}
	return "", false
}

func isHTMLSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// hasClass reports whether the class attribute lists cls.
func hasClass(attrs, cls string) bool {
	v, _ := attr(attrs, "class")
	for _, c := range strings.Fields(v) {
		if c == cls {
			return true
		}
	}
	return false
}

// snippetTags are the elements search APIs put in titles and snippets.
// Anything else that looks like a tag is kept as text: "Map<K, V>" in a
// plain-text snippet is not markup.
var snippetTags = map[string]bool{
	"a": true, "abbr": true, "b": true, "br": true, "cite": true, "code": true,
	"del": true, "div": true, "em": true, "font": true, "i": true, "img": true,
	"ins": true, "kbd": true, "mark": true, "p": true, "q": true, "s": true,
	"small": true, "span": true, "strong": true, "sub": true, "sup": true,
	"time": true, "u": true, "wbr": true,
}

// plainText strips the tags of a search snippet, decodes entities and
// collapses whitespace.
func plainText(fragment string) string {
	if !strings.ContainsAny(fragment, "<&") {
		return strings.Join(strings.Fields(fragment), " ")
	}
	var b strings.Builder
	z := newScanner(fragment)
	for {
		t, ok := z.next()
		if !ok {
			break
		}
		switch {
		case t.kind == textToken:
			b.WriteString(html.UnescapeString(t.text))
		case !snippetTags[t.name]:
			b.WriteString(t.raw)
		case t.name == "br" || t.name == "p" || t.name == "div":
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
