package approval

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus series; labels are bounded by
// configuration (virtual servers, approval rules).
type metrics struct {
	held   *prometheus.CounterVec
	closed *prometheus.CounterVec
	wait   *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_approvals_held_total",
			Help: "Tool calls held for approval, by virtual server and approval rule.",
		}, []string{"vs", "rule"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_approvals_closed_total",
			Help: "Approvals that reached a final state (approved, denied, timed_out, cancelled, failed), by rule; counted by the worker that ran them.",
		}, []string{"rule", "state"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_approval_decision_seconds",
			Help:    "Time from holding a call to its verdict (quorum, denial, timeout), by rule.",
			Buckets: []float64{.05, .1, .5, 1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}, []string{"rule"}),
	}
}

// Collectors are the service's Prometheus collectors, for the gateway's
// /metrics (proxy.Gateway.RegisterMetrics).
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.held, s.metrics.closed, s.metrics.wait}
}
