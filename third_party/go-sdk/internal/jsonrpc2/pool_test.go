// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package jsonrpc2

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// goid returns the calling goroutine's ID, from its stack trace header.
func goid() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	id, _ := strconv.Atoi(string(buf[:bytes.IndexByte(buf, ' ')]))
	return id
}

// run hands f to p and waits for it to finish; it returns the ID of the
// goroutine f ran on, after that goroutine is idle again.
func run(p *Workers) int {
	ch := make(chan int)
	p.Go(func() { ch <- goid() })
	id := <-ch
	synctest.Wait()
	return id
}

func TestWorkersReuseIdleGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		defer close(done)
		p := &Workers{Done: done}

		first := run(p)
		for range 50 {
			if id := run(p); id != first {
				t.Fatalf("work ran on goroutine %d, want the idle goroutine %d", id, first)
			}
		}

		// Concurrent work gets a goroutine each.
		gate := make(chan struct{})
		var mu sync.Mutex
		ids := map[int]bool{}
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			p.Go(func() {
				defer wg.Done()
				mu.Lock()
				ids[goid()] = true
				mu.Unlock()
				<-gate
			})
		}
		synctest.Wait()
		close(gate)
		wg.Wait()
		if len(ids) != 3 || !ids[first] {
			t.Fatalf("3 concurrent pieces of work ran on goroutines %v, want 3 including the idle %d", ids, first)
		}
		synctest.Wait()
		if id := run(p); !ids[id] {
			t.Errorf("work after the concurrent ones ran on a new goroutine %d, want one of %v", id, ids)
		}
	})
}

func TestWorkersExitWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &Workers{Done: make(chan struct{})} // never closed
		first := run(p)
		time.Sleep(WorkerIdle - time.Millisecond)
		synctest.Wait()
		if id := run(p); id != first {
			t.Fatalf("work before WorkerIdle ran on goroutine %d, want the idle %d", id, first)
		}
		time.Sleep(WorkerIdle + time.Millisecond)
		synctest.Wait()
		if id := run(p); id == first {
			t.Fatalf("work after WorkerIdle ran on goroutine %d, which should have exited", id)
		}
		// synctest.Test fails if the idle worker is still there when the
		// test returns.
		time.Sleep(WorkerIdle + time.Millisecond)
	})
}

func TestWorkersExitWhenDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		p := &Workers{Done: done}
		first := run(p)
		close(done)
		synctest.Wait()
		// Work handed over after Done still runs, on a new goroutine that
		// exits after it. synctest.Test fails if a goroutine waits for
		// WorkerIdle instead: time stops when the test returns.
		if id := run(p); id == first {
			t.Fatalf("work after Done ran on goroutine %d, which should have exited", id)
		}
	})
}
