package web

import (
	"html"
	"net/url"
	"strings"
)

// parseDuckDuckGo reads results out of DuckDuckGo's HTML search page. A
// result is an element of class result__a (the title link) followed by one
// of class result__snippet; nothing else about the markup is relied on, so
// attribute order, extra classes and the snippet's tag may change.
func parseDuckDuckGo(page string) []searchResult {
	var (
		out      []searchResult
		field    *string // the field being captured, nil when none
		capTag   string  // tag whose end closes the capture
		capDepth int     // nested elements of the same name inside it
		buf      strings.Builder
	)
	z := newTokenizer(page)
	for {
		t, ok := z.next()
		if !ok {
			break
		}
		if field != nil {
			switch t.kind {
			case textToken:
				buf.WriteString(html.EscapeString(t.text))
			case startTagToken:
				if t.name == capTag && !t.selfClosing {
					capDepth++
				}
				if t.name == "br" {
					buf.WriteByte(' ')
				}
			case endTagToken:
				if t.name != capTag {
					break
				}
				if capDepth > 0 {
					capDepth--
					break
				}
				// An HTML fragment again (entities encoded), as the
				// other backends' text is; normalize decodes it.
				*field = buf.String()
				field = nil
				buf.Reset()
			}
			continue
		}
		if t.kind != startTagToken || t.selfClosing {
			continue
		}
		switch {
		case hasClass(t.attrs, "result__a"):
			href, _ := attr(t.attrs, "href")
			out = append(out, searchResult{URL: unwrapDuckDuckGo(href)})
			field = &out[len(out)-1].Title
		case hasClass(t.attrs, "result__snippet") && len(out) > 0 && out[len(out)-1].Description == "":
			field = &out[len(out)-1].Description
		default:
			continue
		}
		capTag, capDepth = t.name, 0
	}
	// Ads link to duckduckgo.com/y.js and organic results never point back at
	// DuckDuckGo, so anything left without an outside URL is dropped.
	kept := out[:0]
	for _, r := range out {
		if r.URL != "" {
			kept = append(kept, r)
		}
	}
	return kept
}

// unwrapDuckDuckGo turns a result href into the target URL: DuckDuckGo
// links through //duckduckgo.com/l/?uddg=<escaped target>. It returns ""
// for links that lead nowhere outside DuckDuckGo.
func unwrapDuckDuckGo(href string) string {
	href = strings.TrimSpace(href)
	if strings.HasPrefix(href, "//") {
		href = "https:" + href
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	if isDuckDuckGoHost(u.Host) && strings.HasPrefix(u.Path, "/l/") {
		target := u.Query().Get("uddg")
		if u, err = url.Parse(target); err != nil {
			return ""
		}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || isDuckDuckGoHost(u.Host) {
		return ""
	}
	return u.String()
}

// isDuckDuckGoHost reports whether host is DuckDuckGo's; an empty host is a
// relative link, which on its page is DuckDuckGo's too.
func isDuckDuckGoHost(host string) bool {
	host = strings.ToLower(host)
	return host == "" || host == "duckduckgo.com" || strings.HasSuffix(host, ".duckduckgo.com")
}
