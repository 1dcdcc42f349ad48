-- 0004: nodes — each node's process (a lease owner) keeps a row here alive
-- as it keeps its leases, and every response record names the process that
-- wrote it. A queued or in_progress response whose writer's row expired
-- was left unfinished by a dead node, whether or not its turn had a lease
-- or a queue place yet (a background turn is stored queued before it
-- reaches its conversation's queue, and a turn continuing nothing takes
-- no lease at all): the sweep reports it, to be marked failed.
CREATE TABLE nodes (
    owner text PRIMARY KEY,
    expires timestamptz NOT NULL
);

-- '' for records written outside cluster mode and before this migration:
-- no sweep touches them.
ALTER TABLE responses ADD COLUMN owner text NOT NULL DEFAULT '';

-- node_sweep deletes the rows of nodes that stopped renewing them and
-- returns the unfinished responses of every node without a live row.
CREATE FUNCTION node_sweep() RETURNS SETOF text LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM nodes WHERE expires < now())
    SELECT r.id FROM responses r
    WHERE r.status IN ('queued', 'in_progress') AND r.owner <> ''
      AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.owner = r.owner AND n.expires >= now())
$$;
