// Package persistence is the bbolt store of hermesd: stored responses with
// their least-recently-used order, conversation pointers, idempotency
// entries and the schema version.
//
// A response's items are stored once, under its id, with a pointer to its
// parent; a transcript is read by walking parents. Eviction removes a
// response's address; its items stay, reference-counted, while a retained
// descendant needs them, and go in the same transaction once none does.
//
// One writer (the persistence actor) groups many writes into one Apply, so
// many turns share one fsync; any number of goroutines may read at the same
// time. Images in items are kept once by content (blobs.go), however many
// responses carry them. It imports the root package, bbolt and go-json,
// nothing else.
//
// The PostgreSQL store (persistence/postgres, cluster mode) applies the
// same Ops and keeps the same record bytes: it reads ops through
// Op.Spec and decodes records with this package's codec (spec.go), with
// images inline in items (it keeps no blobs of its own). The
// behaviours both keep are one suite, persistence/storetest.
package persistence
