package redact

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

// fooToken looks like nothing the pattern rules know: only Known can
// mask it.
const fooToken = "Zq7wLmX2pR9tVb4nKc8yHd3sJf6gQa1e"

// jsonOf is text as a tool result carries it: a JSON object's string.
func jsonOf(text string) string {
	b, _ := json.Marshal(map[string]string{"output": text})
	return string(b)
}

// wrap breaks s into lines of n characters, as base64 (76) and xxd -p (60)
// do.
func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	return b.String() + s + "\n"
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestKnownMasksEveryForm(t *testing.T) {
	env := "HOME=/root\nFOO_TOKEN=" + fooToken + "\nLANG=C\n"
	odd := `a"b\c<d>&e/f g+h` // JSON- and URL-escaped differently
	k := NewKnown([]Secret{{"FOO_TOKEN", fooToken}, {"ODD_SECRET", odd}})
	cases := []struct {
		name, in string
		mask     string
	}{
		{"printenv", jsonOf(fooToken + "\n"), "FOO_TOKEN"},
		{"raw text", "value: " + fooToken, "FOO_TOKEN"},
		{"echo | base64", jsonOf(b64(fooToken+"\n") + "\n"), "FOO_TOKEN"},
		{"base64 of NAME=value", jsonOf(b64("FOO_TOKEN=" + fooToken)), "FOO_TOKEN"},
		{"base64 alignment 1", jsonOf(b64("x" + fooToken + "y")), "FOO_TOKEN"},
		{"base64 alignment 2", jsonOf(b64("xy" + fooToken + "z")), "FOO_TOKEN"},
		{"base64 of the environment, wrapped", jsonOf(wrap(b64(env), 76)), "FOO_TOKEN"},
		{"base64 wrapped, raw newlines", wrap(b64(env+env), 76), "FOO_TOKEN"},
		{"base64url", jsonOf(base64.RawURLEncoding.EncodeToString([]byte("\xff\xfe" + fooToken))), "FOO_TOKEN"},
		{"rev", jsonOf(reverse(fooToken) + "\n"), "FOO_TOKEN"},
		{"xxd -p", jsonOf(wrap(hex.EncodeToString([]byte(fooToken+"\n")), 60)), "FOO_TOKEN"},
		{"hex upper", jsonOf(strings.ToUpper(hex.EncodeToString([]byte(fooToken)))), "FOO_TOKEN"},
		{"url-encoded", "https://x.test/?k=" + url.QueryEscape(odd), "ODD_SECRET"},
		{"path-escaped", "https://x.test/" + url.PathEscape(odd), "ODD_SECRET"},
		{"json-escaped", jsonOf("got " + odd + " there"), "ODD_SECRET"},
		{"json-escaped reversed", jsonOf(reverse(odd)), "ODD_SECRET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := k.String(tc.in)
			if !strings.Contains(out, "[REDACTED:"+tc.mask+"]") {
				t.Fatalf("no mask in %q", out)
			}
			if strings.HasPrefix(tc.in, "{") && !json.Valid([]byte(out)) {
				t.Fatalf("masking broke the JSON: %s", out)
			}
			// What survives must not decode to the secret's bytes: strip
			// the mask and every line break, and look for any 8-byte
			// piece of any form of the value.
			rest := squeeze(strings.ReplaceAll(out, "[REDACTED:"+tc.mask+"]", "|"), nil)
			v := fooToken
			if tc.mask == "ODD_SECRET" {
				v = odd
			}
			for _, f := range forms(v) {
				f = squeeze(f, nil)
				for i := 0; i+8 <= len(f); i++ {
					if strings.Contains(rest, f[i:i+8]) {
						t.Fatalf("%q (a piece of %q) survived in %q", f[i:i+8], f, out)
					}
				}
			}
			if again := k.String(out); again != out {
				t.Fatalf("not idempotent: %q -> %q", out, again)
			}
		})
	}
}

func TestKnownLeavesOtherTextAlone(t *testing.T) {
	k := NewKnown([]Secret{{"FOO_TOKEN", fooToken}, {"SHORT_KEY", "abc12"}, {"FLAG_TOKEN", "false"}, {"EMPTY_KEY", ""}})
	for _, in := range []string{
		"",
		"abc12 is too short to mask",
		`{"enabled":false}`,
		jsonOf("line one\nline two\\n not a break \\\\n"),
		cleanText(10 << 10),
		fooToken[:len(fooToken)-1] + "!", // a prefix is not the secret
	} {
		if out := k.String(in); out != in {
			t.Errorf("changed %q\n     to %q", in, out)
		}
	}
	var nilK *Known
	if nilK.String("x "+fooToken) != "x "+fooToken {
		t.Error("a nil Known masked something")
	}
}

// TestKnownKeepsJSONValid masks a secret that sits next to every kind of
// escape, at random places: the result must stay valid JSON.
func TestKnownKeepsJSONValid(t *testing.T) {
	secret := `p\a"ss<wo>rd` + "\n" + `Z9`
	k := NewKnown([]Secret{{"DB_PASSWORD", secret}})
	pieces := []string{secret, reverse(secret), "\\", "\"", "\n", "\t", "é", "\u2028", "x", "<", "\x01", "n", "u"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		in := jsonOf(b.String())
		out := k.String(in)
		if !json.Valid([]byte(out)) {
			t.Fatalf("masking %q gave invalid JSON %q", in, out)
		}
		var got map[string]string
		_ = json.Unmarshal([]byte(out), &got)
		if strings.Contains(got["output"], secret) {
			t.Fatalf("secret survived in %q", out)
		}
	}
}

func TestSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"API_SERVER_KEY": true, "OPENAI_API_KEY": true, "BRAVE_API_KEY": true, "FOO_TOKEN": true,
		"GITHUB_TOKEN": true, "AWS_SECRET_ACCESS_KEY": true, "DB_PASSWORD": true, "SMTP_PASS": true,
		"NPM_PAT": true, "GOOGLE_APPLICATION_CREDENTIALS": true, "SENTRY_DSN": true, "gpg_passphrase": true,
		"APIKEY": true, "SESSION_COOKIE": true, "SSH_KEYS": true, "ClientSecret": true, "MYSQL_PWD": true,
		"PATH": false, "PWD": false, "OLDPWD": false, "HOME": false, "SSH_AUTH_SOCK": false, "LANG": false,
		"KEYBOARD_LAYOUT": false, "PATHEXT": false, "TERM": false, "HERMES_HOME": false,
	} {
		if got := SecretName(name); got != want {
			t.Errorf("SecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestEnvSecrets(t *testing.T) {
	got := EnvSecrets([]string{
		"PATH=/usr/bin", "FOO_TOKEN=" + fooToken, "DATABASE_URL=postgres://app:s3cretpw@db:5432/x",
		"HTTP_PROXY=http://proxy:3128", "NOEQUALS", "=odd", "EMPTY_KEY=",
	})
	want := []Secret{{"FOO_TOKEN", fooToken}, {"DATABASE_URL", "s3cretpw"}, {"EMPTY_KEY", ""}}
	if len(got) != len(want) {
		t.Fatalf("EnvSecrets = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("EnvSecrets = %q, want %q", got, want)
		}
	}
}

func BenchmarkKnownClean50KB(b *testing.B) {
	var secrets []Secret
	for i := range 20 {
		secrets = append(secrets, Secret{Name: "S" + string(rune('A'+i)) + "_TOKEN", Value: fooToken[i:] + fooToken[:i]})
	}
	k := NewKnown(secrets)
	in := jsonOf(cleanText(50 << 10))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		k.String(in)
	}
}
