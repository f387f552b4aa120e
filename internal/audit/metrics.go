package audit

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Status says how the audit trail is doing, for /readyz: "ok", "refusing:
// …" (the spool is at its budget and new calls are refused), or "shipping
// failed: …" (events wait in the spool; they ship when the backend is
// back).
func (w *Writer) Status() string {
	if err := w.Admit(); err != nil {
		return "refusing: " + err.Error()
	}
	st := w.Stats()
	if t := w.refusedAt.Load(); t != 0 && time.Since(time.Unix(0, t)) < 5*time.Second {
		return fmt.Sprintf("refusing: audit spool full (%d of %d bytes waiting to ship)", st.Spool.UnshippedBytes, st.Spool.BudgetBytes)
	}
	if st.LastError != "" {
		return fmt.Sprintf("shipping failed: %s (%d bytes waiting in the spool)", st.LastError, st.Spool.UnshippedBytes)
	}
	return "ok"
}

// Collectors are the writer's Prometheus metrics.
func (w *Writer) Collectors() []prometheus.Collector {
	stat := func(f func(WriterStats) float64) func() float64 { return func() float64 { return f(w.Stats()) } }
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_events_total", Help: "Audit events appended to the spool."},
			stat(func(s WriterStats) float64 { return float64(s.Spool.Appended) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_shipped_total", Help: "Audit events shipped to ClickHouse."},
			stat(func(s WriterStats) float64 { return float64(s.Shipped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_dropped_total", Help: "Audit events DROPPED at the spool budget (--audit-on-full drop)."},
			stat(func(s WriterStats) float64 { return float64(s.Spool.Dropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_refused_total", Help: "Requests refused because the audit spool was at its budget."},
			stat(func(s WriterStats) float64 { return float64(s.Spool.Refused) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_ship_errors_total", Help: "Failed attempts to ship audit events."},
			stat(func(s WriterStats) float64 { return float64(s.ShipErrors) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_spool_recoveries_total", Help: "Recoveries of the audit spool from a write failure (a full disk) without a restart."},
			stat(func(s WriterStats) float64 { return float64(s.Spool.Recoveries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_audit_spool_unshipped_bytes", Help: "Audit spool bytes not yet shipped."},
			stat(func(s WriterStats) float64 { return float64(s.Spool.UnshippedBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_audit_spool_budget_bytes", Help: "Audit spool disk budget (0: unlimited)."},
			stat(func(s WriterStats) float64 { return float64(s.Spool.BudgetBytes) })),
	}
	if r, ok := w.o.Backend.(EngineCPUReporter); ok {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_audit_engine_cpu_seconds_total",
			Help: "CPU time the embedded audit engine has used, part of the process's CPU time: its inserts, statements and queries, and its own threads (a lower bound: an engine thread's time after its last reading is lost when it exits)."},
			func() float64 { return r.EngineCPU().Seconds() }))
	}
	return cs
}
