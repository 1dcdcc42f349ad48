package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/tooling"
)

// runTool runs tool t with args and returns its JSON result, decoded.
func runTool(t *testing.T, tool tooling.Tool, args string) map[string]any {
	t.Helper()
	out := tool.Run(context.Background(), tooling.Call{ID: "call_1", Args: []byte(args)})
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, out)
	}
	return m
}

func decodeSearch(t *testing.T, tool tooling.Tool, args string) searchOutput {
	t.Helper()
	out := tool.Run(context.Background(), tooling.Call{Args: []byte(args)})
	var s searchOutput
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, out)
	}
	if s.Backend == "" {
		t.Fatalf("not a search result: %s", out)
	}
	return s
}

func newSearch(t *testing.T, opts Options) tooling.Tool {
	t.Helper()
	tools := New(opts)
	for _, tl := range tools {
		if tl.Spec().Name == "web_search" {
			return tl
		}
	}
	t.Fatal("New returned no web_search")
	return nil
}

func TestSearXNG(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/searx/search" {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		if q := r.URL.Query(); q.Get("q") != "go & rust" || q.Get("format") != "json" {
			t.Errorf("query params %v", q)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"query":"go & rust","results":[
			{"title":"Go &amp; Rust","url":"https://a.example/","content":"Compare <b>Go</b> and\n Rust","engine":"x"},
			{"title":"No URL","url":"","content":"dropped"},
			{"title":"Second","url":"https://b.example/","content":""},
			{"title":"Third","url":"https://c.example/","content":"three"}]}`)
	}))
	defer srv.Close()

	got := decodeSearch(t, newSearch(t, Options{SearXNGURL: srv.URL + "/searx/"}), `{"query":" go & rust ","limit":2}`)
	want := searchOutput{Backend: "searxng", Query: "go & rust", Results: []searchResult{
		{Title: "Go & Rust", URL: "https://a.example/", Description: "Compare Go and Rust", Position: 1},
		{Title: "Second", URL: "https://b.example/", Description: "", Position: 2},
	}}
	assertSearch(t, got, want)
}

func TestBrave(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/res/v1/web/search" {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("X-Subscription-Token"); got != "brave-key" {
			t.Errorf("X-Subscription-Token = %q", got)
		}
		if got := r.Header.Get("Accept"); got != "application/json" {
			t.Errorf("Accept = %q", got)
		}
		q := r.URL.Query()
		if q.Get("q") != "hermes agent" || q.Get("count") != "20" {
			t.Errorf("query params %v", q)
		}
		io.WriteString(w, `{"type":"search","web":{"type":"search","results":[
			{"title":"Hermes &#39;Agent&#39;","url":"https://h.example/","description":"The <strong>hermes</strong> agent."},
			{"title":"Two","url":"https://two.example/","description":"second &lt;one&gt;"}]}}`)
	}))
	defer srv.Close()

	// A limit above 20 is clamped to 20, Brave's own maximum.
	got := decodeSearch(t, newSearch(t, Options{BraveAPIKey: "brave-key", BraveBaseURL: srv.URL}), `{"query":"hermes agent","limit":99}`)
	assertSearch(t, got, searchOutput{Backend: "brave", Query: "hermes agent", Results: []searchResult{
		{Title: "Hermes 'Agent'", URL: "https://h.example/", Description: "The hermes agent.", Position: 1},
		{Title: "Two", URL: "https://two.example/", Description: "second <one>", Position: 2},
	}})
}

func TestTavily(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/search" {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer tvly-key" {
			t.Errorf("Authorization = %q", got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		var body struct {
			Query      string `json:"query"`
			MaxResults int    `json:"max_results"`
			APIKey     string `json:"api_key"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("body: %v", err)
		}
		if body.Query != "bbolt" || body.MaxResults != 5 || body.APIKey != "tvly-key" {
			t.Errorf("body = %+v", body)
		}
		io.WriteString(w, `{"query":"bbolt","results":[
			{"title":"bbolt","url":"https://github.com/etcd-io/bbolt","content":"An embedded key/value database for Go.","score":0.9}]}`)
	}))
	defer srv.Close()

	// No limit: the default of 5 is asked for.
	got := decodeSearch(t, newSearch(t, Options{TavilyAPIKey: "tvly-key", TavilyBaseURL: srv.URL}), `{"query":"bbolt"}`)
	assertSearch(t, got, searchOutput{Backend: "tavily", Query: "bbolt", Results: []searchResult{
		{Title: "bbolt", URL: "https://github.com/etcd-io/bbolt", Description: "An embedded key/value database for Go.", Position: 1},
	}})
}

func TestDuckDuckGo(t *testing.T) {
	page, err := os.ReadFile("testdata/ddg.html")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/html/" {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("q") != "golang generics" {
			t.Errorf("form %v (%v)", r.PostForm, err)
		}
		if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "Mozilla/5.0") {
			t.Errorf("User-Agent = %q", ua)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	}))
	defer srv.Close()

	got := decodeSearch(t, newSearch(t, Options{DuckDuckGoBaseURL: srv.URL}), `{"query":"golang generics"}`)
	assertSearch(t, got, searchOutput{Backend: "duckduckgo", Query: "golang generics", Results: []searchResult{
		{
			Title:       "Tutorial: Getting started with generics - The Go Programming Language",
			URL:         "https://go.dev/doc/tutorial/generics?a=1&b=2",
			Description: "In this tutorial, you'll learn the basics of generics in Go & more — with type parameters.",
			Position:    1,
		},
		{
			Title:       `Direct <link> "quoted"`,
			URL:         "https://example.org/direct?x=1&y=2",
			Description: "Snippet in a div with a nested div inside.",
			Position:    2,
		},
		{Title: "Relative redirect", URL: "https://relative.example/page", Position: 3},
	}})
}

func TestDuckDuckGoBotCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<html><body><div class="anomaly-modal__title">Unfortunately, bots use DuckDuckGo too.</div></body></html>`)
	}))
	defer srv.Close()
	m := runTool(t, newSearch(t, Options{Backend: "duckduckgo", DuckDuckGoBaseURL: srv.URL}), `{"query":"x"}`)
	if e, _ := m["error"].(string); !strings.Contains(e, "duckduckgo") || !strings.Contains(e, "bot-check") {
		t.Errorf("error = %q", e)
	}
}

func TestSearchErrors(t *testing.T) {
	var status int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	defer srv.Close()

	tests := []struct {
		name   string
		opts   Options
		status int
		body   string
		args   string
		want   []string // substrings of the error
	}{
		{"searxng 500", Options{SearXNGURL: srv.URL}, 500, "<h1>Internal Server Error</h1>", `{"query":"q"}`,
			[]string{"searxng", "HTTP 500", "Internal Server Error"}},
		{"searxng json disabled", Options{SearXNGURL: srv.URL}, 403, "Forbidden", `{"query":"q"}`,
			[]string{"searxng", "HTTP 403", "json format"}},
		{"brave 401", Options{BraveAPIKey: "bad", BraveBaseURL: srv.URL}, 401, `{"error":{"detail":"invalid token"}}`, `{"query":"q"}`,
			[]string{"brave", "HTTP 401", "invalid token"}},
		{"tavily bad json", Options{TavilyAPIKey: "k", TavilyBaseURL: srv.URL}, 200, `{"results":[`, `{"query":"q"}`,
			[]string{"tavily", "decoding response"}},
		{"brave bad json", Options{BraveAPIKey: "k", BraveBaseURL: srv.URL}, 200, `<html>not json</html>`, `{"query":"q"}`,
			[]string{"brave", "decoding response"}},
		{"duckduckgo 503", Options{Backend: "duckduckgo", DuckDuckGoBaseURL: srv.URL}, 503, "", `{"query":"q"}`,
			[]string{"duckduckgo", "HTTP 503"}},
		{"brave without key", Options{Backend: "brave", BraveBaseURL: srv.URL}, 200, "{}", `{"query":"q"}`,
			[]string{"brave", "API key"}},
		{"tavily without key", Options{Backend: "Tavily", TavilyBaseURL: srv.URL}, 200, "{}", `{"query":"q"}`,
			[]string{"tavily", "API key"}},
		{"searxng without url", Options{Backend: "searxng"}, 200, "{}", `{"query":"q"}`,
			[]string{"searxng", "SEARXNG_URL"}},
		{"unknown backend", Options{Backend: "altavista"}, 200, "{}", `{"query":"q"}`,
			[]string{"unknown search backend", "altavista"}},
		{"empty query", Options{SearXNGURL: srv.URL}, 200, "{}", `{"query":"  "}`,
			[]string{"non-empty query"}},
		{"bad arguments", Options{SearXNGURL: srv.URL}, 200, "{}", `{"query":7}`,
			[]string{"invalid tool arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body = tc.status, tc.body
			m := runTool(t, newSearch(t, tc.opts), tc.args)
			e, ok := m["error"].(string)
			if !ok {
				t.Fatalf("no error in %v", m)
			}
			for _, w := range tc.want {
				if !strings.Contains(e, w) {
					t.Errorf("error %q lacks %q", e, w)
				}
			}
		})
	}
}

func TestBackendChoice(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{}, "duckduckgo"},
		{Options{TavilyAPIKey: "t"}, "tavily"},
		{Options{BraveAPIKey: "b", TavilyAPIKey: "t"}, "brave"},
		{Options{SearXNGURL: "http://127.0.0.1:1", BraveAPIKey: "b", TavilyAPIKey: "t"}, "searxng"},
		{Options{Backend: " DuckDuckGo ", BraveAPIKey: "b"}, "duckduckgo"},
		{Options{Backend: "tavily", SearXNGURL: "http://127.0.0.1:1"}, "tavily"},
	}
	for _, tc := range tests {
		if got := tc.opts.backend(); got != tc.want {
			t.Errorf("%+v: backend %q, want %q", tc.opts, got, tc.want)
		}
	}
}

func TestUnwrapDuckDuckGo(t *testing.T) {
	tests := []struct{ href, want string }{
		{"//duckduckgo.com/l/?uddg=https%3A%2F%2Fx.example%2Fa%20b&rut=1", "https://x.example/a%20b"},
		{"https://duckduckgo.com/l/?uddg=http%3A%2F%2Fy.example%2F", "http://y.example/"},
		{"/l/?uddg=https%3A%2F%2Fz.example%2F", "https://z.example/"},
		{"https://plain.example/p?q=1", "https://plain.example/p?q=1"},
		{"https://duckduckgo.com/y.js?ad_domain=x", ""},
		{"//duckduckgo.com/l/?uddg=javascript%3Aalert(1)", ""},
		{"//duckduckgo.com/l/?rut=1", ""},
		{"mailto:a@b.example", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := unwrapDuckDuckGo(tc.href); got != tc.want {
			t.Errorf("unwrap(%q) = %q, want %q", tc.href, got, tc.want)
		}
	}
}

func TestSearchLabelAndSpec(t *testing.T) {
	tool := newSearch(t, Options{})
	if got := tool.Label([]byte(`{"query":"  golang\n generics  "}`)); got != "golang generics" {
		t.Errorf("label = %q", got)
	}
	if got := tool.Label([]byte(`not json`)); got != "" {
		t.Errorf("label of bad args = %q", got)
	}
	long := strings.Repeat("a", 300)
	if got := []rune(tool.Label([]byte(`{"query":"` + long + `"}`))); len(got) != 120 || got[119] != '…' {
		t.Errorf("long label has %d runes", len(got))
	}
	if tool.Emoji() != "🔍" {
		t.Errorf("emoji %q", tool.Emoji())
	}
	var schema map[string]any
	if err := json.Unmarshal(tool.Spec().Parameters, &schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
}

func assertSearch(t *testing.T, got, want searchOutput) {
	t.Helper()
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	if string(g) != string(w) {
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}
