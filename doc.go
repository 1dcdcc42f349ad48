// Package hermes is the vocabulary of hermesd: messages, tool calls, usage,
// the events a turn emits, the turn request, stored response records and the
// error codes every other package speaks.
//
// It imports only the standard library and holds no behaviour beyond small
// methods on its types. Subpackages are cut by dependency: config, tooling,
// persistence, actors, httpfront, and cmd/hermesd which wires them.
package hermes
