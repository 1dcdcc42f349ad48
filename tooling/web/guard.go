package web

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// refusedError is returned when a fetch would reach an address the SSRF
// guard forbids.
type refusedError struct{ host string }

func (e *refusedError) Error() string {
	return "refused: " + e.host + " resolves to a private, loopback or reserved address, or one of this machine's own (set HERMES_WEB_ALLOW_PRIVATE=true to allow)"
}

// guard keeps web_extract, which fetches URLs a model chose (and so anyone
// who can put text in front of the model), from reaching the host itself,
// the private network or cloud metadata endpoints.
//
// It works in the dialer, not before the request: the name is resolved
// there, every address is checked, and only the checked addresses are
// dialled, so a DNS answer that changes between a check and the connect
// (rebinding) has nothing to slip through. The socket's Control hook checks
// the address actually connected to once more, which also covers redirects
// and any dial path that bypasses the lookup.
type guard struct {
	// resolve looks a host name up; tests replace it so that no query
	// leaves the machine.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// blocked classifies an address; tests narrow it to reach a loopback
	// fake while still refusing everything else.
	blocked func(netip.Addr) bool
	// own lists the addresses of this machine's interfaces. It is read at
	// every check, not once, so an address gained after start (DHCP, a VPN,
	// a container network) is refused too: a server bound to 0.0.0.0 answers
	// on every one of them, public ones included.
	own func() []netip.Addr
	// connect dials one checked address; tests replace it to see what
	// would be dialled without sending anything.
	connect func(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error)
}

func newGuard() *guard {
	return &guard{
		resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		blocked: blockedAddr,
		own:     interfaceAddrs,
		connect: func(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
			return d.DialContext(ctx, network, address)
		},
	}
}

// dialContext is an http.Transport DialContext that refuses forbidden
// destinations.
func (g *guard) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	addrs, err := g.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	for _, a := range addrs {
		if g.refused(a) {
			return nil, &refusedError{host: host}
		}
	}
	d := g.dialer(host)
	var firstErr error
	for _, a := range addrs {
		conn, err := g.connect(ctx, d, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		var refused *refusedError
		if errors.As(err, &refused) || ctx.Err() != nil {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// dialer returns a net.Dialer whose Control hook refuses forbidden
// addresses, reporting them under host.
func (g *guard) dialer(host string) *net.Dialer {
	return &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || g.refused(ap.Addr()) {
				return &refusedError{host: host}
			}
			return nil
		},
	}
}

// refused reports whether a fetch must not reach a: forbidden by class,
// or one of this machine's own addresses.
func (g *guard) refused(a netip.Addr) bool {
	if g.blocked(a) {
		return true
	}
	a = a.WithZone("").Unmap()
	for _, o := range g.own() {
		if o == a {
			return true
		}
	}
	return false
}

// interfaceAddrs returns the addresses of this machine's interfaces. When
// they cannot be read it returns none, and the static ranges still hold.
func interfaceAddrs() []netip.Addr {
	nets, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(nets))
	for _, n := range nets {
		if p, err := netip.ParsePrefix(n.String()); err == nil {
			out = append(out, p.Addr().WithZone("").Unmap())
		}
	}
	return out
}

// lookup resolves host to addresses. IP literals need no lookup, and
// localhost names are loopback by definition (RFC 6761), whatever a
// resolver would say.
func (g *guard) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return []netip.Addr{netip.IPv6Loopback(), netip.AddrFrom4([4]byte{127, 0, 0, 1})}, nil
	}
	return g.resolve(ctx, host)
}

// blockedPrefixes are ranges outside what netip's predicates cover that a
// fetch must not reach either.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"; 0.0.0.0 reaches the host itself on Linux
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT (RFC 6598): provider-internal
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking; used for internal test nets
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and 255.255.255.255 broadcast
	netip.MustParsePrefix("fec0::/10"),     // deprecated site-local, still routed in places
	// Documentation ranges (RFC 5737, RFC 3849): never a real destination,
	// and a lab or a proxy may route them anywhere.
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// blockedAddr reports whether a is loopback, private (RFC 1918, fc00::/7),
// link-local (169.254/16 with the metadata service, fe80::/10),
// unspecified, multicast, CGNAT or reserved, looking through IPv6 forms
// that carry an IPv4 address.
func blockedAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	a = a.WithZone("").Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	if v4, ok := embeddedIPv4(a); ok {
		return blockedAddr(v4)
	}
	return false
}

var (
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052 well-known NAT64
	v4CompatPrefix  = netip.MustParsePrefix("::/96")        // deprecated IPv4-compatible
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")    // 6to4
)

// embeddedIPv4 returns the IPv4 address an IPv6 address stands for when it
// is a NAT64, IPv4-compatible or 6to4 address: such addresses can be
// translated back to their IPv4 destination on the way out.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a), v4CompatPrefix.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFourPrefix.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// GuardedDial returns a DialContext for http.Transport that refuses what
// web_extract refuses: loopback, private, link-local and reserved
// addresses and this machine's own, checked on the addresses the name
// resolves to and again on the socket connected. Other clients of URLs a
// caller chose (a request's MCP server_url) dial through it.
func GuardedDial() func(ctx context.Context, network, address string) (net.Conn, error) {
	return newGuard().dialContext
}

// IsRefused reports whether err is the guard refusing an address.
func IsRefused(err error) bool {
	var r *refusedError
	return errors.As(err, &r)
}
