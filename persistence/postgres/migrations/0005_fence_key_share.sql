-- 0005: a fence takes a key-share lock on its lease row, not a share lock.
-- A share lock also blocks the holder's own renewal (an UPDATE of expires),
-- and a renewal batch updating a node's rows in one order while a write
-- batch fenced several of them in another deadlocked: PostgreSQL broke the
-- cycle after deadlock_timeout (1 s), stalling the write under the
-- cluster's write lock and failing the renewal. With epoch in a unique
-- index, an UPDATE that changes it (a takeover) or a DELETE (release,
-- sweep) takes the row's exclusive lock, which a key-share lock still
-- blocks, while a renewal, which changes only expires, passes.
CREATE UNIQUE INDEX leases_key_epoch ON leases (key, epoch);
