package llm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// countConns counts the connections f's server accepts.
func countConns(f *fake) *atomic.Int32 {
	var n atomic.Int32
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func newCountedFake(t *testing.T, h http.HandlerFunc) (*fake, *atomic.Int32) {
	t.Helper()
	f := &fake{reqs: make(chan *recorded, 16)}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.reqs <- &recorded{path: r.URL.Path, auth: r.Header.Get("Authorization"), accept: r.Header.Get("Accept"), body: b}
		h(w, r)
	}))
	n := countConns(f)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f, n
}

func TestUpstreamUsesFasthttpUnlessClientOrProxy(t *testing.T) {
	if u := NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1/v1"}); u.fast == nil {
		t.Error("plain upstream does not use fasthttp")
	}
	if u := NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1/v1", HTTPClient: &http.Client{}}); u.fast != nil {
		t.Error("upstream with HTTPClient uses fasthttp")
	}
	if u := NewUpstream(UpstreamOptions{BaseURL: "ftp://127.0.0.1:1/v1"}); u.fast != nil {
		t.Error("ftp upstream uses fasthttp")
	}
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	if u := NewUpstream(UpstreamOptions{BaseURL: "https://api.example/v1"}); u.fast != nil || u.client == nil {
		t.Error("upstream under HTTPS_PROXY does not use net/http")
	}
}

func TestUpstreamReusesConnectionAfterCleanStream(t *testing.T) {
	f, conns := newCountedFake(t, sse(textChunk("hi"), finishChunk("stop"), "[DONE]"))
	u := f.upstream(nil)
	for range 3 {
		if resp, err := u.Stream(context.Background(), userRequest("hi"), nil); err != nil || resp.Text != "hi" {
			t.Fatalf("resp %+v err %v", resp, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential calls, want 1", n)
	}
}

func TestUpstreamClosesCutConnections(t *testing.T) {
	var calls atomic.Int32
	f, conns := newCountedFake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			sse(textChunk("started"))(w, r)
			blockUntilGone(r)
			return
		}
		sse(textChunk("ok"), "[DONE]")(w, r)
	})
	u := f.upstream(nil)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := u.Stream(ctx, userRequest("hi"), func(string) { cancel() }); code(err) != hermes.ECancelled {
		t.Fatalf("err = %v, want ECancelled", err)
	}
	if resp, err := u.Stream(context.Background(), userRequest("hi"), nil); err != nil || resp.Text != "ok" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the cancelled one closed)", n)
	}
}

func TestUpstreamCancellationBeforeHeadersReachesServer(t *testing.T) {
	arrived, gone := make(chan struct{}), make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		blockUntilGone(r)
		close(gone)
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	start := time.Now()
	_, err := f.upstream(nil).Stream(ctx, userRequest("hi"), nil)
	if code(err) != hermes.ECancelled {
		t.Fatalf("err = %v, want ECancelled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("server request context not cancelled")
	}
}

func TestUpstreamRetriesStalePooledConnection(t *testing.T) {
	f, conns := newCountedFake(t, sse(textChunk("hi"), "[DONE]"))
	u := f.upstream(nil)
	if _, err := u.Stream(context.Background(), userRequest("hi"), nil); err != nil {
		t.Fatal(err)
	}
	// The server drops its idle keep-alive connection, as one whose idle
	// timeout expired does; the next call must not fail for it.
	f.srv.CloseClientConnections()
	if resp, err := u.Stream(context.Background(), userRequest("hi"), nil); err != nil || resp.Text != "hi" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestUpstreamHTTPClientPath(t *testing.T) {
	var used atomic.Int32
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "models") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data":[{"id":"m1"}]}`)
			return
		}
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"message":"busy"}}`)
	})
	u := f.upstream(func(o *UpstreamOptions) { o.HTTPClient = client })
	_, err := u.Stream(context.Background(), userRequest("hi"), nil)
	if he := hermes.AsError(err); code(err) != hermes.ERateLimited || he.RetryAfter != 3*time.Second || !strings.Contains(he.Message, "busy") {
		t.Fatalf("err = %v", err)
	}
	if ids, err := u.Models(context.Background()); err != nil || len(ids) != 1 || ids[0] != "m1" {
		t.Fatalf("ids %q err %v", ids, err)
	}
	if used.Load() != 2 {
		t.Errorf("HTTPClient used %d times, want 2", used.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestUpstreamTLS(t *testing.T) {
	srv := httptest.NewTLSServer(sse(textChunk("secure"), finishChunk("stop"), "[DONE]"))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	u := NewUpstream(UpstreamOptions{BaseURL: srv.URL + "/v1", Model: "m"})
	u.fast = newFastClient(u.url, time.Second, &tls.Config{RootCAs: roots})
	for range 2 {
		if resp, err := u.Stream(context.Background(), userRequest("hi"), nil); err != nil || resp.Text != "secure" {
			t.Fatalf("resp %+v err %v", resp, err)
		}
	}
	// Without the test CA the certificate is refused.
	plain := NewUpstream(UpstreamOptions{BaseURL: srv.URL + "/v1", Model: "m"})
	if _, err := plain.Stream(context.Background(), userRequest("hi"), nil); code(err) != hermes.EUpstream {
		t.Fatalf("err = %v, want EUpstream", err)
	}
}

// recordCounter counts the TLS application data records a server reads
// (a record's type and length are in its 5-byte header, in the clear).
type recordCounter struct {
	net.Conn
	records *atomic.Int32
	hdr     []byte // the header being read
	skip    int    // what is left of the current record's body
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip, b = c.skip-k, b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr, b = append(c.hdr, b[:k]...), b[k:]
		if len(c.hdr) == 5 {
			if c.hdr[0] == 23 {
				c.records.Add(1)
			}
			c.skip, c.hdr = int(c.hdr[3])<<8|int(c.hdr[4]), c.hdr[:0]
		}
	}
	return n, err
}

type recordListener struct {
	net.Listener
	records *atomic.Int32
}

func (l recordListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordCounter{Conn: c, records: l.records}, nil
}

// TestUpstreamTLSRequestInOneRecord: over TLS the agent's 10.5 KB request
// leaves in one record (one write), not in the small first records of
// dynamic record sizing, which cut it into several on a new connection.
func TestUpstreamTLSRequestInOneRecord(t *testing.T) {
	var records atomic.Int32
	srv := httptest.NewUnstartedServer(sse(textChunk("secure"), finishChunk("stop"), "[DONE]"))
	srv.Listener = recordListener{Listener: srv.Listener, records: &records}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	u := NewUpstream(UpstreamOptions{BaseURL: srv.URL + "/v1", Model: "m"})
	u.fast = newFastClient(u.url, time.Second, &tls.Config{RootCAs: roots})
	req := agentRequest(t)
	// The first call's records include the end of the handshake (TLS 1.3
	// encrypts it as application data); the second's are the request's.
	for i := range 2 {
		before := records.Load()
		if resp, err := u.Stream(context.Background(), req, nil); err != nil || resp.Text != "secure" {
			t.Fatalf("resp %+v err %v", resp, err)
		}
		if n := records.Load() - before; i == 1 && n != 1 {
			t.Fatalf("the request went out in %d TLS records", n)
		}
	}
}
