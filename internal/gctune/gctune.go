// Package gctune adapts the garbage collector's GOGC to the live heap, so a
// gateway is cheap on CPU while its heap is small and lean on memory when
// it is large.
//
// Go's GOGC lets the heap grow by a percentage of what the last collection
// found live (plus goroutine stacks and globals) before collecting again. A
// proxied call allocates mostly short-lived garbage, so a high percentage
// saves CPU while little is live; but with 10,000 idle agent sessions
// (≈ 600 MB of live heap and stacks) the same percentage would let the heap
// grow by gigabytes. The tuner instead aims for a fixed amount of headroom:
// after every collection it sets GOGC to Headroom as a percentage of what
// is live, within [MinPercent, MaxPercent].
package gctune

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

const (
	// Headroom is how much the heap may grow between collections once
	// MaxPercent no longer applies.
	Headroom = 128 << 20
	// MaxPercent applies while what is live is under Headroom/16 (8 MiB):
	// it only bounds the percentage of a nearly empty heap. (400 instead
	// of Go's 100 cut the gateway's CPU per call by ≈ 22% in the load
	// harness's full scenario; 1600 instead of 400, so that a heap of
	// 8–32 MiB gets the full headroom too, took about 3 % off the CPU
	// per call at half load; see the README.)
	MaxPercent = 1600
	// MinPercent bounds collection frequency however large the heap.
	MinPercent = 25
)

// Percent is the GOGC for live bytes of heap, stacks and globals.
func Percent(live uint64) int {
	if live == 0 {
		return MaxPercent
	}
	return int(max(MinPercent, min(MaxPercent, 100*Headroom/live)))
}

// Tuner re-tunes GOGC after every collection until stopped.
type Tuner struct {
	log     *slog.Logger
	stopped atomic.Bool
	percent atomic.Int64
	samples []metrics.Sample
}

// Start sets GOGC to MaxPercent and re-tunes it after every collection.
func Start(log *slog.Logger) *Tuner {
	t := &Tuner{log: log, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.percent.Store(MaxPercent)
	debug.SetGCPercent(MaxPercent)
	t.arm()
	return t
}

// Stop ends tuning; GOGC keeps its last value.
func (t *Tuner) Stop() { t.stopped.Store(true) }

// Percent is the GOGC last set.
func (t *Tuner) Percent() int { return int(t.percent.Load()) }

// sentinel is garbage from birth: its cleanup runs after the collection
// that finds it unreachable, which is the next one. It holds a pointer so
// that it is not batched by the tiny allocator, whose blocks may live on.
type sentinel struct {
	_ *byte
	_ [16]byte
}

func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *Tuner) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	}, t)
}

func (t *Tuner) tune() {
	// One sentinel is armed at a time, after the last tune returned: tunes
	// never overlap.
	metrics.Read(t.samples)
	var live uint64
	for _, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			live += s.Value.Uint64()
		}
	}
	p := Percent(live)
	old := int(t.percent.Load())
	// Ignore changes under an eighth, so a steady heap does not flap.
	if p == old || (p > old-old/8 && p < old+old/8 && p != MinPercent && p != MaxPercent) {
		return
	}
	debug.SetGCPercent(p) // first: what Percent reports is in force
	t.percent.Store(int64(p))
	t.log.Debug("gc percent", "gogc", p, "live_bytes", live)
}
