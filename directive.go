package hermes

import (
	"strconv"
	"strings"
	"time"
)

// Directives are the lines of a user message that script a test model: the
// built-in offline model and bench's mock upstream read the same ones
// (tooling/llm/DIRECTIVES.md), so a prompt means the same to both.
type Directives struct {
	// Text is the message without its directive lines.
	Text string
	// Calls are the /tool lines, in order: Name and Arguments only.
	Calls []ToolCall
	// Repeat is /repeat K: how many rounds of Calls; 0 when not given,
	// which the offline model reads as one round.
	Repeat int
	// Tokens is /tokens N, the answer's length; -1 when not given.
	Tokens int
	// Sleep is /sleep D, the wait before answering.
	Sleep time.Duration
	// Delay is /delay D, the wait between streamed tokens; DelaySet says
	// it was given (0 is a valid delay).
	Delay    time.Duration
	DelaySet bool
	// Fail is the failure's message, from /fail or /fail-after; FailSet
	// says /fail was given (fail at once).
	Fail    string
	FailSet bool
	// FailAfter is /fail-after N: fail after N tokens; -1 when not given.
	FailAfter int
	// EchoSystem and EchoHistory are /echo-system and /echo-history.
	EchoSystem  bool
	EchoHistory bool
	// Think is /think TEXT: reasoning given before every response.
	Think string
}

// Limits on directives, so a test prompt cannot pin a server for long.
const (
	MaxDirectiveTokens = 100000
	MaxDirectiveWait   = 10 * time.Minute
	MaxDirectiveRepeat = 1000
	// DefaultFailReason is the message of a /fail that gives none.
	DefaultFailReason = "offline model failure"
)

// ParseDirectives reads the directives of msg: lines starting with a known
// /directive. Other lines, including unknown or malformed directives, are
// plain text. Values beyond the limits are capped.
func ParseDirectives(msg string) Directives {
	d := Directives{Tokens: -1, FailAfter: -1}
	if !strings.Contains(msg, "/") {
		d.Text = msg // the common case: no directive, no allocation
		return d
	}
	// Lines are copied only once a directive shows up, so messages that
	// merely contain a slash (paths, URLs) cost no allocation.
	var text strings.Builder
	found := false
	for start := 0; start < len(msg); {
		end := strings.IndexByte(msg[start:], '\n')
		if end < 0 {
			end = len(msg)
		} else {
			end += start
		}
		line := msg[start:end]
		if d.apply(strings.TrimSpace(line)) {
			if !found {
				found = true
				text.WriteString(msg[:start])
			}
		} else if found {
			text.WriteString(line)
			text.WriteByte('\n')
		}
		start = end + 1
	}
	if found {
		d.Text = strings.TrimSpace(text.String())
	} else {
		d.Text = msg
	}
	return d
}

// apply applies one line if it is a well-formed directive.
func (d *Directives) apply(line string) bool {
	if len(line) < 2 || line[0] != '/' {
		return false
	}
	name, arg, _ := strings.Cut(line[1:], " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case "tool":
		tool, args, _ := strings.Cut(arg, " ")
		if tool == "" {
			return false
		}
		args = strings.TrimSpace(args)
		if args == "" {
			args = "{}"
		}
		d.Calls = append(d.Calls, ToolCall{Name: tool, Arguments: args})
	case "repeat":
		n, ok := directiveCount(arg, 1, MaxDirectiveRepeat)
		if !ok {
			return false
		}
		d.Repeat = n
	case "tokens":
		n, ok := directiveCount(arg, 0, MaxDirectiveTokens)
		if !ok {
			return false
		}
		d.Tokens = n
	case "sleep", "delay":
		t, err := time.ParseDuration(arg)
		if err != nil || t < 0 {
			return false
		}
		t = min(t, MaxDirectiveWait)
		if name == "sleep" {
			d.Sleep = t
		} else {
			d.Delay, d.DelaySet = t, true
		}
	case "fail":
		d.Fail, d.FailSet = arg, true
		if d.Fail == "" {
			d.Fail = DefaultFailReason
		}
	case "fail-after":
		n, msg, _ := strings.Cut(arg, " ")
		k, ok := directiveCount(n, 0, MaxDirectiveTokens)
		if !ok {
			return false
		}
		d.FailAfter = k
		d.Fail = strings.TrimSpace(msg)
		if d.Fail == "" {
			d.Fail = DefaultFailReason
		}
	case "think":
		if arg == "" {
			return false
		}
		d.Think = arg
	case "echo-system":
		if arg != "" {
			return false
		}
		d.EchoSystem = true
	case "echo-history":
		if arg != "" {
			return false
		}
		d.EchoHistory = true
	default:
		return false
	}
	return true
}

// directiveCount parses a non-negative integer at least lo, capped at hi.
func directiveCount(s string, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo {
		return 0, false
	}
	return min(n, hi), true
}
