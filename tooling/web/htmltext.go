package web

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Elements whose content is never readable text.
var droppedElements = map[string]bool{
	"script": true, "style": true, "noscript": true, "svg": true, "head": true,
	"template": true, "iframe": true, "object": true, "canvas": true, "math": true,
}

// Elements that may appear in <head>; any other start tag means the head
// ended without its (optional) end tag.
var headElements = map[string]bool{
	"title": true, "meta": true, "link": true, "style": true, "script": true,
	"noscript": true, "base": true, "template": true,
}

// Elements that end a paragraph (blank line) or a line.
var (
	paragraphElements = map[string]bool{
		"p": true, "blockquote": true, "pre": true, "table": true, "ul": true, "ol": true,
		"dl": true, "figure": true, "hr": true, "h1": true, "h2": true, "h3": true,
		"h4": true, "h5": true, "h6": true,
	}
	lineElements = map[string]bool{
		"div": true, "section": true, "article": true, "header": true, "footer": true,
		"main": true, "nav": true, "aside": true, "form": true, "tr": true, "dt": true,
		"dd": true, "li": true, "address": true, "details": true, "summary": true,
		"figcaption": true, "caption": true, "fieldset": true, "legend": true,
		"option": true, "body": true, "html": true,
	}
	voidElements = map[string]bool{
		"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
		"img": true, "input": true, "link": true, "meta": true, "source": true,
		"track": true, "wbr": true,
	}
)

// htmlToText turns an HTML page into markdown-ish text for a model:
// headings as "# ", links as "[text](url)" resolved against base, list
// items as "- ", blocks on their own lines, whitespace collapsed outside
// <pre>. It returns the page title too.
func htmlToText(page string, base *url.URL) (title, text string) {
	var (
		w        textWriter
		dropped  []string // open dropped elements, innermost last
		inTitle  bool
		inSVG    int
		preDepth int
		lists    int // open ul/ol elements
		linkHref string
		inLink   bool
	)
	z := newTokenizer(page)
	for {
		t, ok := z.next()
		if !ok {
			break
		}
		if len(dropped) > 0 && dropped[len(dropped)-1] == "head" &&
			(t.kind == startTagToken && !headElements[t.name] || t.kind == textToken && strings.TrimSpace(t.text) != "") {
			dropped = dropped[:len(dropped)-1] // <body> or content: the head ended without its end tag
		}
		titleText := inTitle
		inTitle = false
		switch t.kind {
		case textToken:
			if titleText {
				if title == "" {
					title = collapse(t.text)
				}
				continue
			}
			if len(dropped) > 0 {
				continue
			}
			s := t.text
			if preDepth > 0 {
				w.raw(s)
			} else {
				w.text(s)
			}
			continue
		case endTagToken:
			if t.name == "svg" && inSVG > 0 {
				inSVG--
			}
			if i := lastIndex(dropped, t.name); i >= 0 {
				dropped = dropped[:i]
				continue
			}
			if len(dropped) > 0 {
				continue
			}
			if (t.name == "ul" || t.name == "ol") && lists > 0 {
				lists--
				if lists > 0 {
					w.breakLines(1)
					continue
				}
			}
			w.end(t.name, &inLink, linkHref, &preDepth)
			continue
		}
		// Start tag.
		if t.name == "svg" && !t.selfClosing {
			inSVG++
		}
		if t.name == "title" && inSVG == 0 && !t.selfClosing {
			inTitle = true // the tokenizer hands its text over next
			continue
		}
		if len(dropped) > 0 {
			if droppedElements[t.name] && !t.selfClosing {
				dropped = append(dropped, t.name)
			}
			continue
		}
		if droppedElements[t.name] {
			if !t.selfClosing && !voidElements[t.name] {
				dropped = append(dropped, t.name)
			}
			continue
		}
		switch {
		case len(t.name) == 2 && t.name[0] == 'h' && t.name[1] >= '1' && t.name[1] <= '6':
			w.breakLines(2)
			w.prefix(strings.Repeat("#", int(t.name[1]-'0')) + " ")
		case t.name == "li":
			w.breakLines(1)
			w.prefix(strings.Repeat("  ", max(lists-1, 0)) + "- ")
		case t.name == "ul" || t.name == "ol":
			if lists == 0 {
				w.breakLines(2)
			} else {
				w.breakLines(1) // a nested list goes on its parent item's list
			}
			lists++
		case t.name == "br":
			w.hardBreak()
		case t.name == "pre":
			w.breakLines(2)
			preDepth++
		case t.name == "td" || t.name == "th":
			w.space()
		case t.name == "a":
			if inLink { // an unclosed link ends where the next begins
				w.closeLink(linkHref)
			}
			inLink, linkHref = false, ""
			if href, ok := attr(t.attrs, "href"); ok {
				if h := resolveLink(base, href); h != "" {
					inLink, linkHref = true, h
					w.openLink()
				}
			}
		case paragraphElements[t.name]:
			w.breakLines(2)
		case lineElements[t.name]:
			w.breakLines(1)
		}
	}
	if inLink {
		w.closeLink(linkHref)
	}
	return title, strings.TrimSpace(blankRuns.ReplaceAllString(w.b.String(), "\n\n"))
}

func lastIndex(list []string, s string) int {
	for i := len(list) - 1; i >= 0; i-- {
		if list[i] == s {
			return i
		}
	}
	return -1
}

// resolveLink returns href made absolute against base, or "" for links that
// mean nothing outside the page (in-page anchors, javascript:).
func resolveLink(base *url.URL, href string) string {
	href = strings.TrimSpace(href)
	if href == "" || strings.HasPrefix(href, "#") {
		return ""
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	if strings.EqualFold(u.Scheme, "javascript") || strings.EqualFold(u.Scheme, "data") {
		return ""
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	return u.String()
}

// blankRuns matches more than one blank line, which <pre> text can leave.
var blankRuns = regexp.MustCompile(`\n{3,}`)

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// textWriter builds the text. Whitespace between words is held back until
// the next word, so no line ever starts or ends with a space.
type textWriter struct {
	b            strings.Builder
	newlines     int  // newlines at the end of b
	pendingSpace bool // whitespace seen since the last word
	pending      string
	linkOpen     bool // a link has started and its "[" is not written yet
	linkText     bool // the current link has written its "["
}

// word writes s (no whitespace inside) after any held-back space.
func (w *textWriter) word(s string) {
	if w.pendingSpace && w.b.Len() > 0 && w.newlines == 0 {
		w.b.WriteByte(' ')
	}
	w.pendingSpace = false
	w.b.WriteString(w.pending)
	w.pending = ""
	if w.linkOpen {
		w.b.WriteByte('[')
		w.linkOpen, w.linkText = false, true
	}
	w.b.WriteString(s)
	w.newlines = 0
}

func (w *textWriter) text(s string) {
	if s == "" {
		return
	}
	if r, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(r) {
		w.pendingSpace = true
	}
	for _, f := range strings.Fields(s) {
		w.word(f)
		w.pendingSpace = true
	}
	if r, _ := utf8.DecodeLastRuneInString(s); !unicode.IsSpace(r) {
		w.pendingSpace = false
	}
}

// raw writes preformatted text as it is.
func (w *textWriter) raw(s string) {
	if s == "" {
		return
	}
	w.word("")
	w.b.WriteString(s)
	if trail := len(s) - len(strings.TrimRight(s, "\n")); trail == len(s) {
		w.newlines += trail
	} else {
		w.newlines = trail
	}
}

func (w *textWriter) space() { w.pendingSpace = true }

// breakLines ends the current line and leaves n-1 blank lines, never more
// than that however many blocks close at once.
func (w *textWriter) breakLines(n int) {
	w.pendingSpace = false
	w.pending = ""
	if w.b.Len() == 0 {
		return
	}
	for w.newlines < n {
		w.b.WriteByte('\n')
		w.newlines++
	}
}

// hardBreak is <br>: a new line even on an empty one, up to one blank line.
func (w *textWriter) hardBreak() {
	w.pendingSpace = false
	if w.b.Len() == 0 || w.newlines >= 2 {
		return
	}
	w.b.WriteByte('\n')
	w.newlines++
}

// prefix sets a marker ("# ", "- ") written before the next word, so an
// empty heading or list item leaves nothing behind.
func (w *textWriter) prefix(p string) { w.pending = p }

func (w *textWriter) openLink() { w.linkOpen, w.linkText = true, false }

func (w *textWriter) closeLink(href string) {
	if w.linkText {
		w.b.WriteString("](" + href + ")")
		w.newlines = 0
	}
	w.linkOpen, w.linkText = false, false
}

// end handles an end tag outside dropped content.
func (w *textWriter) end(name string, inLink *bool, href string, preDepth *int) {
	switch {
	case name == "a":
		if *inLink {
			w.closeLink(href)
			*inLink = false
		}
	case name == "pre":
		if *preDepth > 0 {
			*preDepth--
		}
		w.breakLines(2)
	case name == "td" || name == "th":
		w.space()
	case paragraphElements[name]:
		w.breakLines(2)
	case lineElements[name]:
		w.breakLines(1)
	}
}
