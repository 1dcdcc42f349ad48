// Package hermes is the vocabulary of hermesd: messages, tool calls, usage,
// the events a turn emits, the turn request, stored response records and the
// error codes every other package speaks.
//
// It imports only the standard library and holds no behaviour beyond small
// methods on its types, and the parser of the directives that script a test
// model (ParseDirectives), which the offline model and bench's mock upstream
// share. Subpackages are cut by dependency: config, tooling,
// persistence, actors, httpfront, and cmd/hermesd which wires them.
package hermes
