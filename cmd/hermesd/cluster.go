package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hermesd/hermesd/actors"
	"github.com/hermesd/hermesd/persistence/postgres"
)

// nodeID is HERMES_NODE_ID, else the host name: what /health and the
// logs call this node.
func nodeID(configured string) string {
	if configured != "" {
		return configured
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "hermesd"
}

// joinCluster makes this node a member of the cluster sharing store's
// database: leases for its turns, cancels and completions from the other
// nodes, the sweep of dead nodes' leases. rt is set once the runtime
// exists; what arrives before that finds nothing of this node's to act on.
func (m *Main) joinCluster(ctx context.Context, store *postgres.Store, rt *atomic.Pointer[actors.Runtime]) (*postgres.Cluster, error) {
	// The owner of lease rows is this start of the node, so a node
	// restarted within a lease's TTL never takes its predecessor's leases
	// for its own.
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	owner := m.node + "/" + hex.EncodeToString(nonce)
	with := func(f func(r *actors.Runtime, id string)) func(string) {
		return func(id string) {
			if r := rt.Load(); r != nil {
				f(r, id)
			}
		}
	}
	c, err := postgres.NewCluster(ctx, store.Pool(), postgres.ClusterOptions{
		Owner: owner, TTL: m.Config.LeaseTTL, Logger: m.Logger.With("node", m.node),
		OnCancel:   with((*actors.Runtime).CancelFromPeer),
		OnFinished: with((*actors.Runtime).PeerFinished),
		OnLost:     with((*actors.Runtime).MarkLost),
	})
	if err != nil {
		return nil, err
	}
	// Every response this node writes names it, so what it leaves
	// unfinished when it dies is failed by the others' sweep even when no
	// lease or queue place of its names it.
	store.SetOwner(owner)
	return c, nil
}

// databaseUp is /health's view of the database: nil on bbolt, else
// whether the latest lease renewal reached it.
func (m *Main) databaseUp() func() bool {
	if m.cluster == nil {
		return nil
	}
	return func() bool { return m.cluster.Stats().Healthy }
}

// clusterMetrics registers the cluster's figures: lease waits and losses,
// database latency by operation, the connection pool.
func (o *observers) clusterMetrics(c *postgres.Cluster) {
	db := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hermes_database_duration_seconds", Help: "Cluster database calls (lease take, release, renew, sweep, notify) by operation and outcome; op=wait is the time turns waited for a lease another turn held.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"op", "outcome"})
	o.reg.MustRegister(db)
	c.Observe(func(op string, d time.Duration, err error) {
		db.WithLabelValues(op, outcome(err != nil)).Observe(d.Seconds())
	})
	counter := func(name, help string, f func() float64) {
		o.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge := func(name, help string, f func() float64) {
		o.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter("hermes_lease_waits_total", "Turns that waited for their conversation's lease while another turn (of any node) held it.",
		func() float64 { return float64(c.Stats().Waits) })
	counter("hermes_lease_losses_total", "Leases this node lost while holding them (it stalled past HERMES_LEASE_TTL and another node took over).",
		func() float64 { return float64(c.Stats().Losses) })
	gauge("hermes_leases_held", "Leases this node holds now.", func() float64 { return float64(c.Stats().Held) })
	gauge("hermes_database_up", "1 when the latest lease renewal reached the database, else 0.", func() float64 {
		if c.Stats().Healthy {
			return 1
		}
		return 0
	})
	gauge("hermes_database_latency_seconds", "Round trip of the latest lease renewal.", func() float64 { return c.Stats().Latency.Seconds() })
	pool := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hermes_database_pool_connections", Help: "Database connections of this node by state: acquired, idle, total, max."}, []string{"state"})
	o.reg.MustRegister(poolCollector{c, pool})
}

// poolCollector reads the pool's figures at scrape time.
type poolCollector struct {
	c   *postgres.Cluster
	vec *prometheus.GaugeVec
}

func (p poolCollector) Describe(ch chan<- *prometheus.Desc) { p.vec.Describe(ch) }

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := p.c.Stats()
	p.vec.WithLabelValues("acquired").Set(float64(st.PoolAcquired))
	p.vec.WithLabelValues("idle").Set(float64(st.PoolIdle))
	p.vec.WithLabelValues("total").Set(float64(st.PoolTotal))
	p.vec.WithLabelValues("max").Set(float64(st.PoolMax))
	p.vec.Collect(ch)
}
