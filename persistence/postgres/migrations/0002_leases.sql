-- 0002: leases — one turn at a time per conversation or chain across
-- nodes. A lease row names its holder (a node's process), a fencing epoch
-- and an expiry the holder keeps pushing forward; every write of a turn
-- checks, in its own transaction, that the row still carries the turn's
-- epoch, so a holder that lost its lease (stalled, partitioned) cannot
-- overwrite a newer turn. Times are the database's clock, never a node's.

-- Epochs come from one sequence, never reused: a released lease's row is
-- deleted, and the next holder's epoch still differs from every earlier
-- one.
CREATE SEQUENCE lease_epoch;

CREATE TABLE leases (
    key text PRIMARY KEY,
    owner text NOT NULL,
    epoch bigint NOT NULL,
    -- the response the holder's turn produces: marked failed (node_lost)
    -- when the holder dies with it unfinished
    response text NOT NULL DEFAULT '',
    expires timestamptz NOT NULL
);
CREATE INDEX leases_owner ON leases (owner);
CREATE INDEX leases_expires ON leases (expires);

-- Turns waiting for a lease, in arrival order (ticket). A waiter's row
-- expires like a lease, so a dead node's waiters do not block the queue.
CREATE TABLE lease_waiters (
    ticket bigserial PRIMARY KEY,
    key text NOT NULL,
    owner text NOT NULL,
    response text NOT NULL DEFAULT '',
    expires timestamptz NOT NULL
);
CREATE INDEX lease_waiters_key ON lease_waiters (key, ticket);
CREATE INDEX lease_waiters_owner ON lease_waiters (owner);

-- lease_take takes the lease of p_key for p_owner when it is free (no row,
-- or an expired one) and no earlier live waiter is queued for it; p_ticket
-- is the caller's place in the queue (0: not queued yet). Taken, it
-- returns the new epoch and, when it replaced an expired holder's lease,
-- that holder's response (orphan). Not taken, it queues the caller (unless
-- p_max_waiters live waiters are queued already: ticket -1) and returns
-- its ticket and when to look again should no notification come (the
-- holder's or the earlier waiter's expiry). One call, one round trip; the
-- advisory lock orders the takers of one key.
CREATE FUNCTION lease_take(p_key text, p_owner text, p_response text, p_ttl interval,
                           p_ticket bigint, p_max_waiters integer)
RETURNS TABLE (epoch bigint, orphan text, ticket bigint, wait_until timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    cur leases%ROWTYPE;
    held boolean;
    head lease_waiters%ROWTYPE;
    queued boolean;
    n integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('lease:' || p_key, 0));
    SELECT * INTO cur FROM leases l WHERE l.key = p_key;
    held := FOUND AND cur.expires > now();
    SELECT * INTO head FROM lease_waiters w WHERE w.key = p_key AND w.expires > now() ORDER BY w.ticket LIMIT 1;
    queued := FOUND;
    IF NOT held AND (NOT queued OR head.ticket = p_ticket) THEN
        epoch := nextval('lease_epoch');
        orphan := coalesce(cur.response, '');
        INSERT INTO leases AS l (key, owner, epoch, response, expires)
        VALUES (p_key, p_owner, epoch, p_response, now() + p_ttl)
        ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch,
            response = excluded.response, expires = excluded.expires;
        IF p_ticket > 0 THEN
            DELETE FROM lease_waiters w WHERE w.ticket = p_ticket;
        END IF;
        ticket := 0;
        RETURN NEXT;
        RETURN;
    END IF;
    epoch := 0;
    orphan := '';
    ticket := p_ticket;
    IF p_ticket > 0 THEN
        -- Still queued? A waiter whose row expired (its node stalled) and
        -- was swept queues again, at the back.
        UPDATE lease_waiters w SET expires = now() + p_ttl WHERE w.ticket = p_ticket;
        IF NOT FOUND THEN
            ticket := 0;
        END IF;
    END IF;
    IF ticket = 0 THEN
        SELECT count(*) INTO n FROM lease_waiters w WHERE w.key = p_key AND w.expires > now();
        IF n >= p_max_waiters THEN
            ticket := -1;
            RETURN NEXT;
            RETURN;
        END IF;
        INSERT INTO lease_waiters (key, owner, response, expires)
        VALUES (p_key, p_owner, p_response, now() + p_ttl) RETURNING lease_waiters.ticket INTO ticket;
    END IF;
    IF held THEN
        wait_until := cur.expires;
    ELSE
        wait_until := head.expires;
    END IF;
    RETURN NEXT;
END
$$;

-- lease_release gives up a lease (when it still carries p_epoch) or a
-- place in its queue (p_ticket), and wakes the key's waiters.
CREATE FUNCTION lease_release(p_key text, p_epoch bigint, p_ticket bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_epoch > 0 THEN
        DELETE FROM leases l WHERE l.key = p_key AND l.epoch = p_epoch;
    END IF;
    IF p_ticket > 0 THEN
        DELETE FROM lease_waiters w WHERE w.ticket = p_ticket;
    END IF;
    -- NOTIFY serializes committing transactions on a global lock: only
    -- when someone waits.
    IF EXISTS (SELECT 1 FROM lease_waiters w WHERE w.key = p_key) THEN
        PERFORM pg_notify('lease_free', md5(p_key));
    END IF;
END
$$;

-- lease_sweep deletes the leases and queue places whose holders stopped
-- renewing them (dead or stalled nodes) and returns the responses they
-- were producing, for the caller to mark failed.
CREATE FUNCTION lease_sweep() RETURNS SETOF text LANGUAGE sql AS $$
    WITH l AS (DELETE FROM leases WHERE expires < now() RETURNING response),
         w AS (DELETE FROM lease_waiters WHERE expires < now() RETURNING response)
    SELECT response FROM l WHERE response <> ''
    UNION ALL
    SELECT response FROM w WHERE response <> ''
$$;
