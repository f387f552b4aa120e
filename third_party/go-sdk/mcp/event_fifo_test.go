// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// appendCall stores what a proxied call's POST stream stores: its priming
// event (no data), its answer, then the stream is done.
func appendCall(t testing.TB, s *MemoryEventStore, session string, i int, answer []byte) {
	ctx := context.Background()
	stream := strconv.Itoa(i)
	if err := s.Open(ctx, session, stream); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, session, stream, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, session, stream, answer); err != nil {
		t.Fatal(err)
	}
	s.streamDone(session, stream)
}

// TestMemoryEventStoreKeepsNewest: once full, the store drops the oldest
// answers, whichever session's, and keeps the newest for replay. (The
// published store dropped the first item of every stream at once, so a
// full store fell to almost nothing every maxBytes of appends: a stream
// answered a moment before could not be replayed.)
func TestMemoryEventStoreKeepsNewest(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryEventStore(nil)
	const size, maxItems = 100, 50
	s.SetMaxBytes(size * maxItems)
	answer := make([]byte, size)
	for i := range 20 * maxItems {
		session := fmt.Sprintf("S%d", i%7)
		appendCall(t, s, session, i, answer)
		if want := min(i+1, maxItems) * size; s.nBytes != want {
			t.Fatalf("after %d calls the store holds %d bytes, want %d", i+1, s.nBytes, want)
		}
		// The newest maxItems answers can be replayed (index 1: after the
		// priming event); older ones are gone.
		for back := range min(i+1, maxItems) {
			j := i - back
			n := 0
			for d, err := range s.After(ctx, fmt.Sprintf("S%d", j%7), strconv.Itoa(j), 0) {
				if err != nil {
					t.Fatalf("after %d calls, replay of call %d: %v", i+1, j, err)
				}
				if len(d) != size {
					t.Fatalf("after %d calls, replay of call %d: %d bytes", i+1, j, len(d))
				}
				n++
			}
			if n != 1 {
				t.Fatalf("after %d calls, replay of call %d gave %d events, want 1", i+1, j, n)
			}
		}
		if j := i - maxItems; j >= 0 {
			for _, err := range s.After(ctx, fmt.Sprintf("S%d", j%7), strconv.Itoa(j), 0) {
				if err == nil {
					t.Fatalf("after %d calls, call %d (purged) replayed", i+1, j)
				}
			}
		}
	}
	// Done streams whose answers were purged are forgotten.
	streams := 0
	for _, sm := range s.store {
		streams += len(sm)
	}
	if streams != maxItems {
		t.Errorf("store holds %d streams, want %d", streams, maxItems)
	}
}

// TestMemoryEventStoreClosedSessions: the append order's entries for
// closed sessions' data are skipped by the purge and compacted away, so
// short sessions that never fill the store do not grow it.
func TestMemoryEventStoreClosedSessions(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryEventStore(nil)
	s.SetMaxBytes(1 << 20)
	answer := make([]byte, 10)
	for i := range 10_000 {
		session := fmt.Sprintf("S%d", i)
		appendCall(t, s, session, i, answer)
		appendCall(t, s, session, i+1, answer)
		if err := s.SessionClosed(ctx, session); err != nil {
			t.Fatal(err)
		}
	}
	if s.nBytes != 0 || len(s.store) != 0 {
		t.Fatalf("store holds %d bytes in %d sessions after every session closed", s.nBytes, len(s.store))
	}
	if n := len(s.order) - s.head; n > 1024 {
		t.Errorf("append order holds %d entries after every session closed, want a few hundred at most", n)
	}
	// The store still works: a new session's data are kept and purged.
	s.SetMaxBytes(30)
	for i := range 10 {
		appendCall(t, s, "new", i, answer)
	}
	// Each stream keeps its priming event (no data) before its answer.
	item := "first=0  " + string(answer)
	if got, want := s.debugString(), "new 7 "+item+"; new 8 "+item+"; new 9 "+item; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// BenchmarkMemoryEventStoreFull measures an append to a full store as the
// gateway makes them: each call's stream gets a priming event and a 1 KB
// answer, 16 sessions, the default 10 MiB limit. Reported: the mean, and
// the longest append (the published store's purge emptied the whole store
// at once, every ≈ 9,000 calls, under the lock every POST takes).
func BenchmarkMemoryEventStoreFull(b *testing.B) {
	s := NewMemoryEventStore(nil)
	answer := make([]byte, 1136)
	i := 0
	for ; i < 2*defaultMaxBytes/len(answer); i++ { // full, and purging
		appendCall(b, s, fmt.Sprintf("S%d", i%16), i, answer)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var longest time.Duration
	for b.Loop() {
		start := time.Now()
		appendCall(b, s, fmt.Sprintf("S%d", i%16), i, answer)
		longest = max(longest, time.Since(start))
		i++
	}
	b.ReportMetric(float64(longest.Microseconds()), "max-µs")
}
