package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/docs"
)

const testPage = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>  Caf&eacute; &amp; Bar
  </title>
  <style>body { color: red } p > a { }</style>
  <script>if (a < b) { document.write("<p>hidden</p>") }</script>
  <link rel="stylesheet" href="/s.css">
</head>
<body>
  <noscript><p>Enable JavaScript</p></noscript>
  <svg viewBox="0 0 10 10"><title>icon title</title><path d="M0 0"/></svg>
  <h1>Main   heading</h1>
  <p>First paragraph with a <a href="/docs/intro?x=1&amp;y=2">relative link</a>,
     an <a href="https://other.example/">absolute one</a> and <a href="#top">an anchor</a>.</p>
  <div>Line one<br>Line two</div>
  <ul>
    <li>Apple</li>
    <li>Banana &lt;ripe&gt;</li>
  </ul>
  <h2>Sub</h2>
  <pre>code  keeps
  spacing</pre>
  <!-- <p>a comment</p> -->
  <p>Non&nbsp;breaking &#8212; dash</p>
  <template><p>template text</p></template>
</body>
</html>`

const testPageText = `# Main heading

First paragraph with a [relative link](%s/docs/intro?x=1&y=2), an [absolute one](https://other.example/) and an anchor.

Line one
Line two

- Apple
- Banana <ripe>

## Sub

code  keeps
  spacing

Non breaking — dash`

func newExtract(t *testing.T, opts Options) tooling.Tool {
	t.Helper()
	for _, tl := range New(opts) {
		if tl.Spec().Name == "web_extract" {
			return tl
		}
	}
	t.Fatal("New returned no web_extract")
	return nil
}

func runExtract(t *testing.T, tool tooling.Tool, urls ...string) []extractResult {
	t.Helper()
	args, _ := json.Marshal(map[string]any{"urls": urls})
	out := tool.Run(context.Background(), tooling.Call{Args: args})
	var res struct {
		Results []extractResult `json:"results"`
		Error   string          `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, out)
	}
	if res.Error != "" || len(res.Results) != len(urls) {
		t.Fatalf("want %d results, got %s", len(urls), out)
	}
	return res.Results
}

// runExtractBatches runs urls five per call, the tool's maximum.
func runExtractBatches(t *testing.T, tool tooling.Tool, urls []string) []extractResult {
	t.Helper()
	var res []extractResult
	for i := 0; i < len(urls); i += maxExtractURLs {
		res = append(res, runExtract(t, tool, urls[i:min(i+maxExtractURLs, len(urls))]...)...)
	}
	return res
}

// pageServer serves the test pages on 127.0.0.1 and counts connections.
func pageServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	return pageServerOn(t, nil)
}

// pageServerOn is pageServer on ln (nil: a new 127.0.0.1 listener).
func pageServerOn(t *testing.T, ln net.Listener) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, testPage)
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "plain <b>text</b>\n  kept as is\n")
	})
	mux.HandleFunc("/data.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"a": [1, 2], "b": "<x>"}`)
	})
	mux.HandleFunc("/image.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG\r\n\x1a\n"))
	})
	mux.HandleFunc("/latin1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=iso-8859-1")
		w.Write([]byte("caf\xe9"))
	})
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<title>Big</title><p>"+strings.Repeat("é", 100)+"</p>")
	})
	mux.HandleFunc("/redirect/", func(w http.ResponseWriter, r *http.Request) {
		// /redirect/N redirects N more times, then lands on /page.
		var n int
		fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/redirect/"), "%d", &n)
		if n == 0 {
			http.Redirect(w, r, "/page", http.StatusFound)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/redirect/%d", n-1), http.StatusFound)
	})
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
	})
	srv := httptest.NewUnstartedServer(mux)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestExtractHTML(t *testing.T) {
	srv, _ := pageServer(t)
	res := runExtract(t, newExtract(t, Options{AllowPrivate: true}), srv.URL+"/page")[0]
	if res.Error != "" {
		t.Fatalf("error: %s", res.Error)
	}
	if res.Title != "Café & Bar" {
		t.Errorf("title = %q", res.Title)
	}
	if want := fmt.Sprintf(testPageText, srv.URL); res.Content != want {
		t.Errorf("content:\n%s\n--- want:\n%s", res.Content, want)
	}
	if res.URL != srv.URL+"/page" {
		t.Errorf("url = %q", res.URL)
	}
}

func TestExtractKinds(t *testing.T) {
	srv, _ := pageServer(t)
	tool := newExtract(t, Options{AllowPrivate: true, MaxExtractChars: 50})
	urls := []string{
		srv.URL + "/plain",
		srv.URL + "/data.json",
		srv.URL + "/image.png",
		srv.URL + "/missing",
		srv.URL + "/big",
		"ftp://127.0.0.1/file",
		"file:///etc/passwd",
	}
	res := runExtractBatches(t, tool, urls)
	want := []extractResult{
		{Content: "plain <b>text</b>\n  kept as is\n"},
		{Content: `{"a": [1, 2], "b": "<x>"}`},
		{Error: `unsupported content type "image/png": only HTML, text and JSON pages can be read`},
		{Error: "fetch failed: HTTP 404 Not Found"},
		{Title: "Big", Content: strings.Repeat("é", 50) + "\n\n[content truncated: showing 50 of 100 characters]"},
		{Error: "only http and https URLs can be fetched"},
		{Error: "only http and https URLs can be fetched"},
	}
	for i := range want {
		want[i].URL = urls[i]
		if res[i] != want[i] {
			t.Errorf("%s:\n got %+v\nwant %+v", urls[i], res[i], want[i])
		}
	}
}

func TestExtractLatin1(t *testing.T) {
	srv, _ := pageServer(t)
	res := runExtract(t, newExtract(t, Options{AllowPrivate: true}), srv.URL+"/latin1")[0]
	if res.Content != "café" {
		t.Errorf("content = %q", res.Content)
	}
}

func TestExtractRedirects(t *testing.T) {
	srv, _ := pageServer(t)
	tool := newExtract(t, Options{AllowPrivate: true})
	res := runExtract(t, tool, srv.URL+"/redirect/4", srv.URL+"/redirect/5", srv.URL+"/to?u=file:///etc/passwd")
	// /redirect/4 takes five redirects to reach /page: allowed.
	if res[0].Error != "" || res[0].Title != "Café & Bar" {
		t.Errorf("5 redirects: %+v", res[0])
	}
	// Relative links resolve against the final URL.
	if !strings.Contains(res[0].Content, "("+srv.URL+"/docs/intro?x=1&y=2)") {
		t.Errorf("link not resolved against the final URL: %q", res[0].Content)
	}
	if !strings.Contains(res[1].Error, "stopped after 5 redirects") {
		t.Errorf("6 redirects: %+v", res[1])
	}
	if !strings.Contains(res[2].Error, "refused redirect to a file: URL") {
		t.Errorf("redirect to file: %+v", res[2])
	}
}

func TestExtractArgs(t *testing.T) {
	tool := newExtract(t, Options{AllowPrivate: true})
	tests := []struct{ args, want string }{
		{`{}`, "at least one URL"},
		{`{"urls":[]}`, "at least one URL"},
		{`{"urls":["a","b","c","d","e","f"]}`, "at most 5 URLs"},
		{`{"urls":7}`, "urls must be an array of strings"},
	}
	for _, tc := range tests {
		out := tool.Run(context.Background(), tooling.Call{Args: []byte(tc.args)})
		var m map[string]string
		if err := json.Unmarshal([]byte(out), &m); err != nil || !strings.Contains(m["error"], tc.want) {
			t.Errorf("%s: got %s, want error containing %q", tc.args, out, tc.want)
		}
	}
	// A lone string is taken as one URL.
	srv, _ := pageServer(t)
	out := tool.Run(context.Background(), tooling.Call{Args: []byte(`{"urls":"` + srv.URL + `/plain"}`)})
	if !strings.Contains(out, "kept as is") {
		t.Errorf("single string urls: %s", out)
	}
}

func TestExtractLabel(t *testing.T) {
	tool := newExtract(t, Options{})
	tests := []struct{ args, want string }{
		{`{"urls":["https://a.example/x"]}`, "https://a.example/x"},
		{`{"urls":["https://a.example/x","https://b.example/","https://c.example/"]}`, "https://a.example/x +2 more"},
		{`{"urls":[]}`, ""},
		{`{"urls":"https://one.example/"}`, "https://one.example/"},
		{`garbage`, ""},
	}
	for _, tc := range tests {
		if got := tool.Label([]byte(tc.args)); got != tc.want {
			t.Errorf("Label(%s) = %q, want %q", tc.args, got, tc.want)
		}
	}
	if tool.Emoji() != "📄" {
		t.Errorf("emoji %q", tool.Emoji())
	}
}

const refusal = " resolves to a private, loopback or reserved address, or one of this machine's own (set HERMES_WEB_ALLOW_PRIVATE=true to allow)"

func TestExtractRefusesPrivate(t *testing.T) {
	srv, conns := pageServer(t)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	tool := newExtract(t, Options{})
	tests := []struct{ url, host string }{
		{fmt.Sprintf("http://127.0.0.1:%d/page", port), "127.0.0.1"},
		{fmt.Sprintf("http://localhost:%d/page", port), "localhost"},
		{fmt.Sprintf("http://LOCALHOST.:%d/page", port), "LOCALHOST."},
		{fmt.Sprintf("http://api.localhost:%d/page", port), "api.localhost"},
		{fmt.Sprintf("http://[::1]:%d/page", port), "::1"},
		{fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/page", port), "::ffff:127.0.0.1"},
		{fmt.Sprintf("http://0.0.0.0:%d/page", port), "0.0.0.0"},
		// Never dialled: the guard refuses before any packet is sent.
		{"http://10.0.0.1/", "10.0.0.1"},
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
		{"https://100.64.0.1/", "100.64.0.1"},
		{"http://[fe80::1]/", "fe80::1"},
		{"http://[fd00::1]/", "fd00::1"},
		{"http://192.0.2.1/", "192.0.2.1"},
		{"http://[2001:db8::1]/", "2001:db8::1"},
	}
	urls := make([]string, len(tests))
	for i, tc := range tests {
		urls[i] = tc.url
	}
	res := runExtractBatches(t, tool, urls)
	for i, tc := range tests {
		if want := "refused: " + tc.host + refusal; res[i].Error != want {
			t.Errorf("%s: error %q, want %q", tc.url, res[i].Error, want)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the guarded fetches opened %d connections to the loopback server", n)
	}
}

// TestExtractRefusesRedirect lets the guard reach 127.0.0.1 only, so that a
// page there can redirect to an address the guard must still refuse.
func TestExtractRefusesRedirect(t *testing.T) {
	srv, conns := pageServer(t)
	g := newGuard()
	g.blocked = func(a netip.Addr) bool { return a != netip.MustParseAddr("127.0.0.1") && blockedAddr(a) }
	g.own = noAddrs // 127.0.0.1 is an interface address too
	tool := newExtractTool(Options{}.withDefaults(), g)
	res := runExtract(t, tool,
		srv.URL+"/page",
		srv.URL+"/to?u="+url.QueryEscape("http://169.254.169.254/latest/meta-data/"),
		srv.URL+"/to?u="+url.QueryEscape("http://localhost:1/"),
	)
	if res[0].Error != "" || res[0].Title != "Café & Bar" {
		t.Errorf("allowed page: %+v", res[0])
	}
	if want := "refused: 169.254.169.254" + refusal; res[1].Error != want {
		t.Errorf("redirect to metadata: %q", res[1].Error)
	}
	// localhost is ::1 as well as 127.0.0.1; one refused address refuses the name.
	if want := "refused: localhost" + refusal; res[2].Error != want {
		t.Errorf("redirect to localhost: %q", res[2].Error)
	}
	if conns.Load() == 0 {
		t.Error("the allowed page was never fetched")
	}
}

// TestGuardResolvesNames checks that a host name is refused for what it
// resolves to, and that what is dialled is the checked address, not the
// name again (which a rebinding DNS server could answer differently). A
// fake resolver and a fake connect keep every packet on this host.
func TestGuardResolvesNames(t *testing.T) {
	g := newGuard()
	var asked atomic.Int64
	g.resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		asked.Add(1)
		switch host {
		case "internal.test":
			return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")}, nil
		case "metadata.test":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		case "public.test":
			return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:4700::7")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var (
		mu      sync.Mutex
		dialled []string
	)
	g.connect = func(_ context.Context, _ *net.Dialer, network, address string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, address)
		mu.Unlock()
		return nil, errors.New("test dial refused")
	}
	tool := newExtractTool(Options{}.withDefaults(), g)
	res := runExtract(t, tool,
		"http://internal.test:8080/page",
		"http://metadata.test/",
		"http://nowhere.test/",
		"https://public.test:8443/",
	)
	if want := "refused: internal.test" + refusal; res[0].Error != want {
		t.Errorf("mixed answer: %q", res[0].Error)
	}
	if want := "refused: metadata.test" + refusal; res[1].Error != want {
		t.Errorf("metadata name: %q", res[1].Error)
	}
	if !strings.Contains(res[2].Error, "no such host") {
		t.Errorf("unknown name: %q", res[2].Error)
	}
	if !strings.Contains(res[3].Error, "test dial refused") {
		t.Errorf("public name: %q", res[3].Error)
	}
	if asked.Load() != 4 {
		t.Errorf("resolver asked %d times", asked.Load())
	}
	// Only the public name was dialled, by address, each answer in turn.
	want := []string{"93.184.216.34:8443", "[2606:4700::7]:8443"}
	if fmt.Sprint(dialled) != fmt.Sprint(want) {
		t.Errorf("dialled %v, want %v", dialled, want)
	}
}

// TestDialControlRefuses checks the last line of defence on its own: the
// dialer's Control hook refuses the address a socket is about to connect
// to, whatever name or lookup led there.
func TestDialControlRefuses(t *testing.T) {
	srv, conns := pageServer(t)
	d := newGuard().dialer("rebound.test")
	conn, err := d.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	if err == nil {
		conn.Close()
		t.Fatal("dial to 127.0.0.1 succeeded")
	}
	if want := "refused: rebound.test" + refusal; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	if conns.Load() != 0 {
		t.Errorf("%d connections reached the server", conns.Load())
	}
	// With the loopback address allowed, the same dialer connects: the
	// refusal above came from the classifier, not from a broken dialer.
	g := newGuard()
	g.blocked = func(netip.Addr) bool { return false }
	g.own = noAddrs
	conn, err = g.dialer("x").DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	conn.Close()
}

func TestBlockedAddr(t *testing.T) {
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"10.0.0.1", true},
		{"172.16.5.4", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"100.64.0.1", true},
		{"100.127.255.254", true},
		{"255.255.255.255", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.2.3", true},
		{"::ffff:169.254.169.254", true},
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"::7f00:1", true},           // IPv4-compatible 127.0.0.1
		{"2002:c0a8:101::1", true},   // 6to4 of 192.168.1.1
		{"fec0::1", true},
		{"192.0.2.1", true}, // documentation ranges
		{"198.51.100.7", true},
		{"203.0.113.255", true},
		{"2001:db8::7", true},
		{"::ffff:203.0.113.9", true},
		// Public addresses pass.
		{"93.184.216.34", false},
		{"8.8.8.8", false},
		{"172.32.0.1", false},
		{"100.128.0.1", false},
		{"169.255.0.1", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false},
		{"2606:4700:4700::1111", false},
		{"2002:808:808::1", false},
	}
	for _, tc := range tests {
		if got := blockedAddr(netip.MustParseAddr(tc.addr)); got != tc.blocked {
			t.Errorf("blockedAddr(%s) = %v, want %v", tc.addr, got, tc.blocked)
		}
	}
	if !blockedAddr(netip.Addr{}) {
		t.Error("the zero Addr must be blocked")
	}
}

func noAddrs() []netip.Addr { return nil }

// TestExtractRefusesOwnInterfaceAddress: web_extract fetched a server bound
// to 0.0.0.0 through one of the host's own interface addresses. With every
// class of address allowed, the own-address check alone must refuse it,
// before any connection.
func TestExtractRefusesOwnInterfaceAddress(t *testing.T) {
	var own netip.Addr
	for _, a := range interfaceAddrs() {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() && a.Is4() {
			own = a
			break
		}
	}
	if !own.IsValid() {
		t.Skip("this machine has no non-loopback IPv4 interface address")
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot bind 0.0.0.0: %v", err)
	}
	_, conns := pageServerOn(t, ln)
	g := newGuard()
	g.blocked = func(netip.Addr) bool { return false }
	tool := newExtractTool(Options{}.withDefaults(), g)
	host := own.String()
	port := ln.Addr().(*net.TCPAddr).Port
	res := runExtract(t, tool, fmt.Sprintf("http://%s:%d/page", host, port))
	if want := "refused: " + host + refusal; res[0].Error != want {
		t.Fatalf("error %q, want %q", res[0].Error, want)
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("%d connections reached the server", n)
	}
}

func toolCall(args string) tooling.Call { return tooling.Call{ID: "call_1", Args: []byte(args)} }

// TestDecodeText: Windows-1252 curly quotes became C1 control characters
// when undeclared bytes were read as Latin-1.
func TestDecodeText(t *testing.T) {
	tests := []struct {
		name, ctype, body, want string
	}{
		{"declared in the header", "text/html; charset=windows-1252", "\x93quoted\x94 caf\xe9", "“quoted” café"},
		{"declared as latin-1 (read as windows-1252, per WHATWG)", "text/plain; charset=iso-8859-1", "\x93q\x94", "“q”"},
		{"declared in a meta tag", "text/html", `<meta charset="windows-1252"><p>` + "\x93q\x94", `<meta charset="windows-1252"><p>“q”`},
		{"undeclared, not UTF-8", "text/html", "<p>\x93q\x94 \x80", "<p>“q” €"},
		{"undeclared UTF-8 after 1 KB of ASCII", "text/html", strings.Repeat("a", 2000) + "é", strings.Repeat("a", 2000) + "é"},
		{"meta says latin-1 but the page is UTF-8", "text/html", `<meta charset="iso-8859-1">café`, `<meta charset="iso-8859-1">café`},
		{"UTF-8 BOM", "text/html", "\xef\xbb\xbfcafé", "café"},
		{"Shift_JIS in the header", "text/plain; charset=shift_jis", "\x93\xfa\x96\x7b", "日本"},
	}
	for _, tc := range tests {
		if got := docs.DecodeText([]byte(tc.body), tc.ctype); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
