//go:build !nochdb

package chdb

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// lowerEnginePriority sets nice on every thread of this process that the
// engine started: those whose name differs from the main thread's (Go's
// threads all keep the process's name; the engine names its own, e.g.
// ThreadPool, BgSchPool). A thread the engine starts later from one of
// them inherits the value; the next call catches the others. A thread
// that exits meanwhile is skipped. It returns how many threads it set.
func lowerEnginePriority(nice int) (int, error) {
	if nice <= 0 {
		return 0, nil
	}
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		return 0, fmt.Errorf("lowering the embedded engine's priority: %w", err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("lowering the embedded engine's priority: %w", err)
	}
	n := 0
	for _, t := range tasks {
		comm, err := os.ReadFile("/proc/self/task/" + t.Name() + "/comm")
		if err != nil || bytes.Equal(comm, self) {
			continue
		}
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err == nil {
			n++
		}
	}
	return n, nil
}
