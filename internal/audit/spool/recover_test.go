//go:build linux

package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/spool/spooltest"
)

// wrec is writer w's record i, ≈ 1 KB.
func wrec(w, i int) []byte {
	return fmt.Appendf(nil, `{"w":%d,"i":%d,"pad":%q}`, w, i, strings.Repeat("x", 1000))
}

// byWriter splits records made by wrec into each writer's numbers, in the
// order read.
func byWriter(t *testing.T, recs []Record) map[int][]int {
	t.Helper()
	out := map[int][]int{}
	for _, r := range recs {
		var w, i int
		if _, err := fmt.Sscanf(string(r.Data), `{"w":%d,"i":%d,`, &w, &i); err != nil {
			t.Fatalf("record at %v: %v", r.Pos, err)
		}
		out[w] = append(out[w], i)
	}
	return out
}

// TestRecoversFromFullDisk fills the file system under the spool while
// four writers append. The appends that fail, and every later one, say
// so; the spool keeps refusing while the disk is full; once a commit of
// the shipped records frees their segments, it takes appends again by
// itself, and the writers' retries of the failed records go in. Read back
// (and again after a reopen), each writer's records are exactly the
// acknowledged ones in order: a failed record is neither kept nor
// doubled by its retry. OnDiscard was told the first failed record.
func TestRecoversFromFullDisk(t *testing.T) {
	t.Parallel()
	for _, fsync := range []string{FsyncInterval, FsyncAlways} {
		t.Run(fsync, func(t *testing.T) {
			t.Parallel()
			recoversFromFullDisk(t, fsync)
		})
	}
}

func recoversFromFullDisk(t *testing.T, fsync string) {
	fs := spooltest.SmallFS(t, 4<<20)
	dir := filepath.Join(fs, "spool")
	var discarded [][]byte // OnDiscard runs under the spool's lock
	s := openT(t, dir, Options{Fsync: fsync, SegmentBytes: 128 << 10, BudgetBytes: -1, RetryInterval: 10 * time.Millisecond,
		OnDiscard: func(first []byte) error { discarded = append(discarded, bytes.Clone(first)); return nil }})

	const writers = 4
	failedAt := make([]int, writers) // each writer's first failed record
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				if err := s.Append(wrec(w, i)); err != nil {
					failedAt[w], errs[w] = i, err
					return
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if !strings.Contains(err.Error(), "no space left on device") && !strings.Contains(err.Error(), "retries every") {
			t.Errorf("writer %d's failed Append: %v", w, err)
		}
	}
	if err := s.Admit(); err == nil || !strings.Contains(err.Error(), "retries every 10ms") {
		t.Fatalf("Admit on a full disk = %v", err)
	}
	time.Sleep(100 * time.Millisecond) // ten attempts, on a disk still full
	if err := s.Append(wrec(0, -1)); err == nil {
		t.Fatal("Append on a full disk succeeded")
	}
	if st := s.Stats(); st.Recoveries != 0 {
		t.Fatalf("recovered on a full disk: %+v", st)
	}

	// The shipper ships everything and commits: the shipped segments go.
	shipped := readAll(t, s, s.Cursor(), 1000)
	end := shipped[len(shipped)-1].End()
	if err := s.Commit(end); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Admit() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not recovered 10 s after the disk had room: %v", s.Admit())
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := s.Stats()
	if st.Recoveries != 1 || st.Discarded < 1 || st.Discarded > writers {
		t.Errorf("stats after recovery: %d recoveries, %d discarded; want 1 and 1–%d", st.Recoveries, st.Discarded, writers)
	}
	if len(discarded) != 1 {
		t.Fatalf("OnDiscard called %d times, want once", len(discarded))
	}
	if !slices.ContainsFunc(failedAt, func(i int) bool {
		for w := range writers {
			if failedAt[w] == i && bytes.Equal(discarded[0], wrec(w, i)) {
				return true
			}
		}
		return false
	}) {
		t.Errorf("OnDiscard got %.30q, not a failed record", discarded[0])
	}

	// The writers retry their failed records and go on.
	const more = 50
	for w := range writers {
		wg.Go(func() {
			for i := failedAt[w]; i < failedAt[w]+more; i++ {
				if err := s.Append(wrec(w, i)); err != nil {
					t.Errorf("writer %d, record %d after recovery: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	check := func(after []Record) {
		t.Helper()
		got, rest := byWriter(t, shipped), byWriter(t, after)
		for w := range writers {
			all := append(got[w], rest[w]...)
			want := make([]int, failedAt[w]+more)
			for i := range want {
				want[i] = i
			}
			if !slices.Equal(all, want) {
				t.Errorf("writer %d's records read back: %d of them, want 0..%d in order (first failed: %d)", w, len(all), len(want)-1, failedAt[w])
			}
		}
	}
	check(readAll(t, s, end, 1000))
	s.Close()
	s = openT(t, dir, Options{})
	check(readAll(t, s, s.Cursor(), 1000))
}

// TestSyncFailureNeedsRestart: after a failed fdatasync the kernel may
// have dropped what it could not write, so the spool does not recover by
// itself: appends and Admit refuse, saying to restart, and a reopen
// finds the records acknowledged before.
func TestSyncFailureNeedsRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways, RetryInterval: 5 * time.Millisecond})
	appendN(t, s, 0, 3)
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	real := s.file
	s.file = null // white box: writes succeed, fdatasync fails (EINVAL)
	if err := s.Append(rec(3)); err == nil {
		t.Fatal("Append with a failing fdatasync succeeded")
	}
	time.Sleep(50 * time.Millisecond)
	for _, err := range []error{s.Append(rec(4)), s.Admit()} {
		if err == nil || !strings.Contains(err.Error(), "restart to recover") {
			t.Errorf("after a failed fdatasync: %v, want the error naming a restart", err)
		}
	}
	if st := s.Stats(); st.Recoveries != 0 {
		t.Errorf("recovered from a failed fdatasync: %+v", st)
	}
	s.Close()
	real.Close()
	s = openT(t, dir, Options{})
	checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 3)
}

// TestWriteFailureKeepsRefusing: a write failure that persists (here the
// segment's file is closed under the spool, so the recovery's truncation
// fails too) keeps the spool refusing, and nothing acknowledged is lost.
func TestWriteFailureKeepsRefusing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways, RetryInterval: 5 * time.Millisecond})
	appendN(t, s, 0, 3)
	s.file.Close() // white box: the next pwrite fails
	if err := s.Append(rec(3)); err == nil {
		t.Fatal("Append on a broken file succeeded")
	}
	time.Sleep(50 * time.Millisecond)
	for _, err := range []error{s.Append(rec(4)), s.Admit()} {
		if err == nil || !errors.Is(err, os.ErrClosed) {
			t.Errorf("later Append or Admit = %v, want the write's error", err)
		}
	}
	s.Close()
	s = openT(t, dir, Options{})
	checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 3)
}

// TestFailedRecordTooLargeToRewind: a record that failed to fit the disk
// and was too large for the memory tail cannot be told to OnDiscard, so
// the spool does not guess: it refuses until a restart, and OnDiscard is
// never called.
func TestFailedRecordTooLargeToRewind(t *testing.T) {
	t.Parallel()
	fs := spooltest.SmallFS(t, 8<<20)
	var called atomic.Bool
	s := openT(t, filepath.Join(fs, "spool"), Options{RetryInterval: 5 * time.Millisecond,
		OnDiscard: func([]byte) error { called.Store(true); return nil }})
	appendN(t, s, 0, 3)
	if err := s.Append(bytes.Repeat([]byte("x"), MemTailBytes+1)); err == nil {
		t.Fatal("a record larger than the disk was appended")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Admit()
		if err != nil && strings.Contains(err.Error(), "restart to recover") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Admit = %v, want the error naming a restart", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if called.Load() {
		t.Error("OnDiscard called without the first discarded record")
	}
	checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 3)
}
