package llm

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// fastClient sends the upstream's requests over fasthttp's connection pool
// (one HostClient per Upstream). net/http keeps two goroutines per pooled
// connection and copies every request body; with thousands of concurrent
// streams those goroutines' stacks and the copies were most of hermesd's
// upstream cost.
//
// It drives each request on its pooled connection itself rather than
// through HostClient.Do, which has no context: owning the connection for
// the whole call lets a cancellation (the caller's, or the watchdog's for
// a timeout) expire its deadlines at once, in the header phase as well as
// while the body streams, and lets the call decide whether the connection
// goes back to the pool (only after its response was read to a clean end).
type fastClient struct {
	hc *fasthttp.HostClient
}

// proxyEnv lists the variables that configure a proxy. fasthttp does not
// use them, so when one is set the upstream keeps net/http, which does.
var proxyEnv = []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"}

func proxyConfigured() bool {
	for _, k := range proxyEnv {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// newFastClient returns a client for the host of rawURL, or nil when the
// URL is not a plain http(s) URL fasthttp can serve (net/http then reports
// the problem exactly as before).
// tlsConfig, when set, replaces the default (tests trust their own CA).
func newFastClient(rawURL string, connectTimeout time.Duration, tlsConfig *tls.Config) *fastClient {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil
	}
	var isTLS bool
	switch u.Scheme {
	case "http":
	case "https":
		isTLS = true
	default:
		return nil
	}
	host := u.Hostname()
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if isTLS {
			port = "443"
		}
		addr = net.JoinHostPort(host, port)
	}
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	switch {
	case !isTLS:
		tlsConfig = nil
	case tlsConfig == nil:
		tlsConfig = &tls.Config{ServerName: host}
	default:
		tlsConfig = tlsConfig.Clone()
		tlsConfig.ServerName = host
	}
	if tlsConfig != nil {
		// Full-size records: a request goes out in one write (do), which
		// small first records (sized for a browser to render early, and
		// growing until a connection has sent 128 KB) cut into four or
		// more for an agent's 10 KB prompt; the upstream reads it all
		// before it answers anyway.
		tlsConfig.DynamicRecordSizingDisabled = true
	}
	dial := func(addr string) (net.Conn, error) {
		conn, err := dialer.Dial("tcp", addr)
		if err != nil || tlsConfig == nil {
			return conn, err
		}
		// The handshake happens here, bounded like net/http's
		// TLSHandshakeTimeout, so fasthttp sees a ready TLS connection.
		tc := tls.Client(conn, tlsConfig)
		hctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
	return &fastClient{hc: &fasthttp.HostClient{
		Addr: addr,
		Dial: dial,
		// TLS is done by dial; IsTLS stays false so fasthttp does not wrap
		// the connection again.
		// Thousands of concurrent turns talk to one host: keep their
		// connections rather than redialing for every call.
		MaxConns:            100000,
		MaxIdleConnDuration: 90 * time.Second,
		ConnPoolStrategy:    fasthttp.LIFO,
	}}
}

// aLongTimeAgo is a deadline in the past: setting it fails pending and
// future reads and writes on a connection at once.
var aLongTimeAgo = time.Unix(1, 0)

// fastCall is one request in flight on a pooled connection. Its response
// body is read through body; close returns or closes the connection.
type fastCall struct {
	hc *fasthttp.HostClient
	// release returns the connection to the pool, or closes it. (The
	// pool's connection type is unexported, so it is kept in a closure.)
	release func(reuse bool)
	conn    net.Conn
	br      *bufio.Reader
	resp    *fasthttp.Response
	// stop unregisters the cancellation hook; false means it ran (or is
	// running), so the connection's deadlines are spoiled.
	stop func() bool
	body eofReader
}

// eofReader records whether its reader reported a clean end, which is when
// the connection is fit for another request.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

var fastCalls = sync.Pool{New: func() any { return new(fastCall) }}

// appendHead appends the head of a request to rawURL (a URL newFastClient
// took): its request line and header lines as fasthttp's Request.Write
// wrote them (Host and target from the parsed URL, Basic authorization
// from its userinfo when auth is empty, CR and LF in values turned to
// spaces so a value cannot add a header). With body it ends in
// "Content-Length: " for withHead to complete; without, in the blank line
// that ends the head.
func appendHead(b []byte, method, rawURL, accept, auth string, body bool) []byte {
	var uri fasthttp.URI
	_ = uri.Parse(nil, []byte(rawURL))
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, uri.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, uri.Host()...)
	b = append(b, "\r\nUser-Agent: hermesd\r\n"...)
	if body {
		b = append(b, "Content-Type: application/json\r\n"...)
	}
	if accept != "" {
		b = appendHeader(b, "Accept", accept)
	}
	if auth == "" && len(uri.Username()) > 0 {
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(string(uri.Username())+":"+string(uri.Password())))
	}
	if auth != "" {
		b = appendHeader(b, "Authorization", auth)
	}
	if body {
		return append(b, "Content-Length: "...)
	}
	return append(b, "\r\n"...)
}

func appendHeader(b []byte, key, value string) []byte {
	b = append(b, key...)
	b = append(b, ": "...)
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// maxHeadTail is the most withHead adds after the head appendHead built:
// a Content-Length value and the blank line.
const maxHeadTail = 20 + 4

// withHead completes a request whose body is b[room:] and whose head
// (appendHead, with a body) fits in the room in front of it: head, the
// body's length and the blank line go right before the body, and the
// request is returned from its first byte, ready for one write.
func withHead(b []byte, room int, head string) []byte {
	var n [20]byte
	length := strconv.AppendInt(n[:0], int64(len(b)-room), 10)
	start := room - len(head) - len(length) - 4
	i := start + copy(b[start:], head)
	i += copy(b[i:], length)
	copy(b[i:], "\r\n\r\n")
	return b[start:]
}

// do sends raw (a whole request, head and body) on a pooled connection
// in one write and reads the response headers; the body is left to the
// caller, who must close the call. rctx's end (the
// caller's cancellation or a watchdog timeout) aborts the call at once.
func (f *fastClient) do(rctx context.Context, raw []byte) (*fastCall, error) {
	// A pooled connection the server has since closed (keep-alive timeout)
	// fails before any response byte; the request then goes out again on
	// another connection, as net/http does for connections it sees closed.
	const maxAttempts = 3
	for attempt := 1; ; attempt++ {
		c, retry, err := f.try(rctx, raw)
		if err == nil {
			return c, nil
		}
		if !retry || attempt == maxAttempts || rctx.Err() != nil {
			return nil, err
		}
		if attempt == 1 {
			// Pooled connections are handed out most recently used first:
			// if that one went stale, the older ones have too.
			f.hc.CloseIdleConnections()
		}
	}
}

// try makes one attempt; retry reports a failure on a reused connection
// before any byte of the response, the sign of a stale connection.
func (f *fastClient) try(rctx context.Context, raw []byte) (c *fastCall, retry bool, err error) {
	cc, err := f.hc.AcquireConn(0, false)
	if err != nil {
		return nil, false, err
	}
	if rctx.Err() != nil {
		// Ended while dialing: the connection is untouched.
		f.hc.ReleaseConn(cc)
		return nil, false, context.Cause(rctx)
	}
	reused := !cc.LastUseTime().IsZero()
	conn := cc.Conn()
	stop := context.AfterFunc(rctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })

	_, err = conn.Write(raw)
	br := f.hc.AcquireReader(conn)
	if err == nil {
		// Wait for the first byte apart, to tell a stale connection (no
		// answer at all) from a response that broke off.
		_, err = br.Peek(1)
	}
	if err != nil {
		stopped := stop()
		f.hc.ReleaseReader(br)
		f.hc.CloseConn(cc)
		return nil, reused && stopped && staleConn(err), err
	}
	resp := fasthttp.AcquireResponse()
	resp.StreamBody = true
	if err := resp.ReadLimitBody(br, 0); err != nil {
		stop()
		_ = resp.CloseBodyStream()
		f.hc.ReleaseReader(br)
		f.hc.CloseConn(cc)
		fasthttp.ReleaseResponse(resp)
		return nil, false, err
	}
	c = fastCalls.Get().(*fastCall)
	hc := f.hc
	*c = fastCall{hc: hc, conn: conn, br: br, resp: resp, stop: stop,
		release: func(reuse bool) {
			if reuse {
				hc.ReleaseConn(cc)
			} else {
				hc.CloseConn(cc)
			}
		}}
	c.body.r = resp.BodyStream()
	if c.body.r == nil {
		c.body.r = eofBody{}
	}
	return c, false, nil
}

// staleConn reports an error of a connection the server closed.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

type eofBody struct{}

func (eofBody) Read([]byte) (int, error) { return 0, io.EOF }

// answer is the response as the reading code sees it.
func (c *fastCall) answer() answer {
	a := answer{
		status:      c.resp.StatusCode(),
		contentType: string(c.resp.Header.ContentType()),
		retryAfter:  string(c.resp.Header.Peek("Retry-After")),
		body:        &c.body,
	}
	if c.resp.Header.ContentLength() == -1 && !c.resp.SkipBody {
		// Chunked: a stream reads it from the connection itself.
		a.chunked, a.end = c.br, &c.body.eof
	}
	return a
}

// close ends the call. The connection goes back to the pool only when its
// response was read to a clean end with nothing left over and no
// cancellation touched it; any other (cut, cancelled, timed out, unread)
// is closed, which the server sees as the request's end.
func (c *fastCall) close() {
	stopped := c.stop()
	h := &c.resp.Header
	reusable := stopped && c.body.eof && h.IsHTTP11() && !h.ConnectionClose() &&
		h.ContentLength() != -2 && c.br.Buffered() == 0
	_ = c.resp.CloseBodyStream()
	c.hc.ReleaseReader(c.br)
	c.release(reusable)
	fasthttp.ReleaseResponse(c.resp)
	*c = fastCall{}
	fastCalls.Put(c)
}
