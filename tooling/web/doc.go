// Package web owns the agent's web tools: web_search, which asks a search
// backend (SearXNG, Brave, Tavily or DuckDuckGo's HTML page) and normalizes
// its answer, and web_extract, which fetches pages and turns them into
// readable text behind an SSRF guard.
//
// It may import the root package, tooling and the standard library. HTML is
// read with a small scanner of its own (htmlscan.go) rather than
// golang.org/x/net/html, which the module does not require.
package web
