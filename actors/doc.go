// Package actors is hermesd's runtime, built on protoactor-go: the Runtime
// facade httpfront talks to, the dispatcher that owns conversation actors,
// the conversation actors that run one turn at a time per chain or named
// conversation, the persistence actor that groups store writes, and the
// agent loop itself (plain Go, testable without actors).
//
// It may import the root package, tooling, persistence and protoactor; never
// fasthttp or httpfront.
package actors
