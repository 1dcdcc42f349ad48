package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// Notification channels. Payloads are short: md5 of a lease key (keys may
// be longer than NOTIFY's 8000 bytes), or a response id.
const (
	chanLeaseFree = "lease_free"
	chanCancel    = "response_cancel"
	chanFinished  = "response_finished"
)

// listenTimeout bounds how long NewCluster waits for its notification
// connection.
const listenTimeout = 10 * time.Second

// ClusterOptions configure a node's membership of a cluster.
type ClusterOptions struct {
	// Owner names this process in lease rows: the node id plus something
	// unique to this start, so a restarted node never mistakes its
	// predecessor's leases for its own.
	Owner string
	// TTL is how long a lease outlives its holder's last renewal
	// (HERMES_LEASE_TTL); renewals come every TTL/3.
	TTL    time.Duration
	Logger *slog.Logger
	// OnCancel is called with the id of a background response another
	// node was asked to cancel; OnFinished with the id of one another node
	// finished; OnLost with the id of a response whose node died while
	// producing it (the sweeper found its lease, queue place or node row
	// expired).
	OnCancel, OnFinished, OnLost func(id string)
}

// Cluster is this node's part in a cluster of hermesd nodes sharing one
// database: it hands out leases (one turn at a time per conversation
// across nodes), renews those it holds, sweeps those of dead nodes, and
// carries cancels and completions between nodes by LISTEN/NOTIFY.
type Cluster struct {
	pool *pgxpool.Pool
	opts ClusterOptions
	log  *slog.Logger

	mu      sync.Mutex // guards waiters and held
	waiters map[string]map[chan struct{}]struct{}
	held    map[*persistence.Lease]time.Time // lease → when it was taken

	waits, losses atomic.Int64
	// healthy is false once a renewal failed, until one succeeds.
	healthy atomic.Bool
	// dbNanos is the latest renewal's round trip.
	dbNanos atomic.Int64
	observe func(op string, d time.Duration, err error)

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// NewCluster joins the cluster on pool: it starts listening for
// notifications (and returns once it does, so no wake-up is missed), and
// the renewal and sweep loops. Close leaves it.
func NewCluster(ctx context.Context, pool *pgxpool.Pool, opts ClusterOptions) (*Cluster, error) {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, f := range []*func(string){&opts.OnCancel, &opts.OnFinished, &opts.OnLost} {
		if *f == nil {
			*f = func(string) {}
		}
	}
	c := &Cluster{pool: pool, opts: opts, log: opts.Logger,
		waiters: make(map[string]map[chan struct{}]struct{}), held: make(map[*persistence.Lease]time.Time)}
	c.healthy.Store(true)
	// The node's row is there before it writes any response naming it:
	// the other nodes' sweep takes a response whose writer has no live
	// row for one left by a dead node.
	if _, err := pool.Exec(ctx, nodeAlive, opts.Owner, opts.TTL); err != nil {
		return nil, dbError("joining the cluster", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	ready := make(chan struct{})
	var readyOnce sync.Once
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		},
		LogError: func(_ context.Context, err error) {
			if bg.Err() == nil {
				c.log.Warn("cluster notifications: reconnecting", "err", err)
			}
		},
		ReconnectDelay: time.Second,
	}
	// The listener LISTENs on each channel in turn, then reports its
	// backlog: the node is ready once every channel is listened to.
	var listening atomic.Int32
	listened := func() {
		if listening.Add(1) == 3 {
			readyOnce.Do(func() { close(ready) })
		}
	}
	l.Handle(chanLeaseFree, backlog{
		// LISTEN is on again after a connection was lost: what was
		// notified meanwhile is gone, so every waiter looks again.
		backlog: func() { c.wakeAll(); listened() },
		notify:  func(p string) { c.wake(p) },
	})
	l.Handle(chanCancel, backlog{backlog: listened, notify: func(p string) { opts.OnCancel(p) }})
	l.Handle(chanFinished, backlog{backlog: listened, notify: func(p string) { opts.OnFinished(p) }})
	c.done.Add(3)
	go func() { defer c.done.Done(); _ = l.Listen(bg) }()
	go func() { defer c.done.Done(); c.renewLoop(bg) }()
	go func() { defer c.done.Done(); c.sweepLoop(bg) }()
	t := time.NewTimer(listenTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	case <-t.C:
		c.Close()
		return nil, &hermes.Error{Code: hermes.EUnavailable, Message: "cannot listen for cluster notifications on the database"}
	}
}

// backlog adapts functions to pgxlisten's handlers.
type backlog struct {
	backlog func()
	notify  func(payload string)
}

func (b backlog) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	b.notify(n.Payload)
	return nil
}

func (b backlog) HandleBacklog(context.Context, string, *pgx.Conn) error {
	if b.backlog != nil {
		b.backlog()
	}
	return nil
}

// Observe sets a function told of each database call the cluster makes
// (renew, sweep, take, release, notify) and how long it took, and of each
// wait for a lease another turn held ("wait"); call it before the node
// serves.
func (c *Cluster) Observe(f func(op string, d time.Duration, err error)) { c.observe = f }

func (c *Cluster) timed(op string, start time.Time, err error) {
	if c.observe != nil {
		c.observe(op, time.Since(start), err)
	}
}

// Close stops renewing, sweeping and listening. Leases still held expire
// on their own.
func (c *Cluster) Close() {
	c.cancel()
	c.done.Wait()
}

func leaseChannelKey(key string) string {
	sum := md5.Sum([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (c *Cluster) wake(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.waiters[hash] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (c *Cluster) wakeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ws := range c.waiters {
		for ch := range ws {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// errQueueFull is the refusal of a turn beyond the queue cap.
var errQueueFull = &hermes.Error{Code: hermes.ERateLimited, RetryAfter: time.Second,
	Message: "too many requests queued on this conversation across the cluster (API_SERVER_MAX_QUEUED_TURNS); retry after the current turn"}

// Acquire takes the lease of key for a turn producing response, waiting
// in arrival order behind the turns of every node that asked first —
// woken by a notification when the lease is released, or at its expiry
// when its holder died. Beyond queue waiting turns it refuses with
// ERateLimited. ctx ends the wait (its cause is returned).
func (c *Cluster) Acquire(ctx context.Context, key, response string, queue int) (*persistence.Lease, error) {
	l, ticket, err := c.Enqueue(ctx, key, response, queue)
	if err != nil || l != nil {
		return l, err
	}
	return c.Wait(ctx, key, response, ticket)
}

// Enqueue takes the lease of key when it is free and nobody waits for it;
// else it takes a place in its queue, whose ticket Wait (or GiveUp) must
// be called with. A node that enqueues its turns in their arrival order
// has them served in that order among every node's turns.
func (c *Cluster) Enqueue(ctx context.Context, key, response string, queue int) (*persistence.Lease, int64, error) {
	l, ticket, _, err := c.take(ctx, key, response, 0, queue)
	if err != nil {
		c.GiveUp(key, ticket) // a place taken as ctx ended
		return nil, 0, err
	}
	if l == nil && ticket < 0 {
		return nil, 0, errQueueFull
	}
	return l, ticket, nil
}

// Wait waits with ticket (from Enqueue) until the lease of key is this
// turn's. When ctx ends first, the place is given up.
func (c *Cluster) Wait(ctx context.Context, key, response string, ticket int64) (*persistence.Lease, error) {
	hash := leaseChannelKey(key)
	wake := make(chan struct{}, 1)
	c.mu.Lock()
	if c.waiters[hash] == nil {
		c.waiters[hash] = make(map[chan struct{}]struct{})
	}
	c.waiters[hash][wake] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters[hash], wake)
		if len(c.waiters[hash]) == 0 {
			delete(c.waiters, hash)
		}
		c.mu.Unlock()
	}()
	waitStart := time.Now()
	for {
		// Registered before this look: a release notified from now on
		// is not missed.
		l, next, until, err := c.take(ctx, key, response, ticket, math.MaxInt32)
		if err != nil {
			if next > 0 {
				ticket = next // the place the look ended with (a new one if the old had expired)
			}
			c.GiveUp(key, ticket)
			return nil, err
		}
		if l != nil {
			c.waits.Add(1)
			c.timed("wait", waitStart, nil)
			return l, nil
		}
		ticket = next
		// Look again when notified, or when the holder's (or the earlier
		// waiter's) expiry passes with no notification: it died.
		t := time.NewTimer(max(time.Until(until)+10*time.Millisecond, 10*time.Millisecond))
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.GiveUp(key, ticket)
			return nil, context.Cause(ctx)
		}
		t.Stop()
	}
}

// statementLimit bounds a lease statement that its caller's context no
// longer bounds (take, the sweep): far above a wait for the key's lock or
// a loaded database — the lease TTL was not, and a loaded test machine
// turned slow looks into errors — it only ends a statement that would
// never finish.
const statementLimit = time.Minute

// take makes one attempt at the lease of key with ticket (0: none yet):
// the lease, or the caller's ticket (-1: the queue is full) and when to
// look again without a notification.
func (c *Cluster) take(ctx context.Context, key, response string, ticket int64, queue int) (*persistence.Lease, int64, time.Time, error) {
	var epoch int64
	var orphan string
	var until pgtype.Timestamptz // NULL once taken
	start := time.Now()
	// The wait for a connection ends with ctx, but the statement, once
	// sent, runs to its end (within statementLimit) whatever ctx does:
	// cancelled in flight, it could still commit a place in the queue or
	// the lease itself, which this node would never learn of, and which
	// would keep the key's other turns waiting until it expired. What it
	// took after ctx ended is given back.
	conn, err := c.pool.Acquire(ctx)
	if err == nil {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statementLimit)
		err = conn.QueryRow(qctx, "SELECT epoch, orphan, ticket, wait_until FROM lease_take($1, $2, $3, $4, $5, $6)",
			key, c.opts.Owner, response, c.opts.TTL, ticket, queue).Scan(&epoch, &orphan, &ticket, &until)
		cancel()
		conn.Release()
	}
	c.timed("take", start, err)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, time.Time{}, context.Cause(ctx)
		}
		return nil, 0, time.Time{}, dbError("taking a lease", err)
	}
	if epoch > 0 {
		l := c.hold(key, epoch, orphan)
		if ctx.Err() != nil {
			l.Release()
			if orphan != "" {
				c.opts.OnLost(orphan) // as the sweeper would have, had nobody taken it
			}
			return nil, 0, time.Time{}, context.Cause(ctx)
		}
		return l, 0, time.Time{}, nil
	}
	if ctx.Err() != nil {
		return nil, ticket, time.Time{}, context.Cause(ctx) // the caller gives the place up
	}
	return nil, ticket, until.Time, nil
}

// GiveUp leaves the queue of key, waking whoever is next; a ticket of 0
// or less does nothing. It does not use the caller's context, which may
// have ended.
func (c *Cluster) GiveUp(key string, ticket int64) {
	if ticket <= 0 {
		return
	}
	if err := c.exec("release", "SELECT lease_release($1, 0, $2)", key, ticket); err != nil {
		c.log.Warn("leaving a lease queue failed; the place expires on its own", "err", err)
	}
}

// hold records a taken lease, for renewal, and builds it.
func (c *Cluster) hold(key string, epoch int64, orphan string) *persistence.Lease {
	var l *persistence.Lease
	l = persistence.NewLease(key, epoch, orphan, func() { c.release(l) })
	c.mu.Lock()
	c.held[l] = time.Now()
	c.mu.Unlock()
	return l
}

// release gives l back and wakes the next waiter of any node.
func (c *Cluster) release(l *persistence.Lease) {
	c.mu.Lock()
	_, ok := c.held[l]
	delete(c.held, l)
	c.mu.Unlock()
	if !ok {
		return // released already
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.TTL)
	defer cancel()
	start := time.Now()
	// Whether the lease was still ours is read before it is released: a
	// holder that stalled past it may learn so only here (its fenced
	// write failed before a renewal noticed).
	var mine bool
	err := c.pool.QueryRow(ctx, `WITH held AS (SELECT count(*) > 0 AS mine FROM leases WHERE key = $1 AND epoch = $2)
		SELECT mine, lease_release($1, $2, 0) IS NULL FROM held`, l.Key, l.Epoch).Scan(&mine, new(bool))
	c.timed("release", start, err)
	if err != nil {
		c.log.Warn("releasing a lease failed; it expires on its own", "key", l.Key, "err", err)
		return
	}
	if !mine {
		c.losses.Add(1)
		c.log.Warn("lease lost: another node took the conversation over", "key", l.Key, "epoch", l.Epoch)
		l.Lose()
	}
}

// renewLoop pushes the expiry of every lease and queue place this node
// holds forward, every TTL/3, in one round trip; a held lease the renewal
// does not find was taken over: it is lost.
func (c *Cluster) renewLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.renew(ctx)
	}
}

func (c *Cluster) renew(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.TTL/3)
	defer cancel()
	asked := time.Now()
	b := &pgx.Batch{}
	b.Queue("UPDATE leases SET expires = now() + $2 WHERE owner = $1 RETURNING key, epoch", c.opts.Owner, c.opts.TTL)
	b.Queue("UPDATE lease_waiters SET expires = now() + $2 WHERE owner = $1", c.opts.Owner, c.opts.TTL)
	b.Queue(nodeAlive, c.opts.Owner, c.opts.TTL)
	renewed := make(map[int64]bool)
	br := c.pool.SendBatch(ctx, b)
	rows, err := br.Query()
	if err == nil {
		for rows.Next() {
			var key string
			var epoch int64
			if err = rows.Scan(&key, &epoch); err != nil {
				break
			}
			renewed[epoch] = true
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	c.timed("renew", asked, err)
	if err != nil {
		if ctx.Err() == nil || c.healthy.Load() {
			c.log.Warn("renewing leases failed", "err", err)
		}
		c.healthy.Store(false)
		return
	}
	c.healthy.Store(true)
	c.dbNanos.Store(int64(time.Since(asked)))
	var lost []*persistence.Lease
	c.mu.Lock()
	for l, taken := range c.held {
		if taken.Before(asked) && !renewed[l.Epoch] {
			lost = append(lost, l)
			delete(c.held, l)
		}
	}
	c.mu.Unlock()
	for _, l := range lost {
		c.losses.Add(1)
		c.log.Warn("lease lost: another node took the conversation over", "key", l.Key, "epoch", l.Epoch)
		l.Lose()
	}
}

// nodeAlive keeps the row of node $1 alive for $2 more: the renewal
// recreates it should a stall have let another node's sweep delete it.
const nodeAlive = `INSERT INTO nodes (owner, expires) VALUES ($1, now() + $2)
	ON CONFLICT (owner) DO UPDATE SET expires = excluded.expires`

// sweepLoop deletes, every TTL, the leases, queue places and node rows of
// nodes that stopped renewing them, and reports the responses they left
// unfinished: those their leases and queue places name, and every queued
// or in_progress one they wrote (a turn stored before it took a lease or
// queue place, or one that takes none).
func (c *Cluster) sweepLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.TTL)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		// Not cut short by Close: a sweep that committed would have
		// deleted the rows of the responses it reports, and no later
		// sweep would find them to mark lost.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statementLimit)
		rows, err := c.pool.Query(qctx, "SELECT * FROM lease_sweep() UNION SELECT * FROM node_sweep()")
		var ids []string
		if err == nil {
			ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		cancel()
		c.timed("sweep", start, err)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("sweeping expired leases failed", "err", err)
			}
			continue
		}
		for _, id := range ids {
			c.opts.OnLost(id)
		}
	}
}

// Cancel asks whichever node runs the background response id to cancel it.
func (c *Cluster) Cancel(id string) error { return c.notify(chanCancel, id) }

// Finished tells the other nodes that the background response id has its
// final record (a node waiting to answer a cancel is waiting for it).
func (c *Cluster) Finished(id string) error { return c.notify(chanFinished, id) }

func (c *Cluster) notify(channel, payload string) error {
	if len(payload) > 7000 {
		return hermes.Errorf(hermes.EInvalid, "notification payload too long")
	}
	if err := c.exec("notify", "SELECT pg_notify($1, $2)", channel, payload); err != nil {
		return dbError("notifying the cluster", err)
	}
	return nil
}

// exec runs one statement, bounded by the lease TTL and timed as op.
func (c *Cluster) exec(op, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.TTL)
	defer cancel()
	start := time.Now()
	_, err := c.pool.Exec(ctx, sql, args...)
	c.timed(op, start, err)
	return err
}

// ClusterStats are the cluster's figures for /metrics and /health.
type ClusterStats struct {
	Healthy bool
	// Latency is the latest lease renewal's round trip.
	Latency time.Duration
	// Waits counts leases taken after waiting for another turn; Losses
	// leases lost to another node while held.
	Waits, Losses int64
	Held          int
	// Pool: connections in use, idle, open, and the cap.
	PoolAcquired, PoolIdle, PoolTotal, PoolMax int32
}

// Stats returns the cluster's figures.
func (c *Cluster) Stats() ClusterStats {
	c.mu.Lock()
	held := len(c.held)
	c.mu.Unlock()
	ps := c.pool.Stat()
	return ClusterStats{
		Healthy: c.healthy.Load(), Latency: time.Duration(c.dbNanos.Load()),
		Waits: c.waits.Load(), Losses: c.losses.Load(), Held: held,
		PoolAcquired: ps.AcquiredConns(), PoolIdle: ps.IdleConns(), PoolTotal: ps.TotalConns(), PoolMax: ps.MaxConns(),
	}
}

func dbError(what string, err error) error {
	return &hermes.Error{Code: hermes.EStore, Message: fmt.Sprintf("database: %s failed", what), Cause: err}
}

// CheckFence fails with EConversationBusy unless the lease key still
// carries epoch. Run inside a write's transaction, it holds the lease
// row's key-share lock until the commit, so no other node can take the
// lease over (change its epoch, or delete it) between the check and the
// write; the holder's renewals, which change only expires, are not blocked
// (migration 0005).
func CheckFence(ctx context.Context, tx pgx.Tx, key string, epoch int64) error {
	var one int
	err := tx.QueryRow(ctx, "SELECT 1 FROM leases WHERE key = $1 AND epoch = $2 FOR KEY SHARE", key, epoch).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return persistence.ErrLeaseLost
	}
	return err
}

// SharedKey returns the cluster's key called name: the one stored, or else
// mine, which is stored for every later caller. A node moving a
// single-node deployment into a cluster offers its own key, so what it
// sealed before stays readable.
func (s *Store) SharedKey(ctx context.Context, name string, mine []byte) ([]byte, error) {
	var key []byte
	var err error
	// Twice: when another node's insert commits while this statement
	// runs, the conflict skips the insert but the statement's snapshot
	// does not see that row yet; the second look does.
	for range 2 {
		err = s.pool.QueryRow(ctx, `WITH put AS (
			INSERT INTO shared_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING key)
			SELECT key FROM put UNION ALL SELECT key FROM shared_keys WHERE name = $1 LIMIT 1`, name, mine).Scan(&key)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	if err != nil {
		return nil, dbError("reading the shared key "+name, err)
	}
	return key, nil
}
