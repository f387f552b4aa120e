package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb/chdbtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/spool"
	"github.com/gatehouse-dev/gatehouse/internal/audit/spool/spooltest"
)

// flaky is a backend that fails while down is set, to play a ClickHouse
// outage in front of a real one.
type flaky struct {
	audit.Backend
	mu      sync.Mutex
	down    bool
	inserts int
}

func (f *flaky) setDown(d bool) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
}

func (f *flaky) Insert(ctx context.Context, table string, events []audit.Event, token string) error {
	f.mu.Lock()
	down := f.down
	f.inserts++
	f.mu.Unlock()
	if down {
		return fmt.Errorf("%w: connection refused (test)", audit.ErrUnavailable)
	}
	return f.Backend.Insert(ctx, table, events, token)
}

func openWriter(t *testing.T, dir string, b audit.Backend, so spool.Options) *audit.Writer {
	t.Helper()
	w, err := audit.OpenWriter(context.Background(), audit.WriterOptions{
		Dir: dir, Node: "gw1", Spool: so, Backend: b,
		Migrate:   migrate,
		BatchSize: 500, BatchWait: 50 * time.Millisecond, CheckpointEvery: 200,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func count(t *testing.T, b audit.Backend, q string) int {
	t.Helper()
	res, err := b.Query(context.Background(), q, audit.QueryOptions{})
	if err != nil && strings.Contains(err.Error(), "UNKNOWN_TABLE") {
		return 0 // not migrated yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(fmt.Sprint(res.Rows[0][0]), &n)
	return n
}

func waitShipped(t *testing.T, b audit.Backend, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := count(t, b, "SELECT count() FROM audit_events")
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events shipped, want %d", n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func record(t *testing.T, w *audit.Writer, from, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + g; i < from+n; i += 4 {
				e := &audit.Event{Time: time.Now(), Kind: audit.KindRequest, Agent: fmt.Sprintf("agent-%d", i%3),
					Method: "tools/call", Target: "echo", RequestID: fmt.Sprintf("r%d", i), Outcome: audit.OutcomeOK,
					Arguments: fmt.Sprintf(`{"i":%d}`, i), Findings: []audit.Finding{{Detector: "pii", Kind: "email", Path: "args.x", Action: "redact", Start: 1, End: 9}}}
				if err := w.Record(e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestWriterShipsEverythingOnce: events recorded by concurrent callers
// reach the embedded engine exactly once each, through a backend outage
// and a restart of the writer, and the chain verifies; tampering with the
// stored events is detected.
func TestWriterShipsEverythingOnce(t *testing.T) {
	dir := t.TempDir()
	real := chdbtest.Open(t, filepath.Join(dir, "chdb"))
	b := &flaky{Backend: real}
	w := openWriter(t, filepath.Join(dir, "audit"), b, spool.Options{})
	record(t, w, 0, 1000)
	waitShipped(t, b, 1000)

	// ClickHouse down: events keep being accepted into the spool.
	b.setDown(true)
	record(t, w, 1000, 1000)
	time.Sleep(200 * time.Millisecond)
	if n := count(t, b, "SELECT count() FROM audit_events"); n != 1000 {
		t.Fatalf("%d events while the backend was down", n)
	}
	if st := w.Status(); !strings.HasPrefix(st, "shipping failed") {
		t.Errorf("Status while down = %q", st)
	}
	// Restart the writer while the backend is down: the spool survives.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, filepath.Join(dir, "audit"), b, spool.Options{})
	defer w.Close()
	record(t, w, 2000, 500)
	b.setDown(false)
	waitShipped(t, b, 2500)
	if n := count(t, b, "SELECT count(DISTINCT request_id) FROM audit_events"); n != 2500 {
		t.Errorf("%d distinct requests, want 2500", n)
	}
	if st := w.Status(); st != "ok" {
		t.Errorf("Status after recovery = %q", st)
	}

	rep, err := audit.Verify(context.Background(), real, audit.Tables{}, "gw1", w.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Events != 2500 || rep.LastSeq != 2500 || rep.Checkpoints == 0 {
		t.Fatalf("verify: %+v", rep)
	}

	// Tampering: one event deleted, another modified.
	ctx := context.Background()
	for _, stmt := range []string{
		"ALTER TABLE audit_events DELETE WHERE seq = 100 SETTINGS mutations_sync = 2",
		"ALTER TABLE audit_events UPDATE arguments = '{\"i\":\"forged\"}' WHERE seq = 2000 SETTINGS mutations_sync = 2",
	} {
		if err := real.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = audit.Verify(ctx, real, audit.Tables{}, "gw1", w.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[uint64]string{}
	for _, p := range rep.Problems {
		kinds[p.Seq] = p.Kind
	}
	if kinds[101] != "gap" || kinds[2000] != "modified" {
		t.Errorf("tampering not detected: %+v", rep.Problems)
	}
}

// TestWriterRetriesTheBatchItRead: a batch whose insert failed goes again,
// as read, once the backend is back, without a restart; nothing is lost
// or shipped twice.
func TestWriterRetriesTheBatchItRead(t *testing.T) {
	dir := t.TempDir()
	b := &flaky{Backend: chdbtest.Open(t, filepath.Join(dir, "chdb")), down: true}
	w := openWriter(t, filepath.Join(dir, "audit"), b, spool.Options{})
	defer w.Close()
	record(t, w, 0, 300)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.mu.Lock()
		n := b.inserts
		b.mu.Unlock()
		if n >= 2 {
			break // one failed insert and one failed retry at least
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d insert attempts while the backend was down, want 2 or more", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	record(t, w, 300, 200)
	b.setDown(false)
	waitShipped(t, b, 500)
	if n := count(t, b, "SELECT count(DISTINCT request_id) FROM audit_events"); n != 500 {
		t.Errorf("%d distinct requests, want 500", n)
	}
}

func TestWriterRefusesAtBudget(t *testing.T) {
	dir := t.TempDir()
	b := &flaky{Backend: chdbtest.Open(t, filepath.Join(dir, "chdb")), down: true}
	w := openWriter(t, filepath.Join(dir, "audit"), b, spool.Options{BudgetBytes: 20 << 10})
	defer w.Close()
	var err error
	n := 0
	for ; n < 1000 && err == nil; n++ {
		err = w.Record(&audit.Event{Time: time.Now(), Kind: audit.KindRequest, Arguments: strings.Repeat("x", 500)})
	}
	if err == nil || !strings.Contains(err.Error(), "audit spool full") {
		t.Fatalf("after %d events: err %v", n, err)
	}
	if st := w.Status(); st == "ok" {
		t.Errorf("Status = %q at the budget", st)
	}
	// Once the backend takes the events, the spool drains and calls go on;
	// the refused event never entered the chain.
	b.setDown(false)
	waitShipped(t, b, n-1)
	deadline := time.Now().Add(10 * time.Second)
	for w.Admit() != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := w.Record(&audit.Event{Time: time.Now(), Kind: audit.KindRequest}); err != nil {
		t.Fatalf("after draining: %v", err)
	}
	waitShipped(t, b, n)
	rep, err := audit.Verify(context.Background(), b.Backend, audit.Tables{}, "gw1", w.PublicKey())
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestWriterShipsWithLongFsyncInterval: the shipper reads only what the
// background fsync made durable while a batch fills, but once the batch
// wait is over it ships everything recorded, even when the next fsync is
// an hour away.
func TestWriterShipsWithLongFsyncInterval(t *testing.T) {
	dir := t.TempDir()
	b := chdbtest.Open(t, filepath.Join(dir, "chdb"))
	w := openWriter(t, filepath.Join(dir, "audit"), b, spool.Options{Fsync: spool.FsyncInterval, FsyncInterval: time.Hour})
	record(t, w, 0, 300)
	waitShipped(t, b, 300)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriterRecoversFromFullDisk: the audit directory's disk fills while
// ClickHouse is down. Records fail and the writer refuses; once
// ClickHouse is back, the shipper ships and its commits free the shipped
// segments (the spool's reserve gave it room to commit), and the writer
// takes records again without a restart. The hash chain was rewound past
// the events that failed: the stored chain verifies, without a gap, and
// holds each acknowledged event once.
func TestWriterRecoversFromFullDisk(t *testing.T) {
	dir := t.TempDir()
	b := &flaky{Backend: chdbtest.Open(t, filepath.Join(dir, "chdb")), down: true}
	fs := spooltest.SmallFS(t, 8<<20)
	w := openWriter(t, filepath.Join(fs, "audit"), b, spool.Options{SegmentBytes: 512 << 10, BudgetBytes: -1, RetryInterval: 20 * time.Millisecond})
	defer w.Close()

	event := func(g, i int) *audit.Event {
		return &audit.Event{Time: time.Now(), Kind: audit.KindRequest, Method: "tools/call", Target: "echo",
			RequestID: fmt.Sprintf("g%d-r%d", g, i), Outcome: audit.OutcomeOK, Arguments: strings.Repeat("a", 400)}
	}
	const writers = 4
	failedAt := make([]int, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				if err := w.Record(event(g, i)); err != nil {
					if !strings.Contains(err.Error(), "audit spool") {
						t.Errorf("writer %d: %v", g, err)
					}
					failedAt[g] = i
					return
				}
			}
		})
	}
	wg.Wait()
	if st := w.Status(); !strings.HasPrefix(st, "refusing: ") || !strings.Contains(st, "no space left on device") {
		t.Fatalf("Status on a full disk = %q", st)
	}
	acked := 0
	for _, n := range failedAt {
		acked += n
	}

	b.setDown(false)
	waitShipped(t, b, acked)
	deadline := time.Now().Add(20 * time.Second)
	for w.Admit() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not taking records 20 s after the shipper freed the disk: %v", w.Admit())
		}
		time.Sleep(10 * time.Millisecond)
	}
	const more = 100
	for g := range writers {
		for i := failedAt[g]; i < failedAt[g]+more; i++ { // the failed one again, and on
			if err := w.Record(event(g, i)); err != nil {
				t.Fatalf("writer %d, event %d after recovery: %v", g, i, err)
			}
		}
	}
	total := acked + writers*more
	waitShipped(t, b, total)
	if n := count(t, b, "SELECT count(DISTINCT request_id) FROM audit_events"); n != total {
		t.Errorf("%d distinct requests, want %d", n, total)
	}
	if st := w.Stats().Spool; st.Recoveries != 1 || st.Discarded == 0 {
		t.Errorf("spool stats: %d recoveries, %d discarded", st.Recoveries, st.Discarded)
	}
	rep, err := audit.Verify(context.Background(), b.Backend, audit.Tables{}, "gw1", w.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Events != uint64(total) || rep.LastSeq != uint64(total) {
		t.Fatalf("verify: %+v (want %d events, no problems)", rep, total)
	}
}
