package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

const (
	defaultLimit = 5
	maxLimit     = 20
	// maxSearchBody caps what is read from a search backend, so a broken
	// or hostile upstream cannot make a turn buffer without bound.
	maxSearchBody = 4 << 20
)

var searchSchema = []byte(`{"type":"object","properties":{` +
	`"query":{"type":"string","description":"What to search the web for."},` +
	`"limit":{"type":"integer","minimum":1,"maximum":20,"description":"How many results to return (default 5, at most 20)."}` +
	`},"required":["query"]}`)

// searchTool is web_search.
type searchTool struct {
	opts    Options
	backend string
	client  *http.Client
}

func newSearchTool(opts Options) *searchTool {
	c := opts.HTTPClient
	if c == nil {
		c = &http.Client{Timeout: opts.Timeout}
	}
	return &searchTool{opts: opts, backend: opts.backend(), client: c}
}

func (t *searchTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name: "web_search",
		Description: "Search the web. Returns the top results with title, url and a short description. " +
			"Use web_extract to read the pages that look useful.",
		Parameters: searchSchema,
	}
}

func (t *searchTool) Emoji() string { return "🔍" }

func (t *searchTool) Label(args []byte) string {
	var a searchArgs
	_ = json.Unmarshal(args, &a)
	return tooling.OneLine(a.Query, 120)
}

type searchArgs struct {
	Query string `json:"query"`
	Limit int    `json:"limit"`
}

type searchResult struct {
	Title       string `json:"title"`
	URL         string `json:"url"`
	Description string `json:"description"`
	Position    int    `json:"position"`
}

type searchOutput struct {
	Results []searchResult `json:"results"`
	Backend string         `json:"backend"`
	Query   string         `json:"query"`
}

func (t *searchTool) Run(ctx context.Context, call tooling.Call) string {
	var a searchArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(hermes.AsError(err).Message)
	}
	q := strings.TrimSpace(a.Query)
	if q == "" {
		return tooling.ErrorResult("web_search needs a non-empty query")
	}
	limit := a.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)

	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	var (
		raw []searchResult
		err error
	)
	switch t.backend {
	case BackendSearXNG:
		raw, err = t.searxng(ctx, q, limit)
	case BackendBrave:
		raw, err = t.brave(ctx, q, limit)
	case BackendTavily:
		raw, err = t.tavily(ctx, q, limit)
	case BackendDuckDuckGo:
		raw, err = t.duckduckgo(ctx, q)
	default:
		err = fmt.Errorf("unknown search backend %q (want searxng, brave, tavily or duckduckgo)", t.backend)
	}
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	return tooling.JSONResult(searchOutput{Results: normalize(raw, limit), Backend: t.backend, Query: q})
}

// normalize cleans titles and descriptions (backends return HTML
// fragments), drops entries without a URL, cuts to limit and numbers them.
func normalize(in []searchResult, limit int) []searchResult {
	out := make([]searchResult, 0, min(len(in), limit))
	for _, r := range in {
		if len(out) == limit {
			break
		}
		r.URL = strings.TrimSpace(r.URL)
		if r.URL == "" {
			continue
		}
		r.Title = plainText(r.Title)
		r.Description = plainText(r.Description)
		r.Position = len(out) + 1
		out = append(out, r)
	}
	return out
}

// do sends req and returns the body of a 2xx answer; anything else is an
// error naming the backend and the status.
func (t *searchTool) do(req *http.Request) ([]byte, error) {
	req.Header.Set("User-Agent", userAgent)
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s search failed: %v", t.backend, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSearchBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := fmt.Sprintf("%s search failed: upstream returned HTTP %d", t.backend, resp.StatusCode)
		if s := tooling.OneLine(plainText(string(body)), 200); s != "" {
			msg += ": " + s
		}
		if t.backend == BackendSearXNG && resp.StatusCode == http.StatusForbidden {
			msg += " (is the json format enabled in the SearXNG settings?)"
		}
		return nil, fmt.Errorf("%s", msg)
	}
	if err != nil {
		return nil, fmt.Errorf("%s search failed: reading response: %v", t.backend, err)
	}
	return body, nil
}

func (t *searchTool) decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s search failed: decoding response: %v", t.backend, err)
	}
	return nil
}

// searxng asks a SearXNG instance's JSON API: GET /search?q=…&format=json.
func (t *searchTool) searxng(ctx context.Context, q string, limit int) ([]searchResult, error) {
	if t.opts.SearXNGURL == "" {
		return nil, fmt.Errorf("searxng search needs a SearXNG URL (SEARXNG_URL)")
	}
	u := strings.TrimRight(t.opts.SearXNGURL, "/") + "/search?" + url.Values{"q": {q}, "format": {"json"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("searxng search failed: bad SearXNG URL: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	return t.contentResults(req)
}

// brave asks the Brave Search API: GET /res/v1/web/search?q=…&count=N with
// the key in X-Subscription-Token.
func (t *searchTool) brave(ctx context.Context, q string, limit int) ([]searchResult, error) {
	if t.opts.BraveAPIKey == "" {
		return nil, fmt.Errorf("brave search needs an API key (BRAVE_API_KEY)")
	}
	u := strings.TrimRight(t.opts.BraveBaseURL, "/") + "/res/v1/web/search?" +
		url.Values{"q": {q}, "count": {strconv.Itoa(limit)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("brave search failed: bad base URL: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Subscription-Token", t.opts.BraveAPIKey)
	body, err := t.do(req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Web struct {
			Results []struct {
				Title       string `json:"title"`
				URL         string `json:"url"`
				Description string `json:"description"`
			} `json:"results"`
		} `json:"web"`
	}
	if err := t.decode(body, &resp); err != nil {
		return nil, err
	}
	out := make([]searchResult, 0, len(resp.Web.Results))
	for _, r := range resp.Web.Results {
		out = append(out, searchResult{Title: r.Title, URL: r.URL, Description: r.Description})
	}
	return out, nil
}

// tavily asks the Tavily API: POST /search with a JSON body. The key goes
// both as a bearer token (the current API) and as api_key in the body
// (older deployments and proxies that still read it there).
func (t *searchTool) tavily(ctx context.Context, q string, limit int) ([]searchResult, error) {
	if t.opts.TavilyAPIKey == "" {
		return nil, fmt.Errorf("tavily search needs an API key (TAVILY_API_KEY)")
	}
	payload, err := json.Marshal(map[string]any{
		"query":       q,
		"max_results": limit,
		"api_key":     t.opts.TavilyAPIKey,
	})
	if err != nil {
		return nil, fmt.Errorf("tavily search failed: %v", err)
	}
	u := strings.TrimRight(t.opts.TavilyBaseURL, "/") + "/search"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("tavily search failed: bad base URL: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.opts.TavilyAPIKey)
	return t.contentResults(req)
}

// duckduckgo posts the query to DuckDuckGo's HTML page, as its own search
// form does, and reads the results out of the markup.
func (t *searchTool) duckduckgo(ctx context.Context, q string) ([]searchResult, error) {
	u := strings.TrimRight(t.opts.DuckDuckGoBaseURL, "/") + "/html/"
	form := url.Values{"q": {q}, "b": {""}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form))
	if err != nil {
		return nil, fmt.Errorf("duckduckgo search failed: bad base URL: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	body, err := t.do(req)
	if err != nil {
		return nil, err
	}
	page := string(body)
	results := parseDuckDuckGo(page)
	if len(results) == 0 && (strings.Contains(page, "anomaly-modal") || strings.Contains(page, "challenge-form")) {
		// DuckDuckGo answers rate-limited clients with 200 and a challenge
		// page; an empty result list would hide that from the model.
		return nil, fmt.Errorf("duckduckgo search failed: DuckDuckGo served a bot-check page instead of results; try again later or configure another backend")
	}
	return results, nil
}

// contentResults runs req against a backend answering
// {"results":[{"title","url","content"}]}, as SearXNG and Tavily do.
func (t *searchTool) contentResults(req *http.Request) ([]searchResult, error) {
	body, err := t.do(req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Results []struct {
			Title   string `json:"title"`
			URL     string `json:"url"`
			Content string `json:"content"`
		} `json:"results"`
	}
	if err := t.decode(body, &resp); err != nil {
		return nil, err
	}
	out := make([]searchResult, 0, len(resp.Results))
	for _, r := range resp.Results {
		out = append(out, searchResult{Title: r.Title, URL: r.URL, Description: r.Content})
	}
	return out, nil
}
