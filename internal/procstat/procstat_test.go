package procstat

import (
	"strings"
	"testing"
	"time"
)

func TestCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		stat  string
		ticks int64
		err   string // "" for none
	}{
		{"1234 (ThreadPool) S 1 1 1 0 -1 4194624 10 0 0 0 250 37 0 0 30 10 40 0 100 0", 287, ""},
		// A name may hold spaces and parentheses.
		{"1234 (a) b (c) R 1 1 1 0 -1 4194624 10 0 0 0 5 6 0 0 20 0 1 0 100 0", 11, ""},
		{"1234 (short) S 1 2", 0, "short"},
		{"1234 (empty)", 0, "short"},
		{"garbage", 0, "no command name"},
		{"1234 (neg) S 1 1 1 0 -1 4194624 10 0 0 0 -5 6 0 0", 0, "malformed"},
	} {
		n, err := CPUTicks([]byte(tc.stat))
		if n != tc.ticks || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CPUTicks(%q) = %d, %v; want %d and an error with %q", tc.stat, n, err, tc.ticks, tc.err)
		}
	}
}

func TestFields(t *testing.T) {
	f, err := Fields([]byte("42 (x) y) T 7 8\n"))
	if err != nil || len(f) != 3 || f[0] != "T" || f[2] != "8" {
		t.Errorf("Fields = %q, %v; want [T 7 8]", f, err)
	}
}

func TestDuration(t *testing.T) {
	if d := Duration(287); d != 2870*time.Millisecond {
		t.Errorf("Duration(287) = %v, want 2.87s", d)
	}
}
