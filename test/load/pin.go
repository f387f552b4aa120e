package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinning keeps the gateway on cores of its own, so that its CPU time per
// request is not inflated by the load generator and the upstream competing
// for the same cores. The gateway gets the upper half of the cores, the
// harness (the load generator) and the demo upstream the lower half.
type pinning struct {
	gateway, others []int // CPU numbers; both empty: no pinning
}

// choosePinning pins when asked and the machine has at least 2 cores.
func choosePinning(cores int, enabled bool) pinning {
	if !enabled || cores < 2 {
		return pinning{}
	}
	var p pinning
	for c := range cores {
		if c < cores/2 {
			p.others = append(p.others, c)
		} else {
			p.gateway = append(p.gateway, c)
		}
	}
	return p
}

func (p pinning) String() string {
	if len(p.gateway) == 0 {
		return "none: load generator, demo upstream and gateway share the cores"
	}
	return fmt.Sprintf("gateway on cpu %s; load generator and demo upstream on cpu %s", cpuList(p.gateway), cpuList(p.others))
}

// command returns the command line that runs name with args on the cores
// of role ("gateway" or anything else), through taskset(1).
func (p pinning) command(role, name string, args []string) (string, []string) {
	cpus := p.others
	if role == "gateway" {
		cpus = p.gateway
	}
	if len(cpus) == 0 {
		return name, args
	}
	return "taskset", append([]string{"-c", cpuList(cpus), name}, args...)
}

// pinSelf moves every thread of this process (and so the threads it
// starts later) to the load generator's cores.
func (p pinning) pinSelf() error {
	if len(p.others) == 0 {
		return nil
	}
	var set unix.CPUSet
	for _, c := range p.others {
		set.Set(c)
	}
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("pinning the load generator to cpu %s: %w", cpuList(p.others), err)
		}
	}
	return nil
}

func cpuList(cpus []int) string {
	if len(cpus) == 1 {
		return strconv.Itoa(cpus[0])
	}
	return fmt.Sprintf("%d-%d", cpus[0], cpus[len(cpus)-1])
}
