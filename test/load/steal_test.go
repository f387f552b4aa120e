package main

import (
	"strings"
	"testing"
)

func TestParseCPUTicks(t *testing.T) {
	const stat = `cpu  7911 0 2680 9875 92 0 50 23 0 0
cpu0 3825 0 1315 5123 17 0 14 9 0 0
cpu1 4085 0 1364 4751 74 0 36 14 5 0
intr 1 2 3
ctxt 123
`
	ticks, err := parseCPUTicks([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if len(ticks) != 2 {
		t.Fatalf("got %d CPUs, want 2 (the aggregate line is not a CPU)", len(ticks))
	}
	// Guest time (the ninth field) is inside user already: not added.
	if got, want := ticks[1], (cpuTicks{total: 4085 + 1364 + 4751 + 74 + 36 + 14, steal: 14}); got != want {
		t.Errorf("cpu1: got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"cpu0 1 2 3\n", "cpux 1 2 3 4 5 6 7 8\n", "cpu0 1 2 3 4 5 6 7 -8\n", "intr 1\n", ""} {
		if _, err := parseCPUTicks([]byte(bad)); err == nil || !strings.Contains(err.Error(), "host steal") {
			t.Errorf("%q: got %v, want an error about host steal", bad, err)
		}
	}
}

func TestStealPercent(t *testing.T) {
	before := map[int]cpuTicks{0: {total: 1000, steal: 10}, 1: {total: 1000, steal: 0}}
	after := map[int]cpuTicks{0: {total: 1200, steal: 60}, 1: {total: 1200, steal: 10}}
	for _, tc := range []struct {
		cpus []int
		want float64
	}{
		{[]int{0}, 25},
		{[]int{1}, 5},
		{nil, 15}, // every CPU
	} {
		got := stealPercent(before, after, tc.cpus)
		if got == nil || *got != tc.want {
			t.Errorf("cpus %v: got %v, want %v", tc.cpus, got, tc.want)
		}
	}
	if got := stealPercent(before, before, []int{0}); got != nil {
		t.Errorf("no time between the readings: got %v, want nil", *got)
	}
	// A CPU whose counts went back (brought back online) is left out.
	reset := map[int]cpuTicks{0: {total: 100, steal: 1}, 1: {total: 1200, steal: 10}}
	if got := stealPercent(before, reset, nil); got == nil || *got != 5 {
		t.Errorf("a reset CPU: got %v, want 5 (cpu1 alone)", got)
	}
}
