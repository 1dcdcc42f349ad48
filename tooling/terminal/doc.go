// Package terminal is the agent's shell tool: it runs one command with
// /bin/sh in the workspace, bounded in time and output, after Check has
// refused commands that wreck a machine (never run) or need a human's
// approval (run only when the operator opted in). Check reads commands
// with a real shell parser (mvdan.cc/sh).
//
// It may import the root package, tooling, tooling/redact, mvdan.cc/sh,
// golang.org/x/sys and the standard library.
package terminal
