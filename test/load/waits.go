package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// handoffs is what an execution trace says about how a call's work moves
// between goroutines: every time a goroutine becomes runnable (woken,
// created or preempted) and then runs, grouped by where it had stopped.
// A call's latency includes the runnable waits of the handoffs on its
// path, and under load each one queues behind whatever else is runnable.
type handoffs struct {
	span  time.Duration
	rows  map[string][]time.Duration
	total int
}

// readHandoffs reads the execution trace at path.
func readHandoffs(path string) (*handoffs, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("reading trace %s: %w", path, err)
	}
	h := &handoffs{rows: map[string][]time.Duration{}}
	stoppedAt := map[trace.ResourceID]string{}
	type pending struct {
		at    trace.Time
		where string
	}
	runnable := map[trace.ResourceID]pending{}
	var first, last trace.Time
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading trace %s: %w", path, err)
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		from, to := st.Goroutine()
		switch {
		case to == trace.GoWaiting:
			stoppedAt[st.Resource] = "blocking in " + firstOwnFrame(st.Stack)
		case to == trace.GoRunnable:
			where := stoppedAt[st.Resource]
			switch from {
			case trace.GoNotExist:
				where = "creation, to run " + firstOwnFrame(st.Stack)
			case trace.GoRunning:
				where = "preemption or yield"
			}
			if where == "" {
				where = "(state before the trace)"
			}
			runnable[st.Resource] = pending{ev.Time(), where}
		case from == trace.GoRunnable && to == trace.GoRunning:
			if p, ok := runnable[st.Resource]; ok {
				delete(runnable, st.Resource)
				h.rows[p.where] = append(h.rows[p.where], time.Duration(ev.Time()-p.at))
				h.total++
			}
		}
	}
	h.span = time.Duration(last - first)
	return h, nil
}

// firstOwnFrame names the first frame of s outside the runtime and the
// sync packages: where a goroutine waited, or what a new one runs.
func firstOwnFrame(s trace.Stack) string {
	name := "?"
	for f := range s.Frames() {
		name = f.Func
		if !strings.HasPrefix(f.Func, "runtime.") && !strings.HasPrefix(f.Func, "sync.") && !strings.HasPrefix(f.Func, "internal/") {
			break
		}
	}
	return name
}

// print writes the handoffs per call, given the calls per second of the
// traced window, most frequent first.
func (h *handoffs) print(w io.Writer, callsPerSec float64, top int) {
	calls := callsPerSec * h.span.Seconds()
	if calls <= 0 || h.total == 0 {
		fmt.Fprintln(w, "handoffs: no calls or no goroutine transitions in the trace")
		return
	}
	type row struct {
		where         string
		n             int
		p50, p99, max time.Duration
		sum           time.Duration
	}
	var rows []row
	var waited time.Duration
	for where, ws := range h.rows {
		slices.Sort(ws)
		r := row{where: where, n: len(ws), p50: ws[len(ws)/2], p99: ws[len(ws)*99/100], max: ws[len(ws)-1]}
		for _, d := range ws {
			r.sum += d
		}
		waited += r.sum
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.n, a.n) })
	fmt.Fprintf(w, "\nhandoffs in the traced window (%.1f s, %.0f calls): %.1f goroutine runs per call after a wait to run, %.0f µs of such waits per call\n",
		h.span.Seconds(), calls, float64(h.total)/calls, float64(waited.Microseconds())/calls)
	fmt.Fprintf(w, "%9s %9s %9s %9s %9s  %s\n", "per call", "p50 µs", "p99 µs", "max ms", "µs/call", "waiting to run after")
	for i, r := range rows {
		if i == top {
			break
		}
		fmt.Fprintf(w, "%9.2f %9.1f %9.1f %9.2f %9.1f  %s\n", float64(r.n)/calls,
			float64(r.p50.Nanoseconds())/1e3, float64(r.p99.Nanoseconds())/1e3, float64(r.max.Nanoseconds())/1e6,
			float64(r.sum.Microseconds())/calls, r.where)
	}
}
