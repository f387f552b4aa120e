//go:build !nochdb

package chdb

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// EngineSlice is the scheduler time slice asked for the engine's threads
// along with their nice value: 100 µs, the shortest Linux grants (6.12 and
// later, EEVDF's sched_attr.sched_runtime; older kernels ignore it). A
// thread keeps the core for at least its slice before a waking thread may
// take it back (the default slice is 0.75–3 ms by core count), so with the
// default an insert or a merge that got the core in an idle moment held
// the calls that arrived meanwhile for up to a whole slice, however low
// its nice value. Shorter slices do not change the engine's share of the
// core, only how finely it is cut.
const EngineSlice = 100_000 // nanoseconds

// lowerEnginePriority sets nice, and the [EngineSlice], on every thread of
// this process that the engine started ([engineThreads]). A thread the
// engine starts later from one of them inherits both; the next call
// catches any other. It returns how many threads it set.
func lowerEnginePriority(nice int) (int, error) {
	if nice <= 0 {
		return 0, nil
	}
	n := 0
	err := engineThreads(func(tid int, _ string) {
		if lowerThread(tid, nice) == nil {
			n++
		}
	})
	if err != nil {
		return 0, fmt.Errorf("lowering the embedded engine's priority: %w", err)
	}
	return n, nil
}

// engineThreads calls f with the ID and /proc directory of every thread
// of this process that the engine started: those whose name differs from
// the main thread's (Go's threads all keep the process's name; the engine
// names its own, e.g. ThreadPool, BgSchPool). A thread that exits
// meanwhile is skipped.
func engineThreads(f func(tid int, dir string)) error {
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		return err
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		dir := "/proc/self/task/" + t.Name()
		comm, err := os.ReadFile(dir + "/comm")
		if err != nil || bytes.Equal(comm, self) {
			continue
		}
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			f(tid, dir)
		}
	}
	return nil
}

// lowerThread makes thread tid an ordinary (SCHED_OTHER) thread at nice
// with the EngineSlice, with sched_setattr(2), or, where that fails, sets
// only its nice value. No privilege is needed to raise one's own threads'
// nice value or to ask for a slice.
func lowerThread(tid, nice int) error {
	a := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL, Nice: int32(nice), Runtime: EngineSlice}
	if unix.SchedSetAttr(tid, &a, 0) == nil {
		return nil
	}
	return syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
}

// onEngineThread runs f, a sequence of calls into the engine, on an OS
// thread of its own at nice (and EngineSlice), with a spare P (see
// withSpareP), and returns f's error. The thread's CPU time meanwhile
// counts as the engine's ([Backend.EngineCPU]).
//
// The engine does part of an insert's work on the thread that calls it
// (up to 0.6 s of CPU for a batch of 12,000 events in an earlier
// measurement; 77–86 ms for 10,000–18,000 events on 12-02, its pool
// threads doing the other 0.3–0.5 s). On a thread of the runtime's, at the
// gateway's priority, that took half of a core from the calls for as long.
// At nice 10 the calls keep ≈ 90 % of it. Threads the engine starts from
// this one inherit its priority and slice.
//
// The goroutine stays locked to its thread until it ends, so the runtime
// then ends the thread instead of running other goroutines on it at the
// lowered priority (raising it back would need CAP_SYS_NICE). The main
// thread cannot end: if the goroutine ran there, the runtime parks that
// thread for good, and it runs nothing more.
func onEngineThread(nice int, f func() error) error {
	// The spare P comes first: a thread at a lower priority that holds
	// the only P would hold back every goroutine while the kernel runs
	// others (it took 6 ms to get from lowering its priority to its
	// first engine call when the P came second).
	return withSpareP(func() error {
		if nice <= 0 {
			// On the caller's thread, kept for the whole call so that
			// the thread's CPU time is the call's (counted).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			return counted(f)
		}
		return onLoweredThread(nice, func() error { return counted(f) })
	})
}

// onLoweredThread runs f on a goroutine locked to a new OS thread at nice
// and EngineSlice; see onEngineThread.
func onLoweredThread(nice int, f func() error) error {
	type outcome struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan outcome, 1)
	go func() {
		// A panic goes back to the caller, whose stack may recover it
		// (an HTTP handler's does).
		defer func() {
			if r := recover(); r != nil {
				done <- outcome{panicked: true, value: r}
			}
		}()
		runtime.LockOSThread()
		_ = lowerThread(unix.Gettid(), nice)
		done <- outcome{err: f()}
	}()
	o := <-done
	if o.panicked {
		panic(o.value)
	}
	return o.err
}

// spareP counts the goroutines in withSpareP; prev is GOMAXPROCS before
// the first of them raised it.
var spareP struct {
	sync.Mutex
	n, prev int
}

// withSpareP runs f with GOMAXPROCS one higher than it was.
//
// A goroutine in a call into the engine keeps its P (the runtime's right
// to run Go code) until the runtime's monitor notices the call, which
// takes up to 10–20 ms while the process is busy, and does not notice a
// run of shorter calls at all. With GOMAXPROCS at 1 (a gateway pinned to
// one core), the gateway's calls waited that long at the start of every
// long engine call, and through a run of short ones. A spare P lets them
// run meanwhile; the engine's thread, at its lower priority, yields the
// core to them.
//
// Changing GOMAXPROCS stops the world: raising it and setting it back took
// ≈ 35 µs together (median of 200, one core); an insert does both once.
// Afterwards GOMAXPROCS goes back to the runtime's default (which follows
// the CPU limit and affinity) unless $GOMAXPROCS set it.
func withSpareP(f func() error) error {
	spareP.Lock()
	if spareP.n == 0 {
		spareP.prev = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(spareP.prev + 1)
	}
	spareP.n++
	spareP.Unlock()
	defer func() {
		spareP.Lock()
		defer spareP.Unlock()
		if spareP.n--; spareP.n > 0 {
			return
		}
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS()
		} else {
			runtime.GOMAXPROCS(spareP.prev)
		}
	}()
	return f()
}
