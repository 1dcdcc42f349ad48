// Package mockllm is a fake OpenAI-compatible model server for load tests:
// /v1/chat/completions (streaming and not) and /v1/models, with settings for
// time to first token, delay between tokens, answer length and scripted tool
// calls, so one agent turn can be made to run N tool iterations.
//
// Settings come from Config and may be overridden per request by directives in
// the last user message, one a line, read by the parser hermesd's offline
// model uses (hermes.ParseDirectives): "/tokens N", "/delay 5ms", "/sleep 1s",
// "/tool NAME {json}", "/repeat K" and "/think TEXT" (reasoning streamed
// before the answer or tool call, as delta.reasoning_content, delta.reasoning
// or <think>…</think> in content: Config.ReasoningForm).
// The tool script is stateless: the server counts the tool results that follow
// the last user message and asks for another call until K have been made.
//
// It imports the root package, the standard library and fasthttp only. The
// hot path writes pre-shaped JSON by hand so a 2-core machine spends its time
// in the server under test, not here.
package mockllm
