// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package jsonrpc2

import (
	"slices"
	"sync"
	"time"
)

// WorkerIdle is how long a [Workers] goroutine waits for more work before
// it exits.
const WorkerIdle = time.Second

// Workers runs functions on goroutines of their own, reusing goroutines
// that finished earlier work. A connection's request handlers run on its
// Workers: a handler's call chain is deep (middleware, the handler itself,
// JSON codecs), so a new goroutine grows its stack several times for every
// request, copying it each time, while a reused one keeps the stack it grew.
//
// There are as many goroutines as concurrent calls of Go. An idle one exits
// after WorkerIdle, or when Done is closed. Workers are per connection,
// never shared between connections: a goroutine carries what it was started
// in (a synctest bubble) to all the work it does.
type Workers struct {
	// Done, when closed, makes idle goroutines exit (the connection ended).
	// Work handed to Go afterwards still runs.
	Done <-chan struct{}

	mu   sync.Mutex
	idle []*worker // the most recently idle last
}

type worker struct {
	work  chan func()
	timer *time.Timer
}

// Go runs f on a goroutine that is idle, or on a new one.
func (p *Workers) Go(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- f
		return
	}
	p.mu.Unlock()
	w := &worker{work: make(chan func(), 1)}
	go w.run(p, f)
}

func (w *worker) run(p *Workers, f func()) {
	for f != nil {
		f()
		f = nil // not kept alive while idle
		f = w.next(p)
	}
}

// next waits for the next piece of work; nil means the worker must exit.
func (w *worker) next(p *Workers) func() {
	p.mu.Lock()
	p.idle = append(p.idle, w)
	p.mu.Unlock()
	if w.timer == nil {
		w.timer = time.NewTimer(WorkerIdle)
	} else {
		w.timer.Reset(WorkerIdle)
	}
	select {
	case f := <-w.work:
		w.timer.Stop()
		return f
	case <-w.timer.C:
	case <-p.Done:
		w.timer.Stop()
	}
	p.mu.Lock()
	i := slices.Index(p.idle, w)
	if i >= 0 {
		p.idle = slices.Delete(p.idle, i, i+1)
	}
	p.mu.Unlock()
	if i >= 0 {
		return nil
	}
	// Go took this worker off the idle list as it timed out: the work is on
	// its way.
	return <-w.work
}
