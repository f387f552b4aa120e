//go:build !nochdb

package chdb

import (
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatehouse-dev/gatehouse/internal/procstat"
)

// The engine's CPU time, for [Backend.EngineCPU]: it runs in the
// gateway's process, so the process's CPU time includes it and nothing
// else tells it apart. Both parts are in clock ticks ([procstat.ClockTicks]).
var (
	// calls follows the threads that call into the engine, while they do
	// (an insert's parsing and part writing run there): done is what
	// finished calls used, running maps a calling thread to its CPU time
	// when its call began, so that a long insert counts as it goes.
	calls struct {
		sync.Mutex
		done    int64
		running map[int]int64
	}
	// ownCPU follows the engine's own threads (its pools: the views,
	// merges, parallel work).
	ownCPU threadTimes
)

// EngineCPU is the CPU time the embedded engine of this process has used:
// on the threads that called it (inserts, statements, queries) and on its
// own threads, to the 10 ms of /proc's clock. The CPU an engine thread
// uses after the last reading and before it exits is not counted; the
// engine's pool threads live long.
func (b *Backend) EngineCPU() time.Duration {
	calls.Lock()
	ticks := calls.done
	for tid, start := range calls.running {
		if n, ok := threadTicks(tid); ok && n > start {
			ticks += n - start
		}
	}
	calls.Unlock()
	return procstat.Duration(ticks) + ownCPU.read()
}

// counted runs f, a sequence of calls into the engine on a thread locked
// for it (see [onEngineThread]), counting the thread's CPU time meanwhile
// as the engine's.
func counted(f func() error) error {
	tid := unix.Gettid()
	start, _ := threadTicks(tid)
	calls.Lock()
	if calls.running == nil {
		calls.running = map[int]int64{}
	}
	calls.running[tid] = start
	calls.Unlock()
	defer func() {
		end, _ := threadTicks(tid)
		calls.Lock()
		delete(calls.running, tid)
		calls.done += max(0, end-start)
		calls.Unlock()
	}()
	return f()
}

// threadTicks is thread tid's CPU time (of this process) in clock ticks.
func threadTicks(tid int) (int64, bool) {
	return taskTicks("/proc/self/task/" + strconv.Itoa(tid))
}

// taskTicks is the CPU time in clock ticks of the thread whose /proc
// directory is dir.
func taskTicks(dir string) (int64, bool) {
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, false
	}
	n, err := procstat.CPUTicks(stat)
	return n, err == nil
}

// threadTimes sums the CPU time of the engine's threads across reads, so
// that the sum only grows though threads come and go: each read adds what
// every live thread used since the read before (all of it for a new
// thread).
type threadTimes struct {
	mu    sync.Mutex
	last  map[int]int64 // ticks per thread at the last read
	ticks int64
}

func (t *threadTimes) read() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[int]int64, len(t.last))
	_ = engineThreads(func(tid int, dir string) {
		n, ok := taskTicks(dir)
		if !ok {
			return
		}
		seen[tid] = n
		if prev, ok := t.last[tid]; ok && prev <= n {
			t.ticks += n - prev
		} else if !ok {
			t.ticks += n
		}
	})
	t.last = seen
	return procstat.Duration(t.ticks)
}
