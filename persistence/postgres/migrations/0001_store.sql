-- 0001: the store — responses with their items stored once, conversations,
-- idempotency entries, files. Records are the bbolt store's encoding
-- (a format byte, then JSON), so both stores decode them with one codec.

-- The order of use of responses and conversations (least recently used
-- first) and of a conversation's responses: one sequence for all.
CREATE SEQUENCE store_seq;

-- Counters kept by every write, so that Len and the bounds never count
-- rows. One row, always there.
CREATE TABLE store_counts (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    responses bigint NOT NULL DEFAULT 0,
    conversations bigint NOT NULL DEFAULT 0,
    idempotency_entries bigint NOT NULL DEFAULT 0,
    idempotency_bytes bigint NOT NULL DEFAULT 0
);
INSERT INTO store_counts DEFAULT VALUES;

-- A response's own items, with a pointer to its parent's: a transcript is
-- the walk up the parents. Items outlive their response's address while a
-- kept descendant needs them.
CREATE TABLE items (
    id text PRIMARY KEY,
    parent text REFERENCES items (id),
    data bytea NOT NULL
);
CREATE INDEX items_parent ON items (parent) WHERE parent IS NOT NULL;

-- Addressable responses (at most API_SERVER_MAX_STORED_RESPONSES): the
-- record without items, its status (for the unfinished ones at start),
-- the conversation it belongs to and its place there, its last use.
CREATE TABLE responses (
    id text PRIMARY KEY REFERENCES items (id),
    record bytea NOT NULL,
    status text NOT NULL,
    conversation text,
    conversation_seq bigint,
    used bigint NOT NULL
);
CREATE INDEX responses_used ON responses (used);
CREATE INDEX responses_conversation ON responses (conversation, conversation_seq) WHERE conversation IS NOT NULL;
CREATE INDEX responses_unfinished ON responses (id) WHERE status IN ('queued', 'in_progress');

CREATE TABLE conversations (
    id text PRIMARY KEY,
    record bytea NOT NULL,
    used bigint NOT NULL
);
CREATE INDEX conversations_used ON conversations (used);

CREATE TABLE idempotency (
    key text PRIMARY KEY,
    record bytea NOT NULL,
    expires timestamptz NOT NULL,
    bytes bigint NOT NULL
);
CREATE INDEX idempotency_expires ON idempotency (expires);

-- Files of the Files API: the record, and the bytes in chunks so that no
-- statement carries a whole 100 MiB upload. An upload's chunks are written
-- before its record exists; committed says the record is there.
CREATE TABLE files (
    id text PRIMARY KEY,
    record bytea,
    bytes bigint NOT NULL DEFAULT 0,
    committed boolean NOT NULL DEFAULT false,
    started timestamptz NOT NULL DEFAULT now(),
    used bigint NOT NULL DEFAULT 0
);
CREATE INDEX files_used ON files (used) WHERE committed;
CREATE TABLE file_chunks (
    file text NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    n integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (file, n)
);
