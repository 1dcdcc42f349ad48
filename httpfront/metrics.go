package httpfront

import (
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Metrics is hermesd's Prometheus registry: HTTP requests here, the rest
// registered by whoever owns the number (runtime gauges, store, upstream,
// tools) through Registry.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	serve    fasthttp.RequestHandler
}

// NewMetrics returns a registry with Go and process collectors and the
// HTTP request metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hermes_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hermes_http_request_duration_seconds", Help: "HTTP request latency by route (streams: until the handler returns).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	m.serve = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

func (m *Metrics) handler(ctx *fasthttp.RequestCtx) { m.serve(ctx) }

// observe records one request under its route pattern, not its raw path,
// so ids in paths cannot blow up the label set.
func (m *Metrics) observe(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func routeLabel(ctx *fasthttp.RequestCtx) string {
	if p, ok := ctx.UserValue(router.MatchedRoutePathParam).(string); ok {
		return string(ctx.Method()) + " " + p
	}
	return "other"
}
