package web

import (
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Pages and snippets are read with golang.org/x/net/html's tokenizer, which
// follows the HTML5 rules for where tags, comments (`<!-- x --!>` ends a
// comment too) and raw-text elements (a '<' inside a script starts no tag)
// begin and end. No tree is built: htmlToText and the DuckDuckGo reader
// only need the token stream.

type tokenKind int

const (
	textToken tokenKind = iota
	startTagToken
	endTagToken
)

type token struct {
	kind        tokenKind
	name        string // lower-case tag name
	attrs       []html.Attribute
	selfClosing bool
	text        string // text, entities decoded
	raw         string // the token's source text
}

// tokenizer yields a page's text, start and end tags; comments, doctypes
// and processing instructions are skipped. With keepRaw it also keeps each
// token's source text, which only snippets need.
type tokenizer struct {
	z       *html.Tokenizer
	keepRaw bool
}

func newTokenizer(s string) *tokenizer {
	return &tokenizer{z: html.NewTokenizer(strings.NewReader(s))}
}

// next returns the next token, or false at the end of input.
func (t *tokenizer) next() (token, bool) {
	for {
		tt := t.z.Next()
		var tok token
		// Raw is read first: Text and TagAttr unescape in the tokenizer's
		// buffer, which Raw shares.
		if t.keepRaw {
			tok.raw = string(t.z.Raw())
		}
		switch tt {
		case html.ErrorToken:
			return token{}, false
		case html.TextToken:
			tok.kind, tok.text = textToken, string(t.z.Text())
			return tok, true
		case html.StartTagToken, html.SelfClosingTagToken:
			name, more := t.z.TagName()
			tok.kind, tok.name, tok.selfClosing = startTagToken, lowerName(name), tt == html.SelfClosingTagToken
			for more {
				var k, v []byte
				k, v, more = t.z.TagAttr()
				tok.attrs = append(tok.attrs, html.Attribute{Key: string(k), Val: string(v)})
			}
			return tok, true
		case html.EndTagToken:
			name, _ := t.z.TagName()
			tok.kind, tok.name = endTagToken, lowerName(name)
			return tok, true
		}
	}
}

// lowerName returns a tag name (lower-cased by TagName) as a string,
// without allocating for the names HTML knows.
func lowerName(b []byte) string {
	if a := atom.Lookup(b); a != 0 {
		return a.String()
	}
	return string(b)
}

// attr returns the (decoded) value of the named attribute.
func attr(attrs []html.Attribute, name string) (string, bool) {
	for _, a := range attrs {
		if a.Namespace == "" && strings.EqualFold(a.Key, name) {
			return a.Val, true
		}
	}
	return "", false
}

// hasClass reports whether the class attribute lists cls.
func hasClass(attrs []html.Attribute, cls string) bool {
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
var snippetTags = map[atom.Atom]bool{
	atom.A: true, atom.Abbr: true, atom.B: true, atom.Br: true, atom.Cite: true, atom.Code: true,
	atom.Del: true, atom.Div: true, atom.Em: true, atom.Font: true, atom.I: true, atom.Img: true,
	atom.Ins: true, atom.Kbd: true, atom.Mark: true, atom.P: true, atom.Q: true, atom.S: true,
	atom.Small: true, atom.Span: true, atom.Strong: true, atom.Sub: true, atom.Sup: true,
	atom.Time: true, atom.U: true, atom.Wbr: true,
}

// plainText strips the tags of a search snippet, decodes entities and
// collapses whitespace.
func plainText(fragment string) string {
	if !strings.ContainsAny(fragment, "<&") {
		return strings.Join(strings.Fields(fragment), " ")
	}
	var b strings.Builder
	z := newTokenizer(fragment)
	z.keepRaw = true
	for {
		t, ok := z.next()
		if !ok {
			break
		}
		switch a := atom.Lookup([]byte(t.name)); {
		case t.kind == textToken:
			b.WriteString(t.text)
		case !snippetTags[a]:
			b.WriteString(t.raw)
		case a == atom.Br || a == atom.P || a == atom.Div:
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
