package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/docs"
)

const (
	maxExtractURLs = 5
	// maxParallelFetches bounds the fetches of one call in flight at once.
	maxParallelFetches = 3
	maxRedirects       = 5
	// maxPageBytes caps what is read of one page, so a huge or endless
	// response cannot exhaust memory; the text cap applies after.
	maxPageBytes = 5 << 20
)

var extractSchema = []byte(`{"type":"object","properties":{` +
	`"urls":{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":5,"description":"The http or https URLs to read (1 to 5)."}` +
	`},"required":["urls"]}`)

// extractTool is web_extract.
type extractTool struct {
	opts   Options
	client *http.Client
}

func newExtractTool(opts Options, g *guard) *extractTool {
	return &extractTool{opts: opts, client: extractClient(opts, g)}
}

// extractClient builds the client for fetching model-chosen URLs: guarded
// dialer unless private addresses are allowed, and a redirect policy.
func extractClient(opts Options, g *guard) *http.Client {
	c := &http.Client{Timeout: opts.Timeout, CheckRedirect: checkRedirect}
	if opts.AllowPrivate && opts.HTTPClient != nil {
		c.Transport = opts.HTTPClient.Transport
		c.Jar = opts.HTTPClient.Jar
		return c
	}
	var tr *http.Transport
	if opts.HTTPClient != nil {
		if base, ok := opts.HTTPClient.Transport.(*http.Transport); ok {
			tr = base.Clone()
		}
	}
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	if !opts.AllowPrivate {
		// Every connection must go through the guarded dialer: a proxy would
		// be the only address checked, and custom dial hooks bypass it.
		tr.Proxy = nil
		tr.DialContext = g.dialContext
		tr.DialTLSContext = nil
		// A caller's transport may still set the deprecated hooks, and
		// DialTLS is used whenever DialTLSContext is nil: clear them too.
		tr.Dial = nil    //lint:ignore SA1019 cleared so it cannot bypass the guard
		tr.DialTLS = nil //lint:ignore SA1019 cleared so it cannot bypass the guard
	}
	c.Transport = tr
	return c
}

// checkRedirect follows at most maxRedirects redirects, to http(s) only.
// The destination of each is checked by the guarded dialer when it connects.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused redirect to a %s: URL", req.URL.Scheme)
	}
	return nil
}

func (t *extractTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name: "web_extract",
		Description: "Fetch up to 5 web pages (http or https) and return each one's title and readable text, " +
			"with headings, lists and links kept in markdown form. Long pages are truncated.",
		Parameters: extractSchema,
	}
}

func (t *extractTool) Emoji() string { return "📄" }

func (t *extractTool) Label(args []byte) string {
	var a extractArgs
	if json.Unmarshal(args, &a) != nil || len(a.URLs) == 0 {
		return ""
	}
	label := tooling.OneLine(a.URLs[0], 120)
	if n := len(a.URLs) - 1; n > 0 {
		label += fmt.Sprintf(" +%d more", n)
	}
	return label
}

type extractArgs struct {
	URLs urlList `json:"urls"`
}

// urlList accepts a lone string as well as an array: models sometimes
// send "urls": "https://…" for a single page.
type urlList []string

func (l *urlList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = urlList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("urls must be an array of strings")
	}
	*l = many
	return nil
}

type extractResult struct {
	URL     string `json:"url"`
	Title   string `json:"title"`
	Content string `json:"content"`
	Error   string `json:"error,omitempty"`
}

func (t *extractTool) Run(ctx context.Context, call tooling.Call) string {
	var a extractArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(hermes.AsError(err).Message)
	}
	switch {
	case len(a.URLs) == 0:
		return tooling.ErrorResult("web_extract needs at least one URL in urls")
	case len(a.URLs) > maxExtractURLs:
		return tooling.ErrorResult(fmt.Sprintf("web_extract takes at most %d URLs per call, got %d; split them over several calls", maxExtractURLs, len(a.URLs)))
	}
	results := make([]extractResult, len(a.URLs))
	sem := make(chan struct{}, maxParallelFetches)
	var wg sync.WaitGroup
	for i, u := range a.URLs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = t.fetch(ctx, u)
		})
	}
	wg.Wait()
	return tooling.JSONResult(map[string]any{"results": results})
}

// fetch reads one URL; every failure is reported in the result's error.
func (t *extractTool) fetch(ctx context.Context, raw string) extractResult {
	res := extractResult{URL: raw}
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		res.Error = "invalid URL: " + err.Error()
		return res
	case u.Scheme != "http" && u.Scheme != "https":
		res.Error = "only http and https URLs can be fetched"
		return res
	case u.Host == "":
		res.Error = "invalid URL: no host"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		res.Error = "invalid URL: " + err.Error()
		return res
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5")
	resp, err := t.client.Do(req)
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			res.Error = refused.Error()
		} else {
			res.Error = "fetch failed: " + err.Error()
		}
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Error = "fetch failed: HTTP " + resp.Status
		return res
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
	if err != nil {
		res.Error = "fetch failed: reading body: " + err.Error()
		return res
	}
	ctype := resp.Header.Get("Content-Type")
	if ctype == "" {
		ctype = http.DetectContentType(body)
	}
	mediaType, _, _ := mime.ParseMediaType(ctype)
	text := docs.DecodeText(body, ctype)
	switch {
	case mediaType == "text/html" || mediaType == "application/xhtml+xml":
		res.Title, res.Content = htmlToText(text, resp.Request.URL)
	case strings.HasPrefix(mediaType, "text/") || mediaType == "application/json" ||
		strings.HasSuffix(mediaType, "+json") || mediaType == "application/xml":
		res.Content = text
	default:
		res.Error = fmt.Sprintf("unsupported content type %q: only HTML, text and JSON pages can be read", mediaType)
		return res
	}
	res.Content = truncate(res.Content, t.opts.MaxExtractChars)
	return res
}

// truncate cuts s to max characters, saying so after them.
func truncate(s string, max int) string {
	n := utf8.RuneCountInString(s)
	if n <= max {
		return s
	}
	return tooling.Truncate(s, max, "") + fmt.Sprintf("\n\n[content truncated: showing %d of %d characters]", max, n)
}

// Fetcher fetches URLs a client named (file_url in a request) through
// the same SSRF guard and redirect policy as web_extract: the client may
// be anyone holding the key, and the URL may come from a prompt-injected
// page it relays.
type Fetcher struct {
	client  *http.Client
	timeout time.Duration
}

// NewFetcher returns a guarded fetcher (opts.AllowPrivate lifts the guard,
// as for web_extract).
func NewFetcher(opts Options) *Fetcher {
	opts = opts.withDefaults()
	return &Fetcher{client: extractClient(opts, newGuard()), timeout: opts.Timeout}
}

// Fetch GETs an http(s) URL and returns at most limit bytes of its body
// and its Content-Type; a longer body, a refused address, a non-2xx answer
// or another scheme is an error saying which.
func (f *Fetcher) Fetch(ctx context.Context, raw string, limit int64) ([]byte, string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", errors.New("only http and https URLs can be fetched")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := f.client.Do(req)
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			return nil, "", refused
		}
		return nil, "", fmt.Errorf("fetch failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, "", fmt.Errorf("fetch failed: HTTP %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("fetch failed: reading body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, "", fmt.Errorf("the file is larger than %d bytes", limit)
	}
	return body, resp.Header.Get("Content-Type"), nil
}
