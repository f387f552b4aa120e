package spool

import (
	"bytes"
	"testing"
	"time"
)

// BenchmarkAppend appends ~1 KB records from many goroutines (a gateway
// serving concurrent calls) and reports records/s.
func BenchmarkAppend(b *testing.B) {
	rec := bytes.Repeat([]byte("a"), 1000)
	for _, bc := range []struct {
		name        string
		fsync       string
		parallelism int // goroutines per GOMAXPROCS; 0 is a single goroutine
	}{
		{"interval/serial", FsyncInterval, 0},
		{"interval/parallel", FsyncInterval, 16},
		{"always/serial", FsyncAlways, 0},
		{"always/parallel", FsyncAlways, 64},
		{"always/parallel-512", FsyncAlways, 256},
		{"interval/parallel-512", FsyncInterval, 256},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{Fsync: bc.fsync, BudgetBytes: -1})
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			start := time.Now()
			if bc.parallelism == 0 {
				for b.Loop() {
					if err := s.Append(rec); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bc.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.Append(rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			elapsed := time.Since(start)
			st := s.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			if st.Fsyncs > 0 {
				b.ReportMetric(float64(st.Appended)/float64(st.Fsyncs), "records/fsync")
			}
		})
	}
}

// BenchmarkRead reads what a gateway at 2,800 audited calls/s appends
// between two of the shipper's reads (one per 100 ms fsync): 280 records
// of 2 KB. "latest": the read right after the appends, as the shipper
// reads (the memory tail serves it); "replay": the same records read again
// (from the segment file), as after a restart.
func BenchmarkRead(b *testing.B) {
	rec := bytes.Repeat([]byte("a"), 2000)
	const per = 280
	for _, mode := range []string{"latest", "replay"} {
		b.Run(mode, func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{BudgetBytes: -1})
			from := s.Cursor()
			b.SetBytes(per * int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for range per {
					if err := s.AppendFunc(func() ([]byte, error) { return bytes.Clone(rec), nil }, nil); err != nil {
						b.Fatal(err)
					}
				}
				// The shipper reads after the background fsync.
				if err := s.syncNow(); err != nil {
					b.Fatal(err)
				}
				if mode == "replay" {
					if _, _, err := s.Read(from, 0, 0); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				recs, next, err := s.Read(from, 0, 0)
				if err != nil || len(recs) != per {
					b.Fatalf("Read: %d records, %v", len(recs), err)
				}
				b.StopTimer()
				if err := s.Commit(next); err != nil {
					b.Fatal(err)
				}
				from = next
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/record")
		})
	}
}
