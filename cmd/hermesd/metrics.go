package main

import (
	"time"

	"github.com/hermesd/hermesd/actors"
	"github.com/prometheus/client_golang/prometheus"
)

// observers feeds the runtime's, store's, model's and tools' numbers into
// the Prometheus registry that GET /metrics serves.
type observers struct {
	reg      *prometheus.Registry
	upstream *prometheus.HistogramVec
	tools    *prometheus.HistogramVec
	batches  *prometheus.HistogramVec
	commits  *prometheus.HistogramVec
	// fallbacks counts model calls moved to a fallback model.
	fallbacks *prometheus.CounterVec
}

func newObservers(reg *prometheus.Registry) *observers {
	o := &observers{
		reg: reg,
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hermes_model_call_duration_seconds", Help: "Model calls by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"outcome"}),
		tools: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hermes_tool_run_duration_seconds", Help: "Agent tool runs by tool and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"tool", "outcome"}),
		batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hermes_store_commit_turns", Help: "Turns grouped into one store commit (one fsync), by outcome.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}, []string{"outcome"}),
	}
	o.commits = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hermes_store_commit_duration_seconds", Help: "Store commit latency (fsync included), by outcome.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"outcome"})
	o.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hermes_model_fallbacks_total", Help: "Model calls that failed before their first token and went to a fallback model, by model and fallback.",
	}, []string{"model", "fallback"})
	reg.MustRegister(o.upstream, o.tools, o.batches, o.commits, o.fallbacks)
	return o
}

func outcome(failed bool) string {
	if failed {
		return "error"
	}
	return "ok"
}

func (o *observers) modelCall(d time.Duration, err error) {
	o.upstream.WithLabelValues(outcome(err != nil)).Observe(d.Seconds())
}

func (o *observers) fallback(from, to string) {
	o.fallbacks.WithLabelValues(from, to).Inc()
}

func (o *observers) tool(name string, failed bool, d time.Duration) {
	o.tools.WithLabelValues(name, outcome(failed)).Observe(d.Seconds())
}

func (o *observers) batch(turns int, d time.Duration, err error) {
	o.batches.WithLabelValues(outcome(err != nil)).Observe(float64(turns))
	o.commits.WithLabelValues(outcome(err != nil)).Observe(d.Seconds())
}

// gauges reads the runtime and the store at scrape time.
func (o *observers) gauges(rt *actors.Runtime, store actors.Store) {
	gauge := func(name, help string, f func() float64) {
		o.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("hermes_turns_admitted", "Turns admitted and not finished (running or queued).", func() float64 { return float64(rt.Stats().Admitted) })
	gauge("hermes_turns_running", "Turns running now.", func() float64 { return float64(rt.Stats().Running) })
	gauge("hermes_conversation_actors", "Conversation actors alive.", func() float64 { return float64(rt.Stats().Actors) })
	gauge("hermes_idempotency_waiting", "Requests waiting for an earlier request with the same Idempotency-Key to finish.",
		func() float64 { return float64(rt.FlightWaiters()) })
	gauge("hermes_stored_responses", "Responses in the store.", func() float64 { return float64(store.Len()) })
}
