-- 0003: keys every node of a cluster must share: what one node seals (a
-- compaction item's or reasoning item's encrypted_content) another node
-- must open. The first node to start puts its own key; the others take it.
CREATE TABLE shared_keys (
    name text PRIMARY KEY,
    key bytea NOT NULL
);
