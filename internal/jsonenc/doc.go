// Package jsonenc appends JSON by hand for the hot paths that build it
// without reflection: httpfront's SSE frames and bodies, and the upstream
// chat request tooling/llm sends. Both sides needing the same string
// escaping is why it is a package of its own; it imports only the
// standard library, so any package may use it.
package jsonenc
