package redact

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
)

// Secret is a value hermesd knows to be secret (its own keys, a secret
// environment variable) and the name it is masked under.
type Secret struct {
	Name  string
	Value string
}

// MinKnownLen is the shortest value Known masks: shorter ones ("admin",
// "1234") would mask ordinary words all over the output.
const MinKnownLen = 6

// SecretName reports whether an environment variable's name says its value
// is a secret: a word of it is or ends in KEY, or holds TOKEN, SECRET,
// PASSWORD, PASSWD, PASSPHRASE or CREDENTIAL, or is PASS, PAT, COOKIE or
// DSN, or PWD after another word (MYSQL_PWD). PWD alone (the working
// directory) and AUTH (SSH_AUTH_SOCK is a path) are not secrets.
func SecretName(name string) bool {
	words := strings.FieldsFunc(strings.ToUpper(name), func(r rune) bool {
		return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	})
	for _, w := range words {
		switch w {
		case "PASS", "PAT", "COOKIE", "DSN":
			return true
		case "PWD":
			if len(words) > 1 {
				return true
			}
		}
		if strings.HasSuffix(w, "KEY") || strings.HasSuffix(w, "KEYS") {
			return true
		}
		for _, s := range []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL"} {
			if strings.Contains(w, s) {
				return true
			}
		}
	}
	return false
}

// EnvSecrets picks the secrets out of NAME=value pairs (os.Environ's form):
// the values of variables SecretName accepts, and the password of any
// value that is a URL carrying one (a DATABASE_URL, a proxy).
func EnvSecrets(environ []string) []Secret {
	var out []Secret
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if SecretName(name) {
			out = append(out, Secret{Name: name, Value: value})
			continue
		}
		if strings.Contains(value, "://") && strings.Contains(value, "@") {
			if u, err := url.Parse(value); err == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok {
					out = append(out, Secret{Name: name, Value: pw})
				}
			}
		}
	}
	return out
}

// Known masks the values of known secrets in text, and the forms a command
// can turn them into on the way out: base64 (standard and URL alphabets, at
// each of the three byte alignments, so a value inside a longer encoded
// text such as NAME=value or a whole environment is found too), hex in
// either case, URL encoding, the value reversed, and the value as a JSON
// string escapes it. Line breaks, raw or JSON-escaped, are ignored while
// matching, because base64 and xxd wrap their output. Every form is
// replaced with [REDACTED:NAME].
//
// It is built once and safe for concurrent use. A nil *Known masks nothing.
type Known struct {
	pats []known
	// width is how many leading bytes of a pattern the scan keys on: the
	// shortest pattern, at most 8 (one machine word).
	width int
	// filter has a bit set for each key's hash: most positions of a text
	// are rejected by one load and one bit test.
	filter []uint64
	// byKey lists, per key, the patterns starting with it, longest first.
	byKey map[uint64][]int
}

type known struct {
	text string // already squeezed (see squeeze)
	mask string
}

// NewKnown returns a masker for secrets. Values shorter than MinKnownLen,
// or trivial ones (true, null, already masked), are left out; a value
// known under two names is masked under the first.
func NewKnown(secrets []Secret) *Known {
	k := &Known{byKey: make(map[uint64][]int), filter: make([]uint64, filterBits/64), width: 8}
	seen := map[string]bool{}
	for _, s := range secrets {
		v := s.Value
		if len(v) < MinKnownLen || trivialValue(strings.TrimSpace(v)) {
			continue
		}
		mask := "[REDACTED:" + maskName(s.Name) + "]"
		for _, form := range forms(v) {
			form = squeeze(form, nil)
			if len(form) < MinKnownLen || seen[form] {
				continue
			}
			seen[form] = true
			k.pats = append(k.pats, known{text: form, mask: mask})
			k.width = min(k.width, len(form))
		}
	}
	for i, p := range k.pats {
		key := load(p.text, 0, k.width)
		k.filter[hashKey(key)/64] |= 1 << (hashKey(key) % 64)
		k.byKey[key] = append(k.byKey[key], i)
	}
	for _, ids := range k.byKey {
		slices.SortFunc(ids, func(a, b int) int { return len(k.pats[b].text) - len(k.pats[a].text) })
	}
	return k
}

// forms returns v and the encodings of it Known looks for.
func forms(v string) []string {
	b := []byte(v)
	out := []string{v, reverse(v), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		url.QueryEscape(v), url.PathEscape(v)}
	for _, s := range []string{v, reverse(v)} {
		out = append(out, jsonString(s, true), jsonString(s, false))
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for align := range 3 {
			out = append(out, base64Core(enc, align, b))
		}
	}
	return out
}

// base64Core is the part of the base64 of v that does not depend on what
// surrounds v, when v starts align bytes after a 3-byte boundary of the
// encoded text: the characters whose six bits all come from v.
func base64Core(enc *base64.Encoding, align int, v []byte) string {
	full := enc.EncodeToString(append(make([]byte, align), v...))
	first := (8*align + 5) / 6
	end := 8 * (align + len(v)) / 6
	return full[first:end]
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// jsonString is s as it appears inside a JSON string.
func jsonString(s string, escapeHTML bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// maskName keeps a name safe to place in JSON text and in a log line.
func maskName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r == '.' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

const filterBits = 1 << 16

func hashKey(key uint64) uint64 { return (key * 0x9E3779B97F4A7C15) >> 48 }

// load reads n ≤ 8 bytes of s from i as a little-endian word.
func load(s string, i, n int) uint64 {
	var x uint64
	for j := n - 1; j >= 0; j-- {
		x = x<<8 | uint64(s[i+j])
	}
	return x
}

// squeeze returns s without line breaks: raw CR and LF, and the \n and \r
// escapes of a JSON string. With pos non-nil it also records, for each byte
// kept, its offset in s. It returns s itself when there is nothing to drop.
func squeeze(s string, pos *[]int) string {
	if !strings.ContainsAny(s, "\r\n\\") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			continue
		case c == '\\' && i+1 < len(s):
			if n := s[i+1]; n == 'n' || n == 'r' {
				i++
				continue
			}
			// Any other escape is kept whole, so an escaped backslash
			// before an 'n' is not read as a line break.
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			if pos != nil {
				*pos = append(*pos, i, i+1)
			}
			i++
			continue
		}
		b.WriteByte(c)
		if pos != nil {
			*pos = append(*pos, i)
		}
	}
	return b.String()
}

// String returns s with every known secret form replaced by its mask. It
// returns s itself when there is nothing to mask.
func (k *Known) String(s string) string {
	if k == nil || len(k.pats) == 0 || len(s) < k.width {
		return s
	}
	t := squeeze(s, nil)
	type hit struct {
		start, end int // in t
		mask       string
	}
	var hits []hit
	w := k.width
	top := 8 * uint(w-1)
	key := load(t, 0, w)
	for i := 0; ; {
		// key holds t[i:i+w]; it rolls forward one byte at a time.
		n := 0
		if h := hashKey(key); k.filter[h/64]&(1<<(h%64)) != 0 {
			for _, id := range k.byKey[key] {
				p := &k.pats[id]
				if strings.HasPrefix(t[i:], p.text) {
					hits = append(hits, hit{i, i + len(p.text), p.mask})
					n = len(p.text)
					break
				}
			}
		}
		if n > 0 {
			if i += n; i+w > len(t) {
				break
			}
			key = load(t, i, w)
			continue
		}
		if i++; i+w > len(t) {
			break
		}
		key = key>>8 | uint64(t[i+w-1])<<top
	}
	if len(hits) == 0 {
		return s
	}
	// Offsets in t are offsets in s unless squeeze dropped something; the
	// map back is built only now, as most texts hold no secret.
	var pos []int
	if t != s {
		pos = make([]int, 0, len(t))
		squeeze(s, &pos)
	}
	edits := make([]edit, len(hits))
	for i, h := range hits {
		start, end := h.start, h.end
		if pos != nil {
			start, end = pos[start], pos[end-1]+1
		}
		start, end = wholeEscapes(s, start, end)
		edits[i] = edit{start, end, h.mask}
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, e := range edits {
		if e.start < last { // widened over a neighbour's escape
			e.start = last
		}
		b.WriteString(s[last:e.start])
		b.WriteString(e.repl)
		last = max(last, e.end)
	}
	b.WriteString(s[last:])
	return b.String()
}

// wholeEscapes widens [start, end) so that it neither starts nor ends
// inside a backslash escape of a JSON string (\", \\, \u00e9): replacing
// half an escape would leave text that is no longer valid JSON.
func wholeEscapes(s string, start, end int) (int, int) {
	// An escape begins at a backslash preceded by an even run of them.
	escapeAt := func(i int) int { // length of the escape at i, or 0
		if s[i] != '\\' {
			return 0
		}
		run := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			run++
		}
		if run%2 == 1 || i+1 >= len(s) {
			return 0
		}
		if s[i+1] == 'u' {
			return min(6, len(s)-i)
		}
		return 2
	}
	for j := max(0, start-5); j < start; j++ {
		if n := escapeAt(j); n > 0 && j+n > start {
			start = j
			break
		}
	}
	for j := max(0, end-5); j < end; j++ {
		if n := escapeAt(j); n > 0 && j+n > end {
			end = j + n
			break
		}
	}
	return start, end
}
