package gctune

import (
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, MaxPercent},
		{4 << 20, MaxPercent},
		{8 << 20, MaxPercent},
		{16 << 20, 800},
		{32 << 20, 400},
		{64 << 20, 200},
		{128 << 20, 100},
		{600 << 20, 25},
		{4 << 30, MinPercent},
	} {
		if got := Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

// TestTunerFollowsLiveHeap: holding 320 MiB live brings GOGC down after a
// collection; letting it go brings it back up.
func TestTunerFollowsLiveHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tu := Start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer tu.Stop()

	// runtimeGOGC reads the collector's setting without writing it, which
	// would race with the tuner.
	runtimeGOGC := func() int {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}
	// waitFor waits until the tuner's GOGC satisfies ok and is the
	// runtime's too.
	waitFor := func(ok func(int) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(tu.Percent()) || runtimeGOGC() != tu.Percent() {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC: tuner %d, runtime %d; want %s, the same in both", tu.Percent(), runtimeGOGC(), what)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
	hold := make([][]byte, 320)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
	}
	waitFor(func(p int) bool { return p < 100 && p >= MinPercent }, "below 100 with 320 MiB live")
	runtime.KeepAlive(hold)
	waitFor(func(p int) bool { return p == MaxPercent }, "MaxPercent once the heap is small again")
}
