package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openT(t testing.TB, dir string, o Options) *Spool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rec is record i, of a size that varies with i.
func rec(i int) []byte {
	return fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, strings.Repeat("x", i*37%300))
}

func appendN(t testing.TB, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(rec(i)); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
	}
}

// readAll reads everything from from in batches of at most n records.
func readAll(t testing.TB, s *Spool, from Pos, n int) []Record {
	t.Helper()
	var all []Record
	for {
		recs, next, err := s.Read(from, n, 0)
		if err != nil {
			t.Fatalf("Read(%v): %v", from, err)
		}
		if len(recs) == 0 {
			if next != from {
				t.Fatalf("Read(%v) at the end returned next %v", from, next)
			}
			return all
		}
		all = append(all, recs...)
		from = next
	}
}

func checkRecs(t testing.TB, got []Record, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("got %d records, want %d (%d..%d)", len(got), to-from, from, to-1)
	}
	for i, r := range got {
		if want := rec(from + i); !bytes.Equal(r.Data, want) {
			t.Fatalf("record %d at %v = %.40q, want %.40q", i, r.Pos, r.Data, want)
		}
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func TestRoundTripAcrossRotation(t *testing.T) {
	t.Parallel()
	for _, fsync := range []string{FsyncInterval, FsyncAlways} {
		t.Run(fsync, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := Options{Fsync: fsync, SegmentBytes: 4096}
			s := openT(t, dir, o)
			appendN(t, s, 0, 500)
			if n := s.Stats().Segments; n < 10 {
				t.Fatalf("Segments = %d, want rotation into many", n)
			}
			for _, n := range []int{1, 7, 0} {
				checkRecs(t, readAll(t, s, s.Cursor(), n), 0, 500)
			}
			for _, f := range segFiles(t, dir)[:len(segFiles(t, dir))-1] {
				if fi, _ := os.Stat(f); fi.Size() > o.SegmentBytes {
					t.Errorf("%s has %d bytes, more than SegmentBytes", f, fi.Size())
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openT(t, dir, o)
			checkRecs(t, readAll(t, s, s.Cursor(), 50), 0, 500)
			appendN(t, s, 500, 600)
			checkRecs(t, readAll(t, s, s.Cursor(), 50), 0, 600)
			st := s.Stats()
			if st.Appended != 100 || st.AppendedBytes == 0 {
				t.Errorf("Stats = %+v, want 100 appended since Open", st)
			}
		})
	}
}

func TestAppendValidation(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), Options{})
	if err := s.Append(nil); err == nil {
		t.Error("Append(empty) succeeded")
	}
	if err := s.Append(make([]byte, MaxRecordBytes+1)); err == nil {
		t.Error("Append(too large) succeeded")
	}
	// A record larger than a segment gets a segment of its own.
	s2 := openT(t, t.TempDir(), Options{SegmentBytes: 100})
	big := bytes.Repeat([]byte("b"), 1000)
	for range 3 {
		if err := s2.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	recs, _, err := s2.Read(s2.Cursor(), 0, 0)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Read = %d records, %v", len(recs), err)
	}
	if s2.Stats().Segments != 3 {
		t.Errorf("Segments = %d, want 3", s2.Stats().Segments)
	}
}

func TestFrameCRC(t *testing.T) {
	t.Parallel()
	for _, rec := range [][]byte{[]byte("x"), rec(3), bytes.Repeat([]byte{0xff}, 70000)} {
		h := frameHeader(rec)
		want := crc32.Checksum(append(h[0:4:4], rec...), crc32.MakeTable(crc32.Castagnoli))
		if got := binary.LittleEndian.Uint32(h[4:8]); got != want {
			t.Errorf("CRC of a %d-byte frame = %#x, want CRC-32C %#x", len(rec), got, want)
		}
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Fsync: "sometimes"}, {OnFull: "panic"}} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
	o, err := Options{BudgetBytes: -1}.withDefaults()
	if err != nil || o.BudgetBytes != 0 || o.Fsync != FsyncInterval || o.OnFull != OnFullRefuse ||
		o.SegmentBytes != DefaultSegmentBytes || o.FsyncInterval != DefaultFsyncInterval {
		t.Errorf("defaults = %+v, %v", o, err)
	}
	if o, _ := (Options{}).withDefaults(); o.BudgetBytes != DefaultBudgetBytes {
		t.Errorf("default budget = %d", o.BudgetBytes)
	}
}

// TestReadDeterministic checks what the package documentation promises
// about replays: the same from and limits give the same records and next,
// also after a restart, and Read(from, count) reproduces a short batch.
func TestReadDeterministic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := Options{SegmentBytes: 2048}
	s := openT(t, dir, o)
	appendN(t, s, 0, 100)

	type batch struct {
		first, next Pos
		n           int
	}
	batches := func(s *Spool, maxRecords, maxBytes int) []batch {
		var bs []batch
		from := s.Cursor()
		for {
			recs, next, err := s.Read(from, maxRecords, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				return bs
			}
			if recs[0].Pos != from && recs[0].Pos != (Pos{Segment: from.Segment + 1}) {
				t.Fatalf("batch from %v starts at %v", from, recs[0].Pos)
			}
			bs = append(bs, batch{recs[0].Pos, next, len(recs)})
			from = next
		}
	}
	limits := [][2]int{{7, 0}, {0, 1000}, {5, 700}, {0, 1}}
	var before [][]batch
	for _, l := range limits {
		bs := batches(s, l[0], l[1])
		if l[1] == 1 && len(bs) != 100 {
			t.Errorf("maxBytes 1 gave %d batches, want one record each", len(bs))
		}
		before = append(before, bs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, o)
	appendN(t, s, 100, 110) // a new segment after restart: the old batches are unchanged
	for i, l := range limits {
		after := batches(s, l[0], l[1])
		// The last batch stopped at the end of the data, and may grow.
		if n := len(before[i]) - 1; !slices.Equal(before[i][:n], after[:n]) {
			t.Errorf("limits %v: batches changed after restart:\n%v\n%v", l, before[i], after)
		}
	}

	// A short batch, replayed with its count, ends at the same place.
	from := s.Cursor()
	recs, next, err := s.Read(from, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 110, 120)
	again, next2, err := s.Read(from, len(recs), 1<<30)
	if err != nil || len(again) != len(recs) || next2 != next {
		t.Fatalf("replay = %d records to %v (%v), want %d to %v", len(again), next2, err, len(recs), next)
	}
}

func TestReadPositions(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1024})
	appendN(t, s, 0, 40)
	all := readAll(t, s, s.Cursor(), 0)
	end := all[len(all)-1].End()

	// From any record, Read returns the rest; the end of a segment and
	// the start of the next are the same place.
	for i, r := range all {
		recs, _, err := s.Read(r.Pos, 1, 0)
		if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].Data, rec(i)) {
			t.Fatalf("Read(%v) = %v, %v", r.Pos, recs, err)
		}
		if i > 0 && all[i-1].Pos.Segment != r.Pos.Segment {
			prev := all[i-1].End()
			recs, _, err := s.Read(prev, 1, 0)
			if err != nil || len(recs) != 1 || recs[0].Pos != r.Pos {
				t.Fatalf("Read(%v) at the end of a segment = %v, %v; want the record at %v", prev, recs, err, r.Pos)
			}
		}
	}
	for _, bad := range []Pos{{Segment: end.Segment, Offset: end.Offset + 1}, {Segment: end.Segment + 5}, {Segment: 1, Offset: -1}} {
		if _, _, err := s.Read(bad, 1, 0); err == nil {
			t.Errorf("Read(%v) succeeded", bad)
		}
	}
	if recs, next, err := s.Read(end, 1, 0); err != nil || len(recs) != 0 || next != end {
		t.Errorf("Read(end) = %v, %v, %v", recs, next, err)
	}
}

func TestAppendDurability(t *testing.T) {
	t.Parallel()

	t.Run("interval writes before returning", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := openT(t, dir, Options{Fsync: FsyncInterval, FsyncInterval: time.Hour})
		for i := range 20 {
			if err := s.Append(rec(i)); err != nil {
				t.Fatal(err)
			}
			// What another process would see: the frame is in the file.
			b, err := os.ReadFile(segFiles(t, dir)[0])
			if err != nil {
				t.Fatal(err)
			}
			h := frameHeader(rec(i))
			if !bytes.HasSuffix(b, append(h[:], rec(i)...)) {
				t.Fatalf("after Append(%d) the segment does not end with its frame", i)
			}
		}
		if n := s.Stats().Fsyncs; n != 0 {
			t.Errorf("interval policy synced %d times in the write path", n)
		}
		// Read makes what it returns durable first.
		checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 20)
		if n := s.Stats().Fsyncs; n != 1 {
			t.Errorf("Fsyncs after Read = %d, want 1", n)
		}
	})

	t.Run("interval syncs in the background", func(t *testing.T) {
		t.Parallel()
		s := openT(t, t.TempDir(), Options{Fsync: FsyncInterval, FsyncInterval: 5 * time.Millisecond})
		appendN(t, s, 0, 10)
		select {
		case <-s.Notify():
		case <-time.After(10 * time.Second):
			t.Fatal("no background sync")
		}
		if st := s.Stats(); st.Fsyncs == 0 || st.LastFsync == 0 {
			t.Errorf("Stats = %+v, want a timed fsync", st)
		}
	})

	t.Run("always syncs before returning", func(t *testing.T) {
		t.Parallel()
		s := openT(t, t.TempDir(), Options{Fsync: FsyncAlways})
		for i := range 10 {
			if err := s.Append(rec(i)); err != nil {
				t.Fatal(err)
			}
			if n := s.Stats().Fsyncs; n != uint64(i+1) {
				t.Fatalf("after %d sequential appends Fsyncs = %d", i+1, n)
			}
			select {
			case <-s.Notify():
			default:
				t.Fatal("Notify did not fire after a durable append")
			}
		}
	})
}

// TestGroupCommit proves concurrent appenders share fdatasyncs.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), Options{Fsync: FsyncAlways})
	const writers, each = 64, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Append(fmt.Appendf(nil, "%d/%d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("%d appends, %d fsyncs", st.Appended, st.Fsyncs)
	if st.Appended != writers*each {
		t.Fatalf("Appended = %d", st.Appended)
	}
	if st.Fsyncs >= st.Appended/2 {
		t.Errorf("Fsyncs = %d for %d concurrent appends: no group commit", st.Fsyncs, st.Appended)
	}
	checkOrder(t, readAll(t, s, s.Cursor(), 0), writers, each)
}

// checkOrder checks records "w/i" hold each writer's 0..each-1 in order.
func checkOrder(t testing.TB, recs []Record, writers, each int) {
	t.Helper()
	next := make([]int, writers)
	for _, r := range recs {
		var w, i int
		if _, err := fmt.Sscanf(string(r.Data), "%d/%d", &w, &i); err != nil {
			t.Fatalf("record %q: %v", r.Data, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: record %d where %d was due", w, i, next[w])
		}
		next[w]++
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d records, want %d", w, n, each)
		}
	}
}

// TestConcurrentAppendAndRead runs writers and a shipping reader together.
func TestConcurrentAppendAndRead(t *testing.T) {
	t.Parallel()
	for _, fsync := range []string{FsyncInterval, FsyncAlways} {
		t.Run(fsync, func(t *testing.T) {
			t.Parallel()
			s := openT(t, t.TempDir(), Options{Fsync: fsync, SegmentBytes: 8 << 10, FsyncInterval: time.Millisecond})
			const writers, each = 8, 300
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						if err := s.Append(fmt.Appendf(nil, "%d/%d", w, i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			var got []Record
			from := s.Cursor()
			deadline := time.After(30 * time.Second)
			for len(got) < writers*each {
				recs, next, err := s.Read(from, 50, 0)
				if err != nil {
					t.Fatal(err)
				}
				got, from = append(got, recs...), next
				if len(recs) > 0 {
					if err := s.Commit(next); err != nil {
						t.Fatal(err)
					}
					continue
				}
				select {
				case <-s.Notify():
				case <-time.After(5 * time.Millisecond):
				case <-deadline:
					t.Fatalf("read %d of %d records", len(got), writers*each)
				}
			}
			wg.Wait()
			checkOrder(t, got, writers, each)
			if st := s.Stats(); st.UnshippedBytes != 0 || st.Segments > 2 {
				t.Errorf("after shipping everything: %+v", st)
			}
		})
	}
}

func TestCommitAndReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := Options{SegmentBytes: 2048}
	s := openT(t, dir, o)
	appendN(t, s, 0, 200)
	total := s.Stats().UnshippedBytes
	nsegs := len(segFiles(t, dir))

	recs, next, err := s.Read(s.Cursor(), 120, 0)
	if err != nil || len(recs) != 120 {
		t.Fatalf("Read = %d, %v", len(recs), err)
	}
	if err := s.Commit(next); err != nil {
		t.Fatal(err)
	}
	var shipped int64
	for _, r := range recs {
		shipped += int64(frameHeaderSize + len(r.Data))
	}
	if got := s.Stats().UnshippedBytes; got != total-shipped {
		t.Errorf("UnshippedBytes = %d, want %d", got, total-shipped)
	}
	files := segFiles(t, dir)
	if len(files) >= nsegs || filepath.Base(files[0]) != segName(next.Segment) || s.Cursor().less(next) {
		t.Errorf("after Commit(%v) the segments are %v", next, files)
	}
	// Going back is a no-op; reading shipped and deleted data fails;
	// committing past the end fails.
	if err := s.Commit(recs[0].Pos); err != nil {
		t.Errorf("Commit(earlier) = %v", err)
	}
	if _, _, err := s.Read(recs[0].Pos, 1, 0); err == nil {
		t.Error("Read of a deleted segment succeeded")
	}
	if err := s.Commit(Pos{Segment: next.Segment + 100}); err == nil {
		t.Error("Commit past the end succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, o)
	if c := s.Cursor(); c != next && !(c.Segment == next.Segment+1 && c.Offset == 0) {
		t.Errorf("Cursor after reopen = %v, want %v", c, next)
	}
	checkRecs(t, readAll(t, s, s.Cursor(), 0), 120, 200)
	if got := s.Stats().UnshippedBytes; got != total-shipped {
		t.Errorf("UnshippedBytes after reopen = %d, want %d", got, total-shipped)
	}

	// Ship everything. The committed position is the end of the last
	// sealed segment: that segment stays while the position may still be
	// read from, and goes at the next Open (or Commit).
	all := readAll(t, s, s.Cursor(), 0)
	end := all[len(all)-1].End()
	if err := s.Commit(end); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.UnshippedBytes != 0 || st.Segments != 2 {
		t.Errorf("after shipping all: %+v, files %v", st, segFiles(t, dir))
	}
	if recs, next, err := s.Read(end, 0, 0); len(recs) != 0 || next != end || err != nil {
		t.Errorf("Read(committed end) = %v, %v, %v", recs, next, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, o)
	if st := s.Stats(); st.UnshippedBytes != 0 || st.Segments != 1 || len(segFiles(t, dir)) != 1 {
		t.Errorf("after shipping all and reopening: %+v, files %v", st, segFiles(t, dir))
	}
	if recs := readAll(t, s, s.Cursor(), 0); len(recs) != 0 {
		t.Errorf("after shipping all and reopening, %d records to read", len(recs))
	}
	appendN(t, s, 200, 210)
	checkRecs(t, readAll(t, s, s.Cursor(), 0), 200, 210)
}

func TestBudget(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte("p"), 1000)
	for _, onFull := range []string{OnFullRefuse, OnFullDrop} {
		t.Run(onFull, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openT(t, dir, Options{BudgetBytes: 4 * 1008, OnFull: onFull, SegmentBytes: 1 << 20})
			for range 4 {
				if err := s.Append(payload); err != nil {
					t.Fatal(err)
				}
			}
			size := func() int64 {
				fi, err := os.Stat(segFiles(t, dir)[0])
				if err != nil {
					t.Fatal(err)
				}
				return fi.Size()
			}
			before := size()
			err := s.Append(payload)
			admit := s.Admit()
			st := s.Stats()
			switch onFull {
			case OnFullRefuse:
				if !errors.Is(err, ErrFull) || !errors.Is(admit, ErrFull) {
					t.Errorf("Append = %v, Admit = %v; want ErrFull", err, admit)
				}
				if st.Refused != 1 || st.Dropped != 0 {
					t.Errorf("Stats = %+v", st)
				}
			case OnFullDrop:
				if err != nil || admit != nil {
					t.Errorf("Append = %v, Admit = %v; want nil", err, admit)
				}
				if st.Dropped != 1 || st.Refused != 0 {
					t.Errorf("Stats = %+v", st)
				}
			}
			if size() != before || st.Appended != 4 || st.UnshippedBytes != 4*1008 {
				t.Errorf("a record over the budget was written: %+v", st)
			}
			// Shipping frees budget.
			recs, _, err := s.Read(s.Cursor(), 2, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(recs[1].End()); err != nil {
				t.Fatal(err)
			}
			if err := s.Admit(); err != nil {
				t.Errorf("Admit after shipping = %v", err)
			}
			for range 2 {
				if err := s.Append(payload); err != nil {
					t.Fatalf("Append after shipping: %v", err)
				}
			}
			if n := len(readAll(t, s, s.Cursor(), 0)); n != 4 || s.Stats().Appended != 6 {
				t.Errorf("%d records unshipped, Stats %+v", n, s.Stats())
			}
		})
	}
	s := openT(t, t.TempDir(), Options{BudgetBytes: -1})
	if s.Stats().BudgetBytes != 0 {
		t.Errorf("BudgetBytes -1: budget %d, want none", s.Stats().BudgetBytes)
	}
}

// TestTornTail simulates a crash in the middle of a write: the last
// segment ends in part of a frame. Open drops the partial frame, keeps
// everything before it, and appends continue.
func TestTornTail(t *testing.T) {
	t.Parallel()
	lastLen := int64(frameHeaderSize + len(rec(49)))
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *os.File, size int64)
		keep   int
	}{
		{"inside the header", truncateTo(-lastLen + 3), 49},
		{"after the header", truncateTo(-lastLen + frameHeaderSize), 49},
		{"inside the payload", truncateTo(-5), 49},
		{"one byte", truncateTo(-lastLen + 1), 49},
		{"zeros after the last record (power cut)", appendBytes(make([]byte, 4096)), 50},
		{"garbage in the last record", func(t *testing.T, f *os.File, size int64) {
			writeAt(t, f, size-3, []byte{0xde, 0xad, 0xbe})
		}, 49},
		{"zeros over the last record", func(t *testing.T, f *os.File, size int64) {
			writeAt(t, f, size-lastLen, make([]byte, lastLen+100))
		}, 49},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := Options{Fsync: FsyncAlways}
			s := openT(t, dir, o)
			appendN(t, s, 0, 50)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := segFiles(t, dir)[0]
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			tc.damage(t, f, fi.Size())
			f.Close()

			s = openT(t, dir, o)
			checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, tc.keep)
			appendN(t, s, tc.keep, 60)
			checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 60)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, o)
			checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 60)
		})
	}
}

func truncateTo(delta int64) func(*testing.T, *os.File, int64) {
	return func(t *testing.T, f *os.File, size int64) {
		if err := f.Truncate(size + delta); err != nil {
			t.Fatal(err)
		}
	}
}

func appendBytes(b []byte) func(*testing.T, *os.File, int64) {
	return func(t *testing.T, f *os.File, size int64) { writeAt(t, f, size, b) }
}

func writeAt(t *testing.T, f *os.File, off int64, b []byte) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCorruption damages records that a torn write cannot explain: Open
// (last segment) or Read (earlier ones) names the file and offset.
func TestCorruption(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		segment int // index among the segment files; -1 is the last
		field   int64
		atOpen  bool
	}{
		{"payload byte in a sealed segment", 0, frameHeaderSize + 2, false},
		{"length field in a sealed segment", 0, 1, false},
		{"crc field in a sealed segment", 0, 5, false},
		{"payload byte in the last segment", -1, frameHeaderSize + 2, true},
		{"crc field in the last segment", -1, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := Options{SegmentBytes: 4096}
			s := openT(t, dir, o)
			appendN(t, s, 0, 100)
			all := readAll(t, s, s.Cursor(), 0)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Reopening sealed the last segment and started an empty one;
			// damage the last one with data.
			files := segFiles(t, dir)
			if tc.segment < 0 {
				tc.segment = len(files) - 2
				os.Remove(files[len(files)-1])
			}
			path := files[tc.segment]
			seg, _ := parseSegName(filepath.Base(path))
			var victim Record // a record in the middle of the segment
			var inSeg []Record
			for _, r := range all {
				if r.Pos.Segment == seg {
					inSeg = append(inSeg, r)
				}
			}
			victim = inSeg[len(inSeg)/2]
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			off := victim.Pos.Offset + tc.field
			f.ReadAt(b, off)
			b[0] ^= 0x40
			writeAt(t, f, off, b)
			f.Close()

			s, err = Open(dir, Options{SegmentBytes: 4096, Logger: quiet})
			if err == nil {
				t.Cleanup(func() { s.Close() })
				if tc.atOpen {
					t.Fatal("Open succeeded")
				}
				_, _, err = s.Read(s.Cursor(), 0, 0)
			} else if !tc.atOpen {
				t.Fatalf("Open: %v", err)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a CorruptError", err)
			}
			if ce.File != path || ce.Offset != victim.Pos.Offset {
				t.Errorf("CorruptError at %s:%d, want %s:%d", ce.File, ce.Offset, path, victim.Pos.Offset)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprint(victim.Pos.Offset)) {
				t.Errorf("message %q does not name the file and offset", msg)
			}
			// Records before the damage stay readable.
			if !tc.atOpen {
				recs, _, err := s.Read(s.Cursor(), 0, 0)
				if err == nil || len(recs) != 0 {
					t.Errorf("Read returned %d records and %v, want only the error", len(recs), err)
				}
				if got := readUpTo(s, victim.Pos); got == 0 && victim.Pos.Offset > 0 {
					t.Error("records before the damage are unreadable")
				}
			}
		})
	}
}

// readUpTo counts records readable one by one until an error.
func readUpTo(s *Spool, stop Pos) int {
	n, from := 0, s.Cursor()
	for from.less(stop) {
		recs, next, err := s.Read(from, 1, 0)
		if err != nil || len(recs) == 0 {
			return n
		}
		n, from = n+1, next
	}
	return n
}

func TestCloseAndLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, err := Open(dir, Options{Logger: quiet}); err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
	appendN(t, s, 0, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Append(rec(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if _, _, err := s.Read(Pos{Segment: 1}, 1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if err := s.Commit(Pos{Segment: 1, Offset: 10}); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v", err)
	}
	if err := s.Admit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Admit after Close = %v", err)
	}
	for range s.Notify() {
	} // closed: the loop ends
	s2 := openT(t, dir, Options{})
	checkRecs(t, readAll(t, s2, s2.Cursor(), 0), 0, 3)
}

// TestCloseWaitsForAppends closes while appenders are running: every
// Append that returned nil is in the spool.
func TestCloseWaitsForAppends(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := fmt.Sprintf("%d/%d", w, i)
				if err := s.Append([]byte(r)); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				acked[r] = true
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = openT(t, dir, Options{})
	for _, r := range readAll(t, s, s.Cursor(), 0) {
		delete(acked, string(r.Data))
	}
	if len(acked) > 0 {
		t.Errorf("%d acknowledged records missing after Close", len(acked))
	}
}

func TestCursorFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, cursorFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), cursorFile) {
		t.Errorf("Open with a broken cursor = %v, want an error naming it", err)
	}
	// A cursor past everything (damage) re-reads rather than deletes.
	dir = t.TempDir()
	s := openT(t, dir, Options{})
	appendN(t, s, 0, 5)
	s.Close()
	if err := writeCursor(filepath.Join(dir, cursorFile), Pos{Segment: 99, Offset: 7}); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 5)
}

// appendKept appends records from..to-1 with AppendFunc and returns the
// slices it handed the spool, to tell a Read served from memory (the same
// bytes) from one served from the file (a copy).
func appendKept(t testing.TB, s *Spool, from, to int, data func(int) []byte) [][]byte {
	t.Helper()
	var kept [][]byte
	for i := from; i < to; i++ {
		b := data(i)
		if err := s.AppendFunc(func() ([]byte, error) { return b, nil }, nil); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		kept = append(kept, b)
	}
	return kept
}

// fromMemory reports which of recs are the very slices in kept.
func fromMemory(recs []Record, kept [][]byte) []bool {
	out := make([]bool, len(recs))
	for i, r := range recs {
		out[i] = len(r.Data) > 0 && len(kept[i]) > 0 && &r.Data[0] == &kept[i][0]
	}
	return out
}

func TestReadFromMemory(t *testing.T) {
	t.Parallel()
	for _, fsync := range []string{FsyncInterval, FsyncAlways} {
		t.Run(fsync, func(t *testing.T) {
			t.Parallel()
			// Segments of 2 KiB: runs cross segment boundaries.
			s := openT(t, t.TempDir(), Options{Fsync: fsync, SegmentBytes: 2 << 10, FsyncInterval: time.Hour})
			kept := appendKept(t, s, 0, 200, rec)

			// Read with both limits, as a shipper does: every record from
			// memory, the same records and positions a read of the files
			// gives (the replay below).
			var got []Record
			for from := s.Cursor(); ; {
				recs, next, err := s.Read(from, 7, 500)
				if err != nil {
					t.Fatalf("Read(%v): %v", from, err)
				}
				if len(recs) == 0 {
					break
				}
				if recs[len(recs)-1].End() != next {
					t.Fatalf("Read(%v) next %v, want the end of its last record %v", from, next, recs[len(recs)-1].End())
				}
				got, from = append(got, recs...), next
			}
			checkRecs(t, got, 0, 200)
			for i, mem := range fromMemory(got, kept) {
				if !mem {
					t.Fatalf("record %d at %v was read back from the file, not served from memory", i, got[i].Pos)
				}
			}
			if len(s.mem) != 0 || s.memBytes != 0 {
				t.Errorf("memory tail after reading everything: %d records, %d bytes; want none", len(s.mem), s.memBytes)
			}

			// A replay from the start reads the files: the same records
			// at the same positions, as copies.
			again := readAll(t, s, s.Cursor(), 7)
			checkRecs(t, again, 0, 200)
			for i := range again {
				if again[i].Pos != got[i].Pos {
					t.Fatalf("record %d: replay at %v, first read at %v", i, again[i].Pos, got[i].Pos)
				}
				if fromMemory(again[i:i+1], kept[i:i+1])[0] {
					t.Fatalf("record %d of the replay came from memory, which had given it away", i)
				}
			}
		})
	}
}

// A reader that fell behind by more than MemTailBytes reads the oldest
// records from the files and the rest from memory; the memory tail never
// holds more than MemTailBytes.
func TestReadMemoryTailBounded(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), Options{BudgetBytes: -1})
	const size = 1 << 20
	n := MemTailBytes/size + 8
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, size-frameHeaderSize) }
	kept := appendKept(t, s, 0, n, big)
	if s.memBytes > MemTailBytes {
		t.Fatalf("memory tail holds %d bytes, over MemTailBytes (%d)", s.memBytes, MemTailBytes)
	}
	got := readAll(t, s, s.Cursor(), 1) // one at a time: memory as soon as it can
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	mem := fromMemory(got, kept)
	var fromFile int
	for i, r := range got {
		if !bytes.Equal(r.Data, kept[i]) {
			t.Fatalf("record %d differs from what was appended", i)
		}
		if !mem[i] {
			fromFile++
			if i > 0 && mem[i-1] {
				t.Fatalf("record %d from the file after record %d from memory", i, i-1)
			}
		}
	}
	// The tail holds exactly MemTailBytes/size of these records.
	if want := n - MemTailBytes/size; fromFile != want {
		t.Errorf("%d records read from the file, want the %d the memory tail had dropped", fromFile, want)
	}

	// A record larger than the memory tail is never kept, and empties it.
	huge := bytes.Repeat([]byte{'h'}, MemTailBytes+1)
	appendKept(t, s, 0, 1, func(int) []byte { return huge })
	if len(s.mem) != 0 || s.memBytes != 0 {
		t.Errorf("memory tail after a record larger than it: %d records, %d bytes; want none", len(s.mem), s.memBytes)
	}
}

// Records whose write failed stay in the memory tail but are never durable,
// so Read does not return them.
func TestReadMemoryNotDurable(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), Options{Fsync: FsyncAlways})
	appendN(t, s, 0, 3)
	s.file.Close() // white box: the next pwrite fails
	if err := s.Append(rec(3)); err == nil {
		t.Fatal("Append on a broken file succeeded")
	}
	recs, _, err := s.Read(s.Cursor(), 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	checkRecs(t, recs, 0, 3)
}

// ReadSynced returns only what an fsync made durable; Read syncs first.
func TestReadSynced(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), Options{FsyncInterval: time.Hour})
	appendN(t, s, 0, 5)
	recs, next, err := s.ReadSynced(s.Cursor(), 0, 0)
	if err != nil || len(recs) != 0 || next != s.Cursor() {
		t.Fatalf("ReadSynced before any fsync = %d records, next %v, %v; want none", len(recs), next, err)
	}
	fsyncs := s.Stats().Fsyncs
	checkRecs(t, readAll(t, s, s.Cursor(), 0), 0, 5)
	if got := s.Stats().Fsyncs; got != fsyncs+1 {
		t.Errorf("Read ran %d fdatasyncs, want 1", got-fsyncs)
	}
	appendN(t, s, 5, 8)
	recs, _, err = s.ReadSynced(s.Cursor(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkRecs(t, recs, 0, 5) // 5..7 are not durable yet
	if got := s.Stats().Fsyncs; got != fsyncs+1 {
		t.Errorf("ReadSynced ran an fdatasync")
	}
}
