package main

import (
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"slices"
	"strings"
	"testing"
)

// TestReadHandoffs traces a known exchange between goroutines and checks
// that the census finds it: each ping wakes the receiver where it blocks,
// and one goroutine is created to run it.
func TestReadHandoffs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.trace")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		t.Skipf("tracing unavailable: %v", err)
	}
	// One P, as the gateway has: the exchange is then the same every run.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const pings = 200
	ping, pong := make(chan int), make(chan int)
	go receiveForCensus(ping, pong)
	for i := range pings {
		ping <- i
		<-pong
	}
	close(ping)
	trace.Stop()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	h, err := readHandoffs(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := slices.Sorted(maps.Keys(h.rows))
	// Named by package path in a test binary, "main." in the harness.
	count := func(prefix string) int {
		n := 0
		for _, r := range rows {
			if strings.HasPrefix(r, prefix) && strings.HasSuffix(r, ".receiveForCensus") {
				n += len(h.rows[r])
			}
		}
		return n
	}
	// About once a ping: not for a ping it took before blocking (the
	// first, as it starts), once more when the channel closes.
	if woken := count("blocking in "); woken < pings-2 || woken > pings+2 {
		t.Errorf("the receiver was woken %d times in the census, want %d ± 2; rows: %q", woken, pings, rows)
	}
	if n := count("creation, to run "); n != 1 {
		t.Errorf("the receiver's creation counted %d times, want 1; rows: %q", n, rows)
	}
	var out strings.Builder
	h.print(&out, float64(pings)/h.span.Seconds(), 5)
	if !strings.Contains(out.String(), "receiveForCensus") || !strings.Contains(out.String(), "runs per call") {
		t.Errorf("the printed census lacks the receiver:\n%s", out.String())
	}
}

//go:noinline
func receiveForCensus(ping <-chan int, pong chan<- int) {
	for i := range ping {
		pong <- i
	}
}
