// Package bench is hermesd's load-test harness. It holds no code of its own;
// the pieces live in subpackages:
//
//   - mockllm: an OpenAI-compatible upstream with scripted latency, answer
//     length and tool calls, fast enough never to be the bottleneck.
//   - internal/load: the load client and the scenarios (chat, chat-stream,
//     responses-chain, conversation, tool-loop, idle).
//   - internal/report: percentiles, the table, the JSON and the SVG plot.
//   - internal/proc: child processes, /proc sampling and /metrics scraping.
//   - cmd/mockllm and cmd/hermes-bench: the two programs.
//
// bench may import the root package, the standard library and fasthttp; it
// never imports the server's own packages, so it measures hermesd strictly
// from the outside, over loopback.
package bench
