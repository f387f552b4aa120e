// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by the license
// that can be found in the LICENSE file.

package jsonrpc2

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// chanRW is a connection's transport over channels: the test sends
// messages in and reads the connection's writes.
type chanRW struct {
	in     chan Message
	out    chan Message
	closed chan struct{}
	once   sync.Once
}

func newChanRW() *chanRW {
	return &chanRW{in: make(chan Message), out: make(chan Message, 16), closed: make(chan struct{})}
}

func (rw *chanRW) Read(ctx context.Context) (Message, error) {
	select {
	case m := <-rw.in:
		return m, nil
	case <-rw.closed:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (rw *chanRW) Write(ctx context.Context, m Message) error {
	select {
	case rw.out <- m:
		return nil
	case <-rw.closed:
		return io.ErrClosedPipe
	}
}

func (rw *chanRW) Close() error {
	rw.once.Do(func() { close(rw.closed) })
	return nil
}

// TestHandlerChain: the handler runs on queued requests one at a time, in
// order; the next starts only when the current one is released (Async) or
// returns, and a request cancelled while queued is answered with its
// cancellation and does not stop the chain.
func TestHandlerChain(t *testing.T) {
	rw := newChanRW()
	started := make(chan string, 8)
	proceed := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "d": make(chan struct{})}
	var conn *Connection
	conn = NewConnection(context.Background(), ConnectionConfig{
		Reader: rw, Writer: rw, Closer: rw,
		Bind: func(*Connection) Handler {
			return HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
				started <- req.Method
				switch req.Method {
				case "a": // released early, then waits
					Async(ctx)
					<-proceed["a"]
				case "b", "d": // never released: holds the queue until it returns
					<-proceed[req.Method]
				}
				return req.Method, nil
			})
		},
		Preempter: cancelPreempter{conn: &conn},
	})
	defer conn.Close()
	defer rw.Close()

	call := func(id int64, method string) {
		t.Helper()
		req, err := NewCall(Int64ID(id), method, nil)
		if err != nil {
			t.Fatal(err)
		}
		rw.in <- req
	}
	expectStart := func(want string) {
		t.Helper()
		select {
		case got := <-started:
			if got != want {
				t.Fatalf("handler started on %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("handler did not start on %q", want)
		}
	}
	expectNoStart := func() {
		t.Helper()
		select {
		case got := <-started:
			t.Fatalf("handler started on %q while the request before it held the queue", got)
		case <-time.After(50 * time.Millisecond):
		}
	}
	expectAnswer := func(id int64, result string, wantErr error) {
		t.Helper()
		select {
		case m := <-rw.out:
			r, ok := m.(*Response)
			if !ok || r.ID != Int64ID(id) {
				t.Fatalf("wrote %#v, want the answer to %d", m, id)
			}
			if wantErr != nil {
				if !errors.Is(r.Error, wantErr) && (r.Error == nil || r.Error.Error() != wantErr.Error()) {
					t.Fatalf("answer to %d: error %v, want %v", id, r.Error, wantErr)
				}
				return
			}
			if r.Error != nil || string(r.Result) != `"`+result+`"` {
				t.Fatalf("answer to %d: %s, %v; want %q", id, r.Result, r.Error, result)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no answer to %d", id)
		}
	}

	call(1, "a")
	expectStart("a")
	call(2, "b") // a released itself: b starts while a runs
	expectStart("b")
	call(3, "c") // b holds the queue
	call(4, "d")
	expectNoStart()
	// c is cancelled while queued (the preempter cancels it by ID).
	cancelReq, err := NewNotification("cancel", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelReq.Params = []byte(`3`)
	rw.in <- cancelReq
	expectNoStart()
	close(proceed["b"]) // b returns: c is answered cancelled, then d starts
	expectAnswer(2, "b", nil)
	expectAnswer(3, "", context.Canceled)
	expectStart("d")
	close(proceed["a"])
	expectAnswer(1, "a", nil)
	close(proceed["d"])
	expectAnswer(4, "d", nil)
	call(5, "e") // the chain went idle and starts again
	expectStart("e")
	expectAnswer(5, "e", nil)
}

// cancelPreempter cancels, for a "cancel" notification, the request whose
// integer ID is its params.
type cancelPreempter struct{ conn **Connection }

func (p cancelPreempter) Preempt(ctx context.Context, req *Request) (any, error) {
	if req.Method != "cancel" {
		return nil, ErrNotHandled
	}
	var id int64
	for _, b := range req.Params {
		id = id*10 + int64(b-'0')
	}
	(*p.conn).Cancel(Int64ID(id))
	return nil, nil
}
