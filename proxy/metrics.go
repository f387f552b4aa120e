package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series. Labels are bounded by
// configuration (virtual servers, upstreams, MCP methods), never by agent
// input.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	sessions   *prometheus.GaugeVec
	upstreamUp *prometheus.GaugeVec
	revision   prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_total",
			Help: "Agent requests by virtual server, method and outcome (ok, error, denied, unavailable, timeout).",
		}, []string{"vs", "method", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_request_duration_seconds",
			Help:    "Agent request latency through the gateway.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"vs", "method"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_sessions",
			Help: "Live agent sessions by virtual server, from their initialize to their end (limits.max_sessions caps their sum).",
		}, []string{"vs"}),
		upstreamUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_upstream_up",
			Help: "1 if the upstream's control session is ready, else 0.",
		}, []string{"upstream"}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_revision",
			Help: "Revision of the configuration snapshot in force.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.sessions, m.upstreamUp, m.revision,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// knownMethods bounds the method label: anything else is "other".
var knownMethods = map[string]bool{
	"initialize": true, "ping": true, "tools/list": true, "tools/call": true,
	"resources/list": true, "resources/read": true, "resources/templates/list": true,
	"resources/subscribe": true, "resources/unsubscribe": true, "prompts/list": true,
	"prompts/get": true, "completion/complete": true, "logging/setLevel": true,
	"notifications/initialized": true, "notifications/cancelled": true,
	"notifications/progress": true, "notifications/roots/list_changed": true,
	"server/discover": true, "subscriptions/listen": true,
}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}

// RegisterMetrics adds cs to the gateway's /metrics (e.g. the approval
// service's series).
func (g *Gateway) RegisterMetrics(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := g.metrics.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
