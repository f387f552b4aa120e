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
