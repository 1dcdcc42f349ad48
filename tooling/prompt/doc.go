// Package prompt builds the agent's layered system prompt, in a fixed order
// so the long stable prefix stays byte-identical between turns and upstream
// prompt caching works: identity (SOUL.md or a built-in default), tool
// guidance, the caller's system message, the memory snapshot, the skills
// index, and the workspace's context files (HERMES.md, AGENTS.md,
// CLAUDE.md).
//
// It may import the standard library only; memory and skills reach it
// through the small interfaces in Options.
package prompt
