// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by the license
// that can be found in the LICENSE file.

package jsonrpc2

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAccept: messages handed over with Accept are handled as the reader's
// would be, in order. A request that starts an idle handler chain comes
// back to run on the caller's goroutine when inline is set; one that
// queues behind a held request does not, and starts on a worker when the
// queue moves. Responses reach their calls. Once the connection is closed,
// Accept fails and takes nothing.
func TestAccept(t *testing.T) {
	rw := newChanRW()
	started := make(chan string, 8)
	hold := make(chan struct{})
	var conn *Connection
	conn = NewConnection(context.Background(), ConnectionConfig{
		Reader: rw, Writer: rw, Closer: rw,
		Bind: func(*Connection) Handler {
			return HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
				started <- req.Method
				if req.Method == "held" { // never released: holds the queue until it returns
					<-hold
				}
				return req.Method, nil
			})
		},
	})
	defer rw.Close()

	accept := func(id int64, method string, inline bool) func() {
		t.Helper()
		req, err := NewCall(Int64ID(id), method, nil)
		if err != nil {
			t.Fatal(err)
		}
		run, err := conn.Accept(req, inline)
		if err != nil {
			t.Fatalf("Accept(%s): %v", method, err)
		}
		return run
	}
	expect := func(id int64, method string) {
		t.Helper()
		select {
		case got := <-started:
			if got != method {
				t.Fatalf("handler started on %q, want %q", got, method)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("handler did not start on %q", method)
		}
		select {
		case m := <-rw.out:
			if r, ok := m.(*Response); !ok || r.ID != Int64ID(id) || string(r.Result) != `"`+method+`"` {
				t.Fatalf("wrote %#v, want the answer to %d", m, id)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no answer to %d", id)
		}
	}

	// An idle chain: the request comes back to run here.
	run := accept(1, "inline", true)
	if run == nil {
		t.Fatal("Accept(inline) on an idle chain returned no handler to run")
	}
	select {
	case m := <-started:
		t.Fatalf("handler started on %q before the caller ran it", m)
	default:
	}
	run()
	expect(1, "inline")

	// Without inline, the request starts on a worker.
	if run := accept(2, "worker", false); run != nil {
		t.Fatal("Accept without inline returned a handler to run")
	}
	expect(2, "worker")

	// A request queued behind a held one is not the caller's to run. (The
	// held one starts on a worker: inline it could come back nil, as the
	// previous worker may still be handing the chain back when its answer
	// is out.)
	if run := accept(3, "held", false); run != nil {
		t.Fatal("Accept without inline returned a handler to run")
	}
	if got := <-started; got != "held" {
		t.Fatalf("handler started on %q, want held", got)
	}
	if run := accept(4, "queued", true); run != nil {
		t.Fatal("Accept(inline) behind a held request returned a handler to run")
	}
	close(hold)
	select {
	case m := <-rw.out:
		if r, ok := m.(*Response); !ok || r.ID != Int64ID(3) {
			t.Fatalf("wrote %#v, want the answer to 3", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to 3")
	}
	expect(4, "queued")

	// A response reaches the call it answers.
	ac := conn.Call(context.Background(), "out", nil)
	if _, ok := (<-rw.out).(*Request); !ok {
		t.Fatal("the call was not written")
	}
	if _, err := conn.Accept(&Response{ID: ac.ID(), Result: []byte(`"ok"`)}, false); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := ac.Await(context.Background(), &got); err != nil || got != "ok" {
		t.Fatalf("call answered %q, %v; want ok", got, err)
	}

	_ = conn.Close() // waits until the connection is done
	req, _ := NewCall(Int64ID(5), "late", nil)
	if run, err := conn.Accept(req, true); !errors.Is(err, ErrServerClosing) || run != nil {
		t.Fatalf("Accept after Close = %v, %v; want ErrServerClosing", run != nil, err)
	}
}
