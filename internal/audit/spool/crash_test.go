package spool

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The SIGKILL test re-runs the test binary as a child that appends until
// it is killed.
const (
	envCrashDir   = "SPOOL_CRASH_DIR"
	envCrashFsync = "SPOOL_CRASH_FSYNC"
	envCrashRound = "SPOOL_CRASH_ROUND"
	crashWriters  = 4
)

// crashChild appends "round/writer/i" records from crashWriters
// goroutines and prints "ack writer i" after each Append returns, until
// the parent kills it.
func crashChild() {
	s, err := Open(os.Getenv(envCrashDir), Options{Fsync: os.Getenv(envCrashFsync), SegmentBytes: 64 << 10, Logger: quiet})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	round := os.Getenv(envCrashRound)
	pad := strings.Repeat("z", 200)
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; ; i++ {
				if err := s.Append(fmt.Appendf(nil, "%s/%d/%d/%s", round, w, i, pad)); err != nil {
					fmt.Println("append:", err)
					os.Exit(2)
				}
				fmt.Printf("ack %d %d\n", w, i) // one write(2): lines do not interleave
			}
		})
	}
	wg.Wait()
}

// TestSIGKILL kills a child process mid-stream (twice, on the same
// spool) and checks that every record it acknowledged is in the spool,
// exactly once and in order.
func TestSIGKILL(t *testing.T) {
	if os.Getenv(envCrashDir) != "" {
		crashChild()
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	for _, fsync := range []string{FsyncInterval, FsyncAlways} {
		t.Run(fsync, func(t *testing.T) {
			dir := t.TempDir()
			const rounds = 3
			acked := make([][crashWriters]int, rounds) // highest acknowledged index + 1
			for round := range rounds {
				acked[round] = killChild(t, dir, fsync, round, 500+rand.IntN(2000))
			}

			s := openT(t, dir, Options{})
			next := make([][crashWriters]int, rounds)
			for _, r := range readAll(t, s, s.Cursor(), 0) {
				var round, w, i int
				if _, err := fmt.Sscanf(string(r.Data), "%d/%d/%d/", &round, &w, &i); err != nil {
					t.Fatalf("record %.40q at %v: %v", r.Data, r.Pos, err)
				}
				if i != next[round][w] {
					t.Fatalf("round %d writer %d: record %d where %d was due (lost or duplicated)", round, w, i, next[round][w])
				}
				next[round][w]++
			}
			for round := range rounds {
				for w := range crashWriters {
					if next[round][w] < acked[round][w] {
						t.Errorf("round %d writer %d: %d records in the spool, %d acknowledged", round, w, next[round][w], acked[round][w])
					}
				}
				t.Logf("round %d: acknowledged %v, in the spool %v", round, acked[round], next[round])
			}
		})
	}
}

// killChild runs a child on dir, SIGKILLs it after n acknowledgements,
// and returns, per writer, how many records it acknowledged.
func killChild(t *testing.T, dir, fsync string, round, n int) (acked [crashWriters]int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashFsync+"="+fsync, fmt.Sprintf("%s=%d", envCrashRound, round))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	lines, killed := 0, false
	for sc.Scan() {
		var w, i int
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &w, &i); err != nil {
			continue // the test framework's own output
		}
		if i+1 > acked[w] {
			acked[w] = i + 1
		}
		if lines++; lines == n {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed: %v", err)
	}
	return acked
}
