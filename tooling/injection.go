package tooling

import "regexp"

// injectionPatterns are phrases that have no business in text layered
// into the system prompt (context files, memory) and mark an attempt to
// take over the agent. The check is
// deliberately narrow: a false positive hides a legitimate file.
var injectionPatterns = []struct {
	re     *regexp.Regexp
	reason string
}{
	{regexp.MustCompile(`(?i)\b(ignore|disregard|forget)\s+(all\s+|any\s+)?(the\s+|your\s+)?(previous|prior|above|earlier)\s+(instructions|prompts?|rules)`), "asks to ignore previous instructions"},
	{regexp.MustCompile(`(?i)\b(reveal|print|show|output)\s+(your\s+|the\s+)?system\s+prompt`), "asks for the system prompt"},
	{regexp.MustCompile(`(?i)\bdo\s+not\s+tell\s+the\s+user`), "asks to hide actions from the user"},
	{regexp.MustCompile(`[\x{200B}\x{202A}-\x{202E}\x{2066}-\x{2069}\x{E0000}-\x{E007F}]`), "contains invisible or direction-changing characters"},
}

// Injection returns why text looks like a prompt injection, or "". Text
// that reaches every future system prompt (workspace context files, saved
// memories) is checked with it.
func Injection(text string) string {
	for _, p := range injectionPatterns {
		if p.re.MatchString(text) {
			return p.reason
		}
	}
	return ""
}
