package web

import (
	"net/url"
	"testing"
)

func TestHTMLToText(t *testing.T) {
	base, _ := url.Parse("https://site.example/dir/page.html")
	tests := []struct {
		name, in, title, text string
	}{
		{"paragraphs", `<p>a</p><p>b</p>`, "", "a\n\nb"},
		{"head without end tag", `<html><head><title>T</title><meta charset=utf-8><p>Hello</p>`, "T", "Hello"},
		{"upper-case tags", `<P>Hi<BR>there</P>`, "", "Hi\nthere"},
		{"quoted > in attribute", `<a title="x>y" href="/z">t</a>`, "", "[t](https://site.example/z)"},
		{"unquoted href, relative", `<a href=other.html>o</a>`, "", "[o](https://site.example/dir/other.html)"},
		{"spaces around link", `x <a href="/l"> spaced  text </a> y`, "", "x [spaced text](https://site.example/l) y"},
		{"link without text", `<p>a<a href="/i"><img src="i.png"></a>b</p>`, "", "ab"},
		{"javascript link", `<a href="javascript:void(0)">click</a>`, "", "click"},
		{"unclosed link", `<a href="/u">tail`, "", "[tail](https://site.example/u)"},
		{"empty heading and item", `<h2> </h2><ul><li></li><li>x</li></ul>`, "", "- x"},
		{"nested lists", `<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>`, "", "- a\n  - b\n- c"},
		{"table", `<table><tr><td>a</td><td>b</td></tr><tr><th>c</th></tr></table>`, "", "a b\nc"},
		{"script with markup", `<script>x = "</p><p>no";</script><p>yes</p>`, "", "yes"},
		{"style then text", `<style>a{b:c}</style>text`, "", "text"},
		{"literal less-than", `<p>a < b && c</p>`, "", "a < b && c"},
		{"entities", `<p>&lt;tag&gt; &amp;amp; &copy; &#x41;&#66;</p>`, "", "<tag> &amp; © AB"},
		{"unterminated comment", `<p>before</p><!-- never closed <p>after</p>`, "", "before"},
		{"svg title is not the page title", `<svg><title>icon</title></svg><title>Page</title>text`, "Page", "text"},
		{"empty title", `<title></title><p>body</p>`, "", "body"},
		{"text ends the head", `<head><title>T</title>Hello <b>there</b>`, "T", "Hello there"},
		{"unclosed links", `<a href="/1">one <a href="/2">two</a>`, "", "[one](https://site.example/1) [two](https://site.example/2)"},
		{"first title wins", `<title>One</title><title>Two</title>`, "One", ""},
		{"heading levels", `<h3>Three</h3><h6>Six</h6>`, "", "### Three\n\n###### Six"},
		{"br runs", `a<br><br><br><br>b`, "", "a\n\nb"},
		{"divs", `<div><div>a</div></div><div>b</div>`, "", "a\nb"},
		{"inline whitespace", "<span>one</span>\n\t <span>two</span><b>three</b>", "", "one twothree"},
		{"noscript", `<noscript><div>x</div>y</noscript>z`, "", "z"},
		{"nested svg", `<svg><g><svg><text>a</text></svg>b</g></svg>c`, "", "c"},
		{"doctype and pi", `<!DOCTYPE html><?xml version="1.0"?><p>ok</p>`, "", "ok"},
		// A comment closed by --!> (HTML5) swallowed the rest of the page.
		{"comment closed by --!>", `<p>before</p><!-- x --!><p>after</p>`, "", "before\n\nafter"},
		{"empty comment", `<p>a</p><!--><p>b</p>`, "", "a\n\nb"},
		{"textarea is text", `<textarea><p>x</p></textarea>y`, "", "<p>x</p>y"},
		{"mixed-case end tag in script", `<script>a</SCRIPT>b`, "", "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			title, text := htmlToText(tc.in, base)
			if title != tc.title || text != tc.text {
				t.Errorf("htmlToText(%q)\n got (%q, %q)\nwant (%q, %q)", tc.in, title, text, tc.title, tc.text)
			}
		})
	}
}

func TestPlainText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain  text\n here", "plain text here"},
		{"The <strong>hermes</strong> agent &amp; co", "The hermes agent & co"},
		{"func Map<K, V any>(m map[K]V)", "func Map<K, V any>(m map[K]V)"},
		{"a<br>b<br/>c", "a b c"},
		{"x &lt;y&gt;", "x <y>"},
		{"AT&T", "AT&T"},
		{"non&nbsp;breaking", "non breaking"},
		{"<span class=\"a\">in</span>line", "inline"},
	}
	for _, tc := range tests {
		if got := plainText(tc.in); got != tc.want {
			t.Errorf("plainText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAttr(t *testing.T) {
	tag := `<a data-x='1>2' CLASS="result__a  big" href=/l/?a=1&amp;b=2 hidden title = "spaced">x</a>`
	tok, ok := newTokenizer(tag).next()
	if !ok || tok.kind != startTagToken || tok.name != "a" {
		t.Fatalf("first token %+v", tok)
	}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"class", "result__a  big", true},
		{"href", "/l/?a=1&b=2", true},
		{"data-x", "1>2", true},
		{"hidden", "", true},
		{"title", "spaced", true},
		{"id", "", false},
	}
	for _, tc := range tests {
		if got, ok := attr(tok.attrs, tc.name); got != tc.want || ok != tc.ok {
			t.Errorf("attr(%s) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if !hasClass(tok.attrs, "big") || hasClass(tok.attrs, "result") {
		t.Error("hasClass must match whole class names")
	}
}
