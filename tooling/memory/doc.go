// Package memory owns the agent's persistent notes: the `memory` tool that
// adds, replaces and removes entries in $HERMES_HOME/memories/MEMORY.md (the
// agent's own notes) and USER.md (what it knows about the user), and the
// snapshot of both that the system prompt carries into every turn.
//
// It may import the root package, tooling and the standard library.
package memory
