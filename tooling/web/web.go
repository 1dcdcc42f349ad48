package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/hermesd/hermesd/tooling"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultBraveBaseURL      = "https://api.search.brave.com"
	DefaultTavilyBaseURL     = "https://api.tavily.com"
	DefaultDuckDuckGoBaseURL = "https://html.duckduckgo.com"
	DefaultTimeout           = 20 * time.Second
	DefaultMaxExtractChars   = 30000
)

// Backend names accepted in Options.Backend.
const (
	BackendSearXNG    = "searxng"
	BackendBrave      = "brave"
	BackendTavily     = "tavily"
	BackendDuckDuckGo = "duckduckgo"
)

// userAgent is sent on every request. A browser-like prefix keeps sites and
// DuckDuckGo from serving their bot pages to an otherwise anonymous client.
const userAgent = "Mozilla/5.0 (compatible; hermesd/1.0; +https://github.com/hermesd/hermesd)"

// Options configures the web tools.
type Options struct {
	// Backend is "searxng", "brave", "tavily" or "duckduckgo". Empty picks
	// SearXNG when SearXNGURL is set, else Brave when BraveAPIKey is set,
	// else Tavily when TavilyAPIKey is set, else DuckDuckGo.
	Backend      string
	SearXNGURL   string // base URL of a SearXNG instance (SEARXNG_URL)
	BraveAPIKey  string
	TavilyAPIKey string
	// Base URLs of the hosted backends; empty means the public service.
	BraveBaseURL      string
	TavilyBaseURL     string
	DuckDuckGoBaseURL string
	// AllowPrivate lets web_extract reach loopback, private and link-local
	// addresses (HERMES_WEB_ALLOW_PRIVATE). Search backends are configured
	// by the operator and are never subject to the guard.
	AllowPrivate bool
	// HTTPClient, when set, is used for search requests. web_extract clones
	// its *http.Transport and replaces the dialer with the guarded one (and
	// drops any proxy, which would hide the real destination) unless
	// AllowPrivate is set, in which case the client is used as given.
	HTTPClient *http.Client
	// Timeout bounds each search request and each page fetch (default 20s).
	Timeout time.Duration
	// MaxExtractChars caps the text returned per page (default 30000).
	MaxExtractChars int
}

func (o Options) withDefaults() Options {
	if o.BraveBaseURL == "" {
		o.BraveBaseURL = DefaultBraveBaseURL
	}
	if o.TavilyBaseURL == "" {
		o.TavilyBaseURL = DefaultTavilyBaseURL
	}
	if o.DuckDuckGoBaseURL == "" {
		o.DuckDuckGoBaseURL = DefaultDuckDuckGoBaseURL
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxExtractChars <= 0 {
		o.MaxExtractChars = DefaultMaxExtractChars
	}
	return o
}

// backend returns the search backend these options select.
func (o Options) backend() string {
	if b := strings.ToLower(strings.TrimSpace(o.Backend)); b != "" {
		return b
	}
	switch {
	case o.SearXNGURL != "":
		return BackendSearXNG
	case o.BraveAPIKey != "":
		return BackendBrave
	case o.TavilyAPIKey != "":
		return BackendTavily
	}
	return BackendDuckDuckGo
}

// New returns the web_search and web_extract tools.
func New(opts Options) []tooling.Tool {
	opts = opts.withDefaults()
	return []tooling.Tool{
		newSearchTool(opts),
		newExtractTool(opts, newGuard()),
	}
}
