// Package procstat reads a Linux /proc/PID/stat (or
// /proc/PID/task/TID/stat) line: the fields after the command name, and
// the CPU time they hold.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, the unit of the CPU times in stat: 100 on every
// Linux architecture Go supports.
const ClockTicks = 100

// Fields returns the fields after the command name: field 3 of stat (the
// state) is Fields(stat)[0], field n is at n-3. The name, field 2, may
// hold spaces and parentheses, so the fields are those after its last
// closing parenthesis. There is at least one when the error is nil.
func Fields(stat []byte) ([]string, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, errors.New("malformed /proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) == 0 {
		return nil, errors.New("short /proc stat: nothing after the command name")
	}
	return f, nil
}

// CPUTicks is the user and system CPU time in stat (fields 14 and 15,
// utime and stime), in clock ticks ([ClockTicks] a second).
func CPUTicks(stat []byte) (int64, error) {
	f, err := Fields(stat)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, errors.New("short /proc stat: no utime and stime")
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 63)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 63)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return int64(utime + stime), nil
}

// Duration is n clock ticks as a duration.
func Duration(n int64) time.Duration { return time.Duration(n) * time.Second / ClockTicks }
