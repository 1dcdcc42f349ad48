// Package redact masks secrets (API keys, tokens, passwords, private keys)
// in text that leaves the process: tool output the model sees and log lines.
//
// A masked secret keeps only its public, non-secret part so a reader can tell
// what was there: a vendor prefix (`sk-proj-[REDACTED]`, `ghp_[REDACTED]`,
// `AKIA[REDACTED]`), the key of an assignment (`OPENAI_API_KEY=[REDACTED]`,
// `"password": "[REDACTED]"`), the scheme of a credential (`Bearer
// [REDACTED]`), the armour lines of a PEM private key, the user of a URL
// (`https://user:[REDACTED]@host`). No character of the secret itself is
// kept. When in doubt it masks: a false positive costs a value in a log, a
// false negative leaks a key.
//
// Known complements the patterns: it masks the exact values of the secrets
// hermesd knows (its keys, its secret environment variables) and the forms
// a command turns them into (base64, hex, URL encoding, reversed) as
// [REDACTED:NAME], whatever the text around them looks like.
//
// It imports only the standard library.
package redact
