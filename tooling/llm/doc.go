// Package llm holds the model providers of the agent loop: an
// OpenAI-compatible upstream client (OpenAI, OpenRouter, vLLM, Ollama,
// llama.cpp server, LiteLLM…) and the offline scripted model that answers
// when no upstream is configured.
//
// Upstream streams /chat/completions over a fasthttp connection pool (or
// net/http when given an HTTPClient or when a proxy is configured in the
// environment, which fasthttp does not support) and assembles text, tool
// calls (by index), finish reason and usage from the SSE chunks; it also
// accepts servers that answer with one plain JSON body. Every failure is a
// *hermes.Error: EUpstream, ERateLimited (with RetryAfter), ETimeout naming
// the timeout that fired, ECancelled when the caller's context ends.
//
// Router holds the models clients may name (config.yaml's models:), resolves
// a request's model (unknown names to the default, or model_not_found), and
// wraps each in a Model that falls back to the next of its fallbacks, once
// each, when a call fails before its first token on a refused connection,
// HTTP 5xx or 429.
//
// Offline is deterministic and driven by directives, one per line, in the
// last user message (DIRECTIVES.md has the table the README shows):
//
//	/tool NAME {json}       call tool NAME (several lines: parallel calls)
//	/repeat K               issue the /tool calls K times, then answer
//	/tokens N               answer "tok1 tok2 … tokN" (N ≤ 100000)
//	/sleep DURATION         wait before answering (≤ 10m)
//	/delay DURATION         wait between tokens (≤ 10m)
//	/fail MESSAGE           fail with EUpstream MESSAGE
//	/fail-after N MESSAGE   stream N tokens, then fail
//	/echo-system            answer with the system prompt
//	/echo-history           answer with every message, one "role: text" line each
//
// Without a directive it answers "Hermes (offline model) heard: <text>".
//
// It may import the root package, the standard library, go-json and
// fasthttp.
package llm
