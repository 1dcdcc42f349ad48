// Package tooling owns the Tool contract every agent tool implements and the
// Registry the agent loop draws from. Each tool family lives in its own
// subpackage (terminal, files, web, memory, skills, todo); model providers
// live under tooling/llm.
//
// It may import the root package, the standard library and small
// dependencies; never actors, httpfront or persistence.
package tooling
