package redact

import (
	"strings"
	"testing"
)

// Fake secrets, assembled so the source holds no literal key.
var (
	openaiKey   = "sk-" + "proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_AbC-dEf"
	legacyKey   = "sk-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa98765"
	antKey      = "sk-" + "ant-api03-" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8L9z0-xAA"
	orKey       = "sk-" + "or-v1-" + "0123456789abcdef0123456789abcdef0123456789abcdef"
	ghToken     = "ghp_" + "aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2"
	ghoToken    = "gho_" + "aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2"
	ghPAT       = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF"
	awsKey      = "AKIA" + "IOSFODNN7EXAMPLE"
	slackToken  = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
	googleKey   = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
	bearerToken = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_123"
)

func TestString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"clean", "total 12\ndrwxr-xr-x 2 root root 4096 .\n", "total 12\ndrwxr-xr-x 2 root root 4096 .\n"},
		{"openai project key", "key is " + openaiKey + " ok", "key is sk-proj-[REDACTED] ok"},
		{"openai legacy key", legacyKey, "sk-[REDACTED]"},
		{"anthropic key", "x=" + antKey, "x=sk-ant-api03-[REDACTED]"},
		{"openrouter key", "(" + orKey + ")", "(sk-or-v1-[REDACTED])"},
		{"github classic", "token: " + ghToken, "token: [REDACTED]"},
		{"github oauth in text", "use " + ghoToken + " now", "use gho_[REDACTED] now"},
		{"github fine-grained", "pat " + ghPAT, "pat github_pat_[REDACTED]"},
		{"aws key id", "aws " + awsKey + "\n", "aws AKIA[REDACTED]\n"},
		{"slack token", "slack " + slackToken, "slack xoxb-[REDACTED]"},
		{"google key", "g " + googleKey + " end", "g AIza[REDACTED] end"},
		{"authorization header", "Authorization: Bearer " + bearerToken, "Authorization: Bearer [REDACTED]"},
		{"bare bearer lower case", "curl -H 'bearer " + bearerToken + "'", "curl -H 'bearer [REDACTED]'"},
		{"basic auth header", "authorization: Basic dXNlcjpwYXNzd29yZA==", "authorization: Basic [REDACTED]"},
		{"env assignment", "OPENAI_API_KEY=abc123", "OPENAI_API_KEY=[REDACTED]"},
		{"export assignment", "export GITHUB_TOKEN=hunter2hunter2", "export GITHUB_TOKEN=[REDACTED]"},
		{"json password", `{"user": "bob", "password": "correct horse"}`, `{"user": "bob", "password": "[REDACTED]"}`},
		{"json api_key compact", `{"api_key":"k-123"}`, `{"api_key":"[REDACTED]"}`},
		{"yaml secret", "client_secret: s3cr3t\nname: x", "client_secret: [REDACTED]\nname: x"},
		{"camel case", "dbPassword=pw1 other=1", "dbPassword=[REDACTED] other=1"},
		{"single quoted", "apikey = 'abc def'", "apikey = '[REDACTED]'"},
		{"access key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = [REDACTED]"},
		{"uppercase server key", "API_SERVER_KEY=changeme-now", "API_SERVER_KEY=[REDACTED]"},
		{"url password", "git clone https://bob:pa55word@example.com/r.git", "git clone https://bob:[REDACTED]@example.com/r.git"},
		{"private key block",
			"a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----\nb",
			"a\n-----BEGIN RSA PRIVATE KEY-----\n[REDACTED]\n-----END RSA PRIVATE KEY-----\nb"},
		{"truncated private key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk",
			"-----BEGIN OPENSSH PRIVATE KEY-----\n[REDACTED]\n"},
		{"two secrets on one line", "A_TOKEN=one B_SECRET=two", "A_TOKEN=[REDACTED] B_SECRET=[REDACTED]"},
		{"secret among many lines", strings.Repeat("line\n", 100) + "password=x\n" + strings.Repeat("line\n", 3),
			strings.Repeat("line\n", 100) + "password=[REDACTED]\n" + strings.Repeat("line\n", 3)},

		// Look-alikes that must stay readable.
		{"task- word", "see task-force-delivery-pipeline-2024 now", "see task-force-delivery-pipeline-2024 now"},
		{"sk-learn words", "pip install sk-learn-compatible-estimators", "pip install sk-learn-compatible-estimators"},
		{"token counts", `"prompt_tokens": 12, "max_tokens=100"`, `"prompt_tokens": 12, "max_tokens=100"`},
		{"tokenizer", "tokenizer: gpt2", "tokenizer: gpt2"},
		{"author", "author: Jane", "author: Jane"},
		{"pwd env", "PWD=/home/me", "PWD=/home/me"},
		{"null value", `"token": null`, `"token": null`},
		{"empty value", `password=""`, `password=""`},
		{"python compare", "if token == other:", "if token == other:"},
		{"python block", "if token:\n    pass", "if token:\n    pass"},
		{"keyboard", "keyboard: us", "keyboard: us"},
		{"short ghp", "ghp_short", "ghp_short"},
		{"AKIA inside word", "XAKIAIOSFODNN7EXAMPLE", "XAKIAIOSFODNN7EXAMPLE"},
		{"plain url", "https://example.com:8080/x@y", "https://example.com:8080/x@y"},
		{"bearer word", "the bearer of news", "the bearer of news"},
		{"already masked", "OPENAI_API_KEY=[REDACTED]", "OPENAI_API_KEY=[REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := String(tt.in)
			if got != tt.want {
				t.Errorf("String(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again := String(got); again != got {
				t.Errorf("not idempotent: %q -> %q", got, again)
			}
		})
	}
}

// TestStringNoSecretSurvives checks every fake secret is gone whatever
// surrounds it, in one big text.
func TestStringNoSecretSurvives(t *testing.T) {
	secrets := []string{openaiKey, legacyKey, antKey, orKey, ghToken, ghoToken, ghPAT, awsKey, slackToken, googleKey, bearerToken}
	var b strings.Builder
	for i, s := range secrets {
		b.WriteString(strings.Repeat("some ordinary output line\n", 50))
		if s == bearerToken {
			b.WriteString("Authorization: Bearer " + s + "\n")
			continue
		}
		b.WriteString([]string{"value ", "\t", `"`, "=", "("}[i%5] + s + "\n")
	}
	out := String(b.String())
	for _, s := range secrets {
		body := s[len(s)-12:]
		if strings.Contains(out, body) {
			t.Errorf("secret %q survived", s)
		}
	}
}

func TestStringCleanReturnsInput(t *testing.T) {
	in := cleanText(50 << 10)
	if got := String(in); got != in {
		t.Fatal("clean text was changed")
	}
	allocs := testing.AllocsPerRun(20, func() { String(in) })
	if allocs > 1 {
		t.Errorf("clean text: %v allocations per call, want at most 1", allocs)
	}
}

// cleanText is n bytes of typical tool output with nothing to mask: build
// logs, file listings, a stack trace, prose.
func cleanText(n int) string {
	lines := []string{
		"ok  \tgithub.com/hermesd/hermesd/tooling/files\t0.412s",
		"-rw-r--r-- 1 user user  4096 Nov 28 10:54 main.go",
		"goroutine 1 [running]:",
		"main.main()\n\t/work/main/cmd/hermesd/main.go:42 +0x1d",
		"The quick brown fox jumps over the lazy dog, then reads the manual.",
		"2024/11/28 10:54:01 GET /v1/models 200 1.2ms",
		"diff --git a/tooling/tool.go b/tooling/tool.go",
		"+\tfor _, t := range tools {",
		"see https://example.com/docs/page#section for details",
	}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(lines[i%len(lines)])
		b.WriteByte('\n')
	}
	return b.String()[:n]
}

// triggerText is n bytes of output full of trigger words and prefixes but
// holding no secret: the costly case, where the regexps must run.
func triggerText(n int) string {
	lines := []string{
		`usage: {"prompt_tokens": 120, "completion_tokens": 33}`,
		"the task-runner read the keyboard layout from the key map",
		"tokenizer: cl100k_base; bearer of bad news; passwords are hashed",
		"ghost high-ranking AKIA-like text: secret santa",
		"https://example.com/a b://c",
	}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(lines[i%len(lines)])
		b.WriteByte('\n')
	}
	return b.String()[:n]
}

func TestStringTriggerTextUnchanged(t *testing.T) {
	in := triggerText(50 << 10)
	if got := String(in); got != in {
		t.Fatal("text without secrets was changed")
	}
}

func BenchmarkStringClean50KB(b *testing.B) {
	in := cleanText(50 << 10)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		String(in)
	}
}

func BenchmarkStringTriggers50KB(b *testing.B) {
	in := triggerText(50 << 10)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		String(in)
	}
}

func BenchmarkStringWithSecrets50KB(b *testing.B) {
	in := cleanText(25<<10) + "OPENAI_API_KEY=" + openaiKey + "\n" + cleanText(25<<10)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		String(in)
	}
}

func TestToLowerASCII(t *testing.T) {
	// Every byte value, at every offset of the 8-byte blocks, against a
	// byte-at-a-time reference: only 'A'..'Z' change.
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	for off := range 8 {
		in := strings.Repeat("x", off) + string(all) + "@[`{ZAza"
		got := string(toLowerASCII(nil, in))
		want := []byte(in)
		for i, c := range want {
			if 'A' <= c && c <= 'Z' {
				want[i] = c + 32
			}
		}
		if got != string(want) {
			t.Fatalf("offset %d: got %q\nwant %q", off, got, want)
		}
	}
}
