// Package web owns the agent's web tools: web_search, which asks a search
// backend (SearXNG, Brave, Tavily or DuckDuckGo's HTML page) and normalizes
// its answer, and web_extract, which fetches pages and turns them into
// readable text behind an SSRF guard.
//
// It may import the root package, tooling, the standard library and
// golang.org/x/net: pages and DuckDuckGo's results are read with its HTML5
// tokenizer (html) and decoded from their declared or sniffed charset
// (html/charset).
package web
