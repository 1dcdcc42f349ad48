// Package todo owns the `todo` tool: a per-conversation task list the agent
// keeps while it works through a multi-step job.
//
// The tool holds no state. The list lives in the conversation itself: each
// call's result is the whole list, and the next call recovers it from the
// latest earlier `todo` result in the transcript. So the list survives a
// restart, follows the stored chain, and a forked chain forks its list.
//
// It may import the root package, tooling and the standard library.
package todo
