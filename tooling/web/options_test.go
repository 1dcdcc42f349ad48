package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingTransport counts the requests that go through it.
type countingTransport struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func TestSearchUsesHTTPClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"results":[{"title":"t","url":"https://u.example/","content":"c"}]}`)
	}))
	defer srv.Close()
	ct := &countingTransport{base: http.DefaultTransport}
	got := decodeSearch(t, newSearch(t, Options{SearXNGURL: srv.URL, HTTPClient: &http.Client{Transport: ct}}), `{"query":"q"}`)
	if len(got.Results) != 1 || ct.n.Load() != 1 {
		t.Errorf("results %+v, %d requests through the given client", got.Results, ct.n.Load())
	}
}

// TestGuardOverridesClientDialer checks that a caller's transport, however
// it dials, cannot carry web_extract past the guard.
func TestGuardOverridesClientDialer(t *testing.T) {
	srv, conns := pageServer(t)
	plain := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{
		DialContext:    plain.DialContext,
		DialTLSContext: plain.DialContext,
		Proxy:          http.ProxyURL(nil),
	}}
	res := runExtract(t, newExtract(t, Options{HTTPClient: client}), srv.URL+"/page")[0]
	if want := "refused: 127.0.0.1" + refusal; res.Error != want {
		t.Errorf("error %q, want %q", res.Error, want)
	}
	if conns.Load() != 0 {
		t.Errorf("%d connections reached the server", conns.Load())
	}
	// With private addresses allowed the caller's client is used as given.
	ct := &countingTransport{base: http.DefaultTransport}
	res = runExtract(t, newExtract(t, Options{AllowPrivate: true, HTTPClient: &http.Client{Transport: ct}}), srv.URL+"/plain")[0]
	if res.Error != "" || ct.n.Load() != 1 {
		t.Errorf("allowed fetch: %+v, %d requests through the given client", res, ct.n.Load())
	}
}

// stallServer answers nothing until the client gives up.
func stallServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTimeouts(t *testing.T) {
	srv := stallServer(t)
	opts := Options{SearXNGURL: srv.URL, AllowPrivate: true, Timeout: 100 * time.Millisecond}
	start := time.Now()
	m := runTool(t, newSearch(t, opts), `{"query":"q"}`)
	if e, _ := m["error"].(string); !strings.Contains(e, "searxng search failed") {
		t.Errorf("search error = %q", e)
	}
	res := runExtract(t, newExtract(t, opts), srv.URL+"/slow")[0]
	if !strings.Contains(res.Error, "fetch failed") {
		t.Errorf("extract error = %q", res.Error)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("two timed-out calls took %v", d)
	}
}

func TestExtractCancelled(t *testing.T) {
	srv := stallServer(t)
	tool := newExtract(t, Options{AllowPrivate: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string)
	go func() {
		done <- tool.Run(ctx, toolCall(`{"urls":["`+srv.URL+`/a","`+srv.URL+`/b"]}`))
	}()
	cancel()
	if out := <-done; strings.Count(out, "context canceled") != 2 {
		t.Errorf("cancelled run: %s", out)
	}
}

func TestExtractBodyCap(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		chunk := strings.Repeat("a", 64<<10)
		for range (maxPageBytes / len(chunk)) + 16 { // 1 MiB past the cap
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	res := runExtract(t, newExtract(t, Options{AllowPrivate: true}), srv.URL)[0]
	want := "[content truncated: showing 30000 of 5242880 characters]"
	if res.Error != "" || !strings.HasSuffix(res.Content, want) {
		t.Errorf("error %q, content ends %q", res.Error, res.Content[max(0, len(res.Content)-80):])
	}
}
