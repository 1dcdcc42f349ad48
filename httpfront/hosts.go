package httpfront

import (
	"bytes"
	"net/netip"
	"strings"

	hermes "github.com/hermesd/hermesd"
)

// DNS rebinding: a page on evil.example whose name is made to resolve to
// 127.0.0.1 is same-origin with itself, so its requests carry no foreign
// Origin (or none at all) and reach a loopback hermesd as a local program's
// would. What the browser cannot hide is the name it connected to, in the
// Host header. A server with no key therefore answers only requests
// addressed to a loopback literal, localhost, its bind host or a name in
// API_SERVER_ALLOWED_HOSTS. With a key, the key is the defence (a page never
// has it) and the check applies only when the operator lists hosts.

// hostGuard decides whether a Host header is one this server answers to.
type hostGuard struct {
	on    bool            // false: any Host is answered
	names map[string]bool // lower case, IPv6 literals without brackets
}

func newHostGuard(keyed bool, bindHost string, allowed []string) hostGuard {
	g := hostGuard{on: !keyed || len(allowed) > 0, names: make(map[string]bool)}
	if bindHost != "" {
		g.names[strings.ToLower(strings.Trim(bindHost, "[]"))] = true
	}
	for _, a := range allowed {
		if a == "*" {
			g.on = false
		}
		g.names[strings.ToLower(strings.Trim(a, "[]"))] = true
	}
	return g
}

// allows reports whether host, a Host header's value ("name", "name:port",
// "[v6]:port"), names this server. Anything else is refused, an empty or
// malformed value included: browsers always send a well-formed Host.
func (g hostGuard) allows(host []byte) bool {
	if !g.on {
		return true
	}
	name, ok := hostName(host)
	if !ok {
		return false
	}
	if name == "localhost" || g.names[name] {
		return true
	}
	// netip accepts only canonical literals: 0x7f.1, 2130706433 and
	// 127.000.0.1, which some resolvers and browsers read as 127.0.0.1,
	// are names here, and names are refused unless listed.
	a, err := netip.ParseAddr(name)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// hostName returns the lower-cased name of a Host header without its port
// and an IPv6 literal's brackets, or false when the value is not of the form
// name[:digits] or [v6][:digits].
func hostName(host []byte) (string, bool) {
	name, port := host, []byte(nil)
	if len(host) > 0 && host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 {
			return "", false
		}
		name, port = host[1:end], host[end+1:]
		// Brackets hold IPv6 literals only, never [localhost].
		if bytes.IndexByte(name, ':') < 0 || len(port) > 0 && port[0] != ':' {
			return "", false
		}
	} else if i := bytes.IndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	for i, c := range port {
		if i > 0 && (c < '0' || c > '9') || i > 5 {
			return "", false
		}
	}
	if len(name) == 0 || len(name) > 253 {
		return "", false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':' && host[0] == '[') {
			return "", false
		}
	}
	return strings.ToLower(string(name)), true
}

func errHostNotAllowed() *hermes.Error {
	return hermes.Errorf(hermes.EForbidden, "This server answers only requests addressed to localhost, a loopback address, "+
		"its bind host or a name in API_SERVER_ALLOWED_HOSTS (a guard against DNS rebinding)")
}
