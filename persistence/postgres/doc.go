// Package postgres is the PostgreSQL store of hermesd (cluster mode,
// HERMES_DATABASE_URL): the same responses, items, conversations,
// idempotency entries and files as the bbolt store, in tables several
// hermesd nodes share.
//
// The schema is a numbered list of SQL files embedded in the binary
// (migrations/NNNN_name.sql), applied at Open in one transaction under an
// advisory lock, so nodes starting together migrate once; a database
// whose schema is newer than this binary's is refused.
//
// It imports the root package, persistence (the Op vocabulary and the
// record codec) and pgx.
package postgres
