package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb/chdbtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
	"github.com/gatehouse-dev/gatehouse/internal/audit/spool"
)

// BenchmarkWriterIngest is the audit trail's sustained ingest: events
// recorded by parallel callers (sealed, spooled with fsync interval) and
// shipped into the embedded engine, timed until the last one is in
// ClickHouse. events/s is the end-to-end rate; record-ns is what Record
// costs a caller (the part an acknowledged call waits for).
func BenchmarkWriterIngest(b *testing.B) {
	dir := b.TempDir()
	be := chdbtest.Open(b, filepath.Join(dir, "chdb"))
	w, err := audit.OpenWriter(context.Background(), audit.WriterOptions{Dir: filepath.Join(dir, "audit"), Node: "bench", Backend: be,
		Spool: spool.Options{}, Migrate: migrate, BatchWait: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	// The engine's first insert is slow (seconds on a slow host); timed,
	// it would keep b.N at 1 and the rate would be that of one event.
	if err := w.Record(benchEvent(0)); err != nil {
		b.Fatal(err)
	}
	waitWriterShipped(b, w, 1)
	base := w.Stats().Shipped
	b.ReportAllocs()
	b.ResetTimer()
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		var mine []time.Duration
		defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
		for pb.Next() {
			i++
			e := benchEvent(i)
			t0 := time.Now()
			if err := w.Record(e); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
	})
	recorded := time.Since(start)
	waitWriterShipped(b, w, base+uint64(b.N))
	total := time.Since(start)
	b.ReportMetric(float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(recorded.Nanoseconds())/float64(b.N), "record-ns")
	// What an acknowledged call waits for: Record's own latency.
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		b.ReportMetric(float64(lat[n/2].Microseconds()), "record-p50-µs")
		b.ReportMetric(float64(lat[n*99/100].Microseconds()), "record-p99-µs")
	}
}

func benchEvent(i int) *audit.Event {
	return &audit.Event{Time: time.Now(), Kind: audit.KindRequest, Agent: "agent-1", Team: "dev", VirtualServer: "ops",
		Upstream: "alpha", Method: "tools/call", Target: "echo", Decision: "allow", Outcome: audit.OutcomeOK,
		RequestID: fmt.Sprint(i), Arguments: `{"text":"a realistic argument of some length, say one hundred and twenty bytes of text...."}`,
		Grants: []string{"ops-all"}, TotalUs: 850, UpstreamUs: 600}
}

// waitWriterShipped waits until the writer has shipped n events, and fails the
// benchmark with the writer's last error if that takes over two minutes.
func waitWriterShipped(b *testing.B, w *audit.Writer, n uint64) {
	b.Helper()
	for deadline := time.Now().Add(2 * time.Minute); w.Stats().Shipped < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			st := w.Stats()
			b.Fatalf("%d of %d events shipped after 2 minutes (%d shipping errors, last: %q)", st.Shipped, n, st.ShipErrors, st.LastError)
		}
	}
}

func migrate(ctx context.Context, b audit.Backend) error {
	_, err := chschema.Migrate(ctx, b, chschema.Options{})
	return err
}
