package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuTicks is one CPU's line of /proc/stat: all its time and the part of
// it that was stolen, in clock ticks.
type cpuTicks struct{ total, steal uint64 }

// readCPUTicks reads every CPU's ticks from /proc/stat, by CPU number.
func readCPUTicks() (map[int]cpuTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("reading host steal: %w", err)
	}
	return parseCPUTicks(b)
}

// parseCPUTicks parses the per-CPU lines of /proc/stat ("cpuN user nice
// system idle iowait irq softirq steal guest guest_nice"). Guest time is
// already counted in user and nice, so it is not added again.
func parseCPUTicks(stat []byte) (map[int]cpuTicks, error) {
	ticks := map[int]cpuTicks{}
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][len("cpu"):])
		if err != nil || len(f) < 9 {
			return nil, fmt.Errorf("reading host steal: bad /proc/stat line %q", sc.Text())
		}
		var t cpuTicks
		for i, s := range f[1:min(len(f), 9)] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("reading host steal: bad /proc/stat line %q", sc.Text())
			}
			t.total += v
			if i == 7 {
				t.steal = v
			}
		}
		ticks[n] = t
	}
	if len(ticks) == 0 {
		return nil, fmt.Errorf("reading host steal: no per-CPU lines in /proc/stat")
	}
	return ticks, nil
}

// stealPercent is the share of the CPUs' time between two readings that
// the hypervisor gave to something else while they wanted to run: time
// in which a thread on them was neither running nor idle, invisible to
// its own CPU time. cpus empty means every CPU. It is nil when the
// readings cover no time (a window shorter than a tick).
func stealPercent(before, after map[int]cpuTicks, cpus []int) *float64 {
	if len(cpus) == 0 {
		for c := range after {
			cpus = append(cpus, c)
		}
	}
	var total, steal uint64
	for _, c := range cpus {
		a, b := after[c], before[c]
		if a.total < b.total || a.steal < b.steal {
			continue // a CPU brought back online restarts its counts
		}
		total += a.total - b.total
		steal += a.steal - b.steal
	}
	if total == 0 {
		return nil
	}
	return ptr(100 * float64(steal) / float64(total))
}
