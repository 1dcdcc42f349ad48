// Package persistence is the bbolt store of hermesd: stored responses with
// their least-recently-used order, conversation pointers, idempotency
// entries and the schema version.
//
// One writer (the persistence actor) groups many writes into one Apply, so
// many turns share one fsync; any number of goroutines may read at the same
// time. It imports the root package, bbolt and go-json, nothing else.
package persistence
