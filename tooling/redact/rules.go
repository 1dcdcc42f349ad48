package redact

import (
	"regexp"
	"strings"
)

// rules run in order, each on the output of the one before.
var rules = []*rule{
	// Private keys first: a masked block cannot trigger anything else.
	{
		triggers:  []string{"-----BEGIN "},
		multiline: true,
		// An unterminated block (output cut short) is masked to the end.
		re: regexp.MustCompile(`^(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(?s:.*?)(-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`),
		replace: func(s string, m []int) (string, bool) {
			return s[m[2]:m[3]] + "\n" + Mask + "\n" + s[m[4]:m[5]], true
		},
	},
	// Authorization: Bearer <token>, Basic <b64>, token <t>; a bare
	// Bearer <token> anywhere.
	{
		triggers: []string{"bearer", "authorization"},
		fold:     true,
		start:    wordStart,
		re:       regexp.MustCompile(`^(bearer[ \t]+|authorization["']?[ \t]*[:=][ \t]*["']?(?:basic|token|digest)[ \t]+)([a-z0-9._~+/=\-]{8,})`),
		replace:  keepGroup,
	},
	// Assignments whose key names a secret, JSON, YAML or env style.
	{
		triggers: []string{"key", "secret", "token", "passw", "credential"},
		fold:     true,
		start:    keyStart,
		// 1: key (with a JSON closing quote), 2: separator, 3: double-quoted
		// value, 4: single-quoted value, 5: bare value.
		re: regexp.MustCompile(`^([a-z0-9_.\-]*` + secretKey + `(?:[_.\-][a-z0-9_.\-]*)?["']?)([ \t]*[:=][ \t]*)(?:"([^"\n]*)"|'([^'\n]*)'|([^\s"',;}=][^\s"',;}]*))`),
		replace: func(s string, m []int) (string, bool) {
			val, quote := "", ""
			switch {
			case m[6] >= 0:
				val, quote = s[m[6]:m[7]], `"`
			case m[8] >= 0:
				val, quote = s[m[8]:m[9]], `'`
			default:
				val = s[m[10]:m[11]]
			}
			if trivialValue(val) {
				return "", false
			}
			return s[m[2]:m[5]] + quote + Mask + quote, true
		},
	},
	// Env-style names with an upper-case secret suffix that is too common
	// in lower case to trigger on (API_SERVER_KEY, STRIPE_KEY, NPM_PAT,
	// SMTP_PASS).
	{
		triggers: []string{"_KEY=", "_PAT=", "_PASS="},
		start:    envStart,
		re:       regexp.MustCompile(`^([A-Z][A-Z0-9_]*_(?:KEY|PAT|PASS)=)([^\s"';]+)`),
		replace: func(s string, m []int) (string, bool) {
			if trivialValue(s[m[4]:m[5]]) {
				return "", false
			}
			return keepGroup(s, m)
		},
	},
	// OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic
	// (sk-ant-api03-…), OpenRouter (sk-or-v1-…).
	prefixed([]string{"sk-"}, `^(sk-(?:proj-|svcacct-|admin-|ant-(?:[a-z]+\d+-)?|or-(?:v\d+-)?)?)([A-Za-z0-9_\-]+)`, 20, true),
	// GitHub: classic, OAuth, user, server and refresh tokens; fine-grained PATs.
	prefixed([]string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, `^(gh[pousr]_)([A-Za-z0-9]+)`, 30, false),
	prefixed([]string{"github_pat_"}, `^(github_pat_)([A-Za-z0-9_]+)`, 30, false),
	// AWS access key ids.
	prefixed([]string{"AKIA", "ASIA"}, `^(AKIA|ASIA)([A-Z0-9]{16})\b`, 16, false),
	// Slack bot, user, app and legacy tokens.
	prefixed([]string{"xox"}, `^(xox[bpasr]-)([A-Za-z0-9\-]+)`, 10, false),
	// Google API keys.
	prefixed([]string{"AIza"}, `^(AIza)([0-9A-Za-z_\-]{35})`, 35, false),
	// Passwords in URLs: scheme://user:password@host.
	{
		triggers: []string{"://"},
		start:    userinfo,
		re:       regexp.MustCompile(`^(://[^/\s:@]+:)([^/\s@]+)@`),
		replace: func(s string, m []int) (string, bool) {
			return s[m[2]:m[3]] + Mask + "@", true
		},
	},
}

// secretKey is what makes an assignment's key name a secret. A word must end
// the key or be followed by a separator, so prompt_tokens, tokenizer and
// keyboard stay readable while GITHUB_TOKEN, token_secret and dbPassword do
// not. PWD (the working directory) is deliberately not among them.
const secretKey = `(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key|private[_-]?key|credentials?|session[_-]?key)`

// keepGroup masks everything after submatch 1, which holds the public part.
func keepGroup(s string, m []int) (string, bool) {
	return s[m[2]:m[3]] + Mask, true
}

// wordByte reports whether c can continue a token, so a match glued to the
// end of a longer word ("task-…" holding "sk-") is not a key.
func wordByte(c byte) bool {
	return c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// wordStart accepts a trigger that starts a word.
func wordStart(s string, i int) (int, bool) {
	return i, i == 0 || !wordByte(s[i-1])
}

// keyStart walks back from a trigger to the start of the key around it.
func keyStart(s string, i int) (int, bool) {
	for i > 0 && (wordByte(s[i-1]) || s[i-1] == '.') {
		i--
	}
	return i, true
}

// envStart walks back from a trigger to the start of an upper-case name.
func envStart(s string, i int) (int, bool) {
	for i > 0 && (s[i-1] == '_' || '0' <= s[i-1] && s[i-1] <= '9' || 'A' <= s[i-1] && s[i-1] <= 'Z') {
		i--
	}
	return i, i == 0 || !wordByte(s[i-1])
}

// userinfo accepts a "://" followed by user:password@, checked by hand
// because URLs without credentials are common in clean text.
func userinfo(s string, i int) (int, bool) {
	colon := false
	for j := i + 3; j < len(s); j++ {
		switch c := s[j]; {
		case c == ':':
			colon = true
		case c == '@':
			return i, colon
		case c == '/' || c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return i, false
		}
	}
	return i, false
}

// prefixed builds a rule for a token with a fixed vendor prefix: submatch 1
// is the prefix kept, submatch 2 the secret body, which must be at least min
// bytes and, with digit, hold a digit: real keys are random, words are not.
func prefixed(triggers []string, expr string, min int, digit bool) *rule {
	return &rule{
		triggers: triggers,
		start:    wordStart,
		re:       regexp.MustCompile(expr),
		replace: func(s string, m []int) (string, bool) {
			body := s[m[4]:m[5]]
			if len(body) < min || digit && !strings.ContainsAny(body, "0123456789") {
				return "", false
			}
			return keepGroup(s, m)
		},
	}
}

// trivialValue reports values that cannot be secrets: empty, null-ish, a
// boolean, or already masked.
func trivialValue(v string) bool {
	switch strings.ToLower(v) {
	case "", "null", "none", "nil", "true", "false", "undefined", "***":
		return true
	}
	return strings.Contains(v, Mask)
}
