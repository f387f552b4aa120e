//go:build !nochdb

package chdb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb"

	"github.com/gatehouse-dev/gatehouse/internal/audit/backendtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb/chdbtest"
	"github.com/gatehouse-dev/gatehouse/internal/procstat"
)

// TestBackend runs the backend conformance suite on the embedded engine.
func TestBackend(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Target {
		return backendtest.Target{Backend: chdbtest.Open(t, "")}
	})
}

func TestPersistReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lib := chdbtest.LibPath(t)
	b, err := chdb.Open(ctx, chdb.Options{LibPath: lib, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tg := backendtest.Target{Backend: b}
	backendtest.Migrate(t, tg)
	events := backendtest.Events("node-1", time.Now().Add(-time.Hour), 100, 0)
	if err := b.Insert(ctx, "audit_events", events, "persist"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Query(ctx, "SELECT 1", audit.QueryOptions{}); err == nil {
		t.Fatal("query on a closed backend succeeded")
	}

	b = chdbtest.Open(t, dir)
	tg.Backend = b
	if applied := backendtest.Migrate(t, tg); len(applied) != 0 {
		t.Errorf("migrate after reopen applied %v", applied)
	}
	res := backendtest.Query(t, b, "SELECT count(), max(seq) FROM audit_events")
	if want := []any{int64(100), int64(100)}; !reflect.DeepEqual(res.Rows[0], want) {
		t.Errorf("after reopen: %v, want %v", res.Rows[0], want)
	}
	// The token is remembered across a restart: a replay is still dropped.
	if err := b.Insert(ctx, "audit_events", events, "persist"); err != nil {
		t.Fatal(err)
	}
	if res := backendtest.Query(t, b, "SELECT count() FROM audit_events"); res.Rows[0][0] != int64(100) {
		t.Errorf("replay after reopen: %v rows, want 100", res.Rows[0][0])
	}
	if !strings.HasSuffix(b.Name(), dir) || !strings.HasPrefix(b.Name(), "chdb:") {
		t.Errorf("Name() = %q", b.Name())
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	lib := chdbtest.LibPath(t)
	missing := filepath.Join(t.TempDir(), "nowhere", "libchdb.so")
	_, err := chdb.Open(ctx, chdb.Options{LibPath: missing, DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "make chdb") {
		t.Errorf("missing library: %v", err)
	}
	t.Run("env", func(t *testing.T) {
		t.Setenv(chdb.EnvLib, missing)
		if _, err := chdb.Open(ctx, chdb.Options{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("missing library from $%s: %v", chdb.EnvLib, err)
		}
	})
	if _, err := chdb.Open(ctx, chdb.Options{LibPath: lib}); err == nil {
		t.Error("no data directory: no error")
	}

	chdbtest.Open(t, "")
	_, err = chdb.Open(ctx, chdb.Options{LibPath: lib, DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "already runs on") {
		t.Errorf("second data directory while open: %v", err)
	}
}

func TestErrors(t *testing.T) {
	b := chdbtest.Open(t, "")
	ctx := context.Background()
	_, err := b.Query(ctx, "SELEC 1", audit.QueryOptions{})
	var ce *chdb.Error
	if !errors.As(err, &ce) || ce.Name != "SYNTAX_ERROR" || ce.Code != 62 {
		t.Fatalf("syntax error: %#v (%v)", ce, err)
	}
	err = b.Exec(ctx, "SELECT throwIf(1, 'boom')")
	if !errors.As(err, &ce) || ce.Name != "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO" || strings.Contains(err.Error(), "Stack trace") {
		t.Fatalf("throwIf: %v", err)
	}
	if _, err := b.Query(ctx, "SELECT 1; SELECT 2", audit.QueryOptions{}); !errors.Is(err, chdb.ErrMultipleStatements) {
		t.Errorf("two statements: %v", err)
	}
	if _, err := b.Query(ctx, "SELECT 1 INTO OUTFILE '/tmp/gatehouse-x'", audit.QueryOptions{ReadOnly: true}); !errors.Is(err, chdb.ErrNotReadOnly) {
		t.Errorf("INTO OUTFILE: %v", err)
	}
	if err := b.Insert(ctx, "audit_events; DROP TABLE x", backendtest.Events("n", time.Now(), 1, 0), ""); err == nil {
		t.Error("insert into a bad table name succeeded")
	}
	if err := b.Insert(ctx, "missing", backendtest.Events("n", time.Now(), 1, 0), ""); err == nil || !strings.Contains(err.Error(), "UNKNOWN_TABLE") {
		t.Errorf("insert into a missing table: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Exec(cctx, "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestDeadlineBeforeTimer: a query stopped by max_execution_time taken
// from the context's deadline reports context.DeadlineExceeded, even when
// the context's timer has not fired by the time the engine answers, and
// even when the engine's clock calls the limit reached before Go's clock
// reaches the deadline (seen in CI: "elapsed 300.000 ms, maximum: 300 ms"
// with the deadline still ahead).
func TestDeadlineBeforeTimer(t *testing.T) {
	b := chdbtest.Open(t, "")
	ctx := backendtest.TimerlessDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := b.Query(ctx, "SELECT count() FROM numbers(100000000000) WHERE NOT ignore(sipHash64(number))", audit.QueryOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "TIMEOUT_EXCEEDED") {
		t.Fatalf("err = %v, want context.DeadlineExceeded with the engine's TIMEOUT_EXCEEDED", err)
	}
}

// TestConcurrent drives one backend from many goroutines: statements are
// serialized, none fails.
func TestConcurrent(t *testing.T) {
	b := chdbtest.Open(t, "")
	tg := backendtest.Target{Backend: b}
	backendtest.Migrate(t, tg)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	const goroutines, batches = 6, 4
	for g := range goroutines {
		wg.Go(func() {
			events := backendtest.Events(fmt.Sprintf("node-%d", g), time.Now().Add(-time.Hour), 50, 0)
			for i := range batches {
				if err := b.Insert(ctx, "audit_events", events, fmt.Sprintf("%d-%d", g, i)); err != nil {
					errs <- err
					return
				}
				if _, err := b.Query(ctx, "SELECT agent, count() FROM audit_events GROUP BY agent", audit.QueryOptions{ReadOnly: true, MaxRows: 100}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each goroutine inserted the same 50 events four times, with four
	// tokens: identical blocks with different tokens are all kept.
	if res := backendtest.Query(t, b, "SELECT count() FROM audit_events"); res.Rows[0][0] != int64(goroutines*batches*50) {
		t.Errorf("%v rows, want %d", res.Rows[0][0], goroutines*batches*50)
	}
}

// BenchmarkInsert inserts batches of events into audit_events, with its
// rollup view and the engine's background merges, and reports events/s and
// events per CPU-second of the whole process (which a busy machine
// distorts less). Events carry ≈150-byte arguments (≈1.1 KB of JSON each)
// or 2 KB ones.
func BenchmarkInsert(b *testing.B) {
	// The batch sizes are what a gateway serving ~1,000 calls/s ships with
	// --audit-batch-wait 1s and 10s; the per-event cost falls with size.
	for _, bc := range []struct {
		name            string
		argBytes, batch int
	}{{"args=150B/batch=10000", 0, 10_000}, {"args=2KB/batch=1000", 2048, 1000}, {"args=2KB/batch=10000", 2048, 10_000}} {
		b.Run(bc.name, func(b *testing.B) {
			benchInsert(b, bc.batch, bc.argBytes, func(be *chdb.Backend, events []audit.Event) func(ctx context.Context, token string) error {
				return func(ctx context.Context, token string) error {
					return be.Insert(ctx, "audit_events", events, token)
				}
			})
		})
	}
}

// BenchmarkInsertJSON: what the shipper does, events as the spool holds
// them (json.Marshal, RFC 3339 times).
func BenchmarkInsertJSON(b *testing.B) {
	benchInsert(b, 10_000, 1024, func(be *chdb.Backend, events []audit.Event) func(ctx context.Context, token string) error {
		rows := make([][]byte, len(events))
		for i := range events {
			rows[i], _ = json.Marshal(&events[i])
		}
		return func(ctx context.Context, token string) error {
			return be.InsertJSON(ctx, "audit_events", rows, token)
		}
	})
}

// benchInsert measures inserting batch events with argBytes of arguments,
// prepared once by prepare, into a fresh embedded engine.
func benchInsert(b *testing.B, batch, argBytes int, prepare func(*chdb.Backend, []audit.Event) func(ctx context.Context, token string) error) {
	be := chdbtest.Open(b, "")
	backendtest.Migrate(b, backendtest.Target{Backend: be})
	// 50,000 events a second: 10,000 span 200 ms, so the rollup
	// aggregates many events per minute and group, as under load.
	start := time.Now().Add(-time.Hour)
	events := backendtest.Events("node-1", start, batch, argBytes)
	for i := range events {
		events[i].Time = start.Add(time.Duration(i) * 20 * time.Microsecond)
	}
	insert := prepare(be, events)
	ctx := context.Background()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		if err := insert(ctx, fmt.Sprintf("bench-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N*batch)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadNices returns the nice value of each thread of this process, by
// thread id, split into the engine's threads and Go's (named like the
// process).
func threadNices(t *testing.T) (engine, gothreads map[string]int) {
	t.Helper()
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	engine, gothreads = map[string]int{}, map[string]int{}
	for _, task := range tasks {
		comm, err1 := os.ReadFile("/proc/self/task/" + task.Name() + "/comm")
		stat, err2 := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err1 != nil || err2 != nil {
			continue // exited
		}
		// Fields after the command name: nice is the 19th field of stat.
		fields, err := procstat.Fields(stat)
		if err != nil || len(fields) <= 19-3 {
			t.Fatalf("thread %s: stat %q: %v", task.Name(), stat, err)
		}
		nice, err := strconv.Atoi(fields[19-3])
		if err != nil {
			t.Fatalf("thread %s: stat %q: %v", task.Name(), stat, err)
		}
		name := task.Name() + " " + strings.TrimSpace(string(comm))
		if task.Name() == strconv.Itoa(os.Getpid()) && nice != 0 {
			// The main thread, if an engine call ran on it: a
			// goroutine locked to a thread ends the thread when it
			// ends, but the main thread cannot end, so the runtime
			// parks it for good (at the engine's priority; it runs
			// nothing more).
			continue
		}
		if bytes.Equal(comm, self) {
			gothreads[name] = nice
		} else {
			engine[name] = nice
		}
	}
	return engine, gothreads
}

// TestEngineNice: Open sets the engine's threads to Options.Nice, and
// the sweep before each insert catches the threads it starts later; Go's
// threads keep the process's priority.
func TestEngineNice(t *testing.T) {
	ctx := context.Background()
	lib := chdbtest.LibPath(t)
	for _, bad := range []int{-1, 20} {
		if _, err := chdb.Open(ctx, chdb.Options{LibPath: lib, DataDir: t.TempDir(), Nice: bad}); err == nil || !strings.Contains(err.Error(), "nice") {
			t.Errorf("Open with Nice %d: %v, want an error about nice", bad, err)
		}
	}
	b, err := chdb.Open(ctx, chdb.Options{LibPath: lib, DataDir: t.TempDir(), Nice: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := checkNices(t, "after Open", 7); n == 0 {
		t.Fatal("no engine threads found after Open")
	}

	backendtest.Migrate(t, backendtest.Target{Backend: b})
	if err := b.Insert(ctx, "audit_events", backendtest.Events("node-1", time.Now(), 1000, 0), "nice"); err != nil {
		t.Fatal(err)
	}
	if n, err := chdb.LowerEnginePriority(7); err != nil || n == 0 {
		t.Fatalf("LowerEnginePriority = %d, %v; want some threads", n, err)
	}
	checkNices(t, "after inserts", 7)
}

// checkNices fails the test unless every engine thread is at nice and
// every Go thread at 0, and, where the kernel takes a time slice per thread
// (Linux 6.12 and later), unless every engine thread has chdb.EngineSlice
// and no Go thread has it; it returns the number of engine threads. A
// thread an insert ran on (see TestOnEngineThread) ends just after the
// insert returns, so the check is retried for a while before it fails.
func checkNices(t *testing.T, when string, nice int) int {
	t.Helper()
	slices := slicesSupported()
	if !slices {
		t.Logf("%s: this kernel reports no time slices (before Linux 6.12): not checked", when)
	}
	var engines int
	settles(t, when, func() (problems []string) {
		engine, gothreads := threadNices(t)
		engines = len(engine)
		for name, n := range engine {
			if n != nice {
				problems = append(problems, fmt.Sprintf("engine thread %s at nice %d, want %d", name, n, nice))
			}
			if s, ok := threadSlice(name); slices && ok && s != chdb.EngineSlice {
				problems = append(problems, fmt.Sprintf("engine thread %s has a time slice of %d ns, want %d", name, s, chdb.EngineSlice))
			}
		}
		for name, n := range gothreads {
			if n != 0 {
				problems = append(problems, fmt.Sprintf("Go thread %s at nice %d, want 0", name, n))
			}
			if s, ok := threadSlice(name); slices && ok && s == chdb.EngineSlice {
				problems = append(problems, fmt.Sprintf("Go thread %s has the engine's time slice", name))
			}
		}
		return problems
	})
	return engines
}

// settles retries check for up to 2 s until it finds no problems, and
// fails the test with the last ones it found.
func settles(t *testing.T, when string, check func() []string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		problems := check()
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Errorf("%s: %s", when, p)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOnEngineThread: engine calls run on a thread of their own at the
// engine's nice value and time slice, with one more P than the process
// had, however many run at once; afterwards GOMAXPROCS is what it was.
func TestOnEngineThread(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	type seen struct {
		procs, nice int
		slice       uint64
	}
	var mu sync.Mutex
	var got []seen
	inside := make(chan struct{})
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := chdb.OnEngineThread(7, func() error {
				stat, err := os.ReadFile("/proc/thread-self/stat")
				if err != nil {
					return err
				}
				fields, err := procstat.Fields(stat)
				if err != nil || len(fields) <= 19-3 {
					return fmt.Errorf("stat %q: %v", stat, err)
				}
				nice, err := strconv.Atoi(fields[19-3])
				if err != nil {
					return err
				}
				var slice uint64
				if a, err := unix.SchedGetAttr(0, 0); err == nil {
					slice = a.Runtime
				}
				mu.Lock()
				got = append(got, seen{runtime.GOMAXPROCS(0), nice, slice})
				mu.Unlock()
				inside <- struct{}{}
				<-release
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	<-inside
	<-inside
	close(release)
	wg.Wait()
	for _, g := range got {
		if g.procs != before+1 {
			t.Errorf("GOMAXPROCS during an engine call = %d, want %d", g.procs, before+1)
		}
		if g.nice != 7 {
			t.Errorf("engine call at nice %d, want 7", g.nice)
		}
		if slicesSupported() && g.slice != chdb.EngineSlice {
			t.Errorf("engine call with a time slice of %d ns, want %d", g.slice, chdb.EngineSlice)
		}
	}
	if n := runtime.GOMAXPROCS(0); n != before {
		t.Errorf("GOMAXPROCS after the engine calls = %d, want %d", n, before)
	}
	if err := chdb.OnEngineThread(7, func() error { return errors.New("boom") }); err == nil || err.Error() != "boom" {
		t.Errorf("OnEngineThread error = %v, want f's", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "bang" {
				t.Errorf("recovered %v from OnEngineThread, want f's panic", r)
			}
		}()
		_ = chdb.OnEngineThread(7, func() error { panic("bang") })
	}()
	if n := runtime.GOMAXPROCS(0); n != before {
		t.Errorf("GOMAXPROCS after a panicking engine call = %d, want %d", n, before)
	}
	// The threads end with their goroutines: no Go thread stays at nice 7.
	settles(t, "after the engine calls", func() (niced []string) {
		_, gothreads := threadNices(t)
		for name, n := range gothreads {
			if n != 0 {
				niced = append(niced, fmt.Sprintf("Go thread %s left at nice %d", name, n))
			}
		}
		return niced
	})
}

// slicesSupported reports whether the kernel reports a fair thread's time
// slice (sched_attr.sched_runtime, Linux 6.12 and later).
func slicesSupported() bool {
	a, err := unix.SchedGetAttr(0, 0)
	return err == nil && a.Runtime != 0
}

// threadSlice returns the time slice of the thread named by threadNices
// ("tid comm"), false if it exited.
func threadSlice(name string) (uint64, bool) {
	tid, err := strconv.Atoi(name[:strings.IndexByte(name, ' ')])
	if err != nil {
		return 0, false
	}
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, false
	}
	return a.Runtime, true
}

// TestEngineCPU: the engine's CPU time grows with an insert and never
// falls between reads, at the gateway's priority and at a lower one.
func TestEngineCPU(t *testing.T) {
	for _, nice := range []int{0, 7} {
		t.Run(fmt.Sprintf("nice=%d", nice), func(t *testing.T) {
			ctx := context.Background()
			b, err := chdb.Open(ctx, chdb.Options{LibPath: chdbtest.LibPath(t), DataDir: t.TempDir(), Nice: nice})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			backendtest.Migrate(t, backendtest.Target{Backend: b})
			before := b.EngineCPU()
			if err := b.Insert(ctx, "audit_events", backendtest.Events("node-1", time.Now(), 5000, 512), "cpu"); err != nil {
				t.Fatal(err)
			}
			after := b.EngineCPU()
			t.Logf("engine CPU for an insert of 5,000 events: %v", after-before)
			if after <= before {
				t.Errorf("EngineCPU %v before an insert of 5,000 events, %v after", before, after)
			}
			for range 20 {
				if now := b.EngineCPU(); now < after {
					t.Fatalf("EngineCPU fell from %v to %v", after, now)
				} else {
					after = now
				}
			}
		})
	}
}

// TestEngineCPUOfARunningCall: a call into the engine counts while it
// runs, not only when it ends (an insert can take seconds).
func TestEngineCPUOfARunningCall(t *testing.T) {
	b := chdbtest.Open(t, "")
	before := b.EngineCPU()
	spun, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- chdb.OnEngineThread(0, func() error {
			start, err := selfTicks()
			for n := start; err == nil && n < start+20; n, err = selfTicks() { // 200 ms of CPU
			}
			close(spun)
			<-release
			return err
		})
	}()
	<-spun
	if got := b.EngineCPU() - before; got < 200*time.Millisecond {
		t.Errorf("EngineCPU grew by %v during a call that has used 200 ms so far", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// selfTicks is the calling thread's CPU time in clock ticks.
func selfTicks() (int64, error) {
	stat, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		return 0, err
	}
	return procstat.CPUTicks(stat)
}
