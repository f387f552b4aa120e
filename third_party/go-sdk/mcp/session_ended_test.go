// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSessionEnded: ServerOptions.SessionEnded and ClientOptions.SessionEnded
// are called once per session whose connection ended, whichever side
// closed it, with Ended already true, and a callback may wait for the
// session (it runs outside the connection's lock).
func TestSessionEnded(t *testing.T) {
	for _, closer := range []string{"client", "server"} {
		t.Run(closer+" closes", func(t *testing.T) {
			ctx := context.Background()
			type ended struct {
				ss    *ServerSession
				cs    *ClientSession
				wasOn bool
			}
			got := make(chan ended, 4)
			server := NewServer(testImpl, &ServerOptions{SessionEnded: func(ss *ServerSession) {
				on := ss.Ended()
				_ = ss.Wait()
				got <- ended{ss: ss, wasOn: on}
			}})
			client := NewClient(testImpl, &ClientOptions{SessionEnded: func(cs *ClientSession) {
				on := cs.Ended()
				_ = cs.Wait()
				got <- ended{cs: cs, wasOn: on}
			}})
			st, ct := NewInMemoryTransports()
			ss, err := server.Connect(ctx, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := client.Connect(ctx, ct, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ss.Ended() || cs.Ended() {
				t.Fatal("a live session reports Ended")
			}
			if closer == "client" {
				_ = cs.Close()
			} else {
				_ = ss.Close()
			}
			var sawServer, sawClient bool
			for range 2 {
				select {
				case e := <-got:
					switch {
					case !e.wasOn:
						t.Error("SessionEnded called before Ended reports true")
					case e.ss == ss && !sawServer:
						sawServer = true
					case e.cs == cs && !sawClient:
						sawClient = true
					default:
						t.Errorf("SessionEnded called again, or with another session: %+v", e)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("SessionEnded not called for both sessions (server %v, client %v)", sawServer, sawClient)
				}
			}
			if !ss.Ended() || !cs.Ended() {
				t.Error("an ended session does not report Ended")
			}
			select {
			case e := <-got:
				t.Errorf("SessionEnded called a third time: %+v", e)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// TestSessionEndedAfterFailedConnect: a client session whose initialize
// fails has ended too, and the callback says so.
func TestSessionEndedAfterFailedConnect(t *testing.T) {
	ended := make(chan *ClientSession, 1)
	client := NewClient(testImpl, &ClientOptions{SessionEnded: func(cs *ClientSession) { ended <- cs }})
	st, ct := NewInMemoryTransports()
	// A peer that closes at once: the client's initialize gets no answer.
	conn, err := st.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Connect(ctx, ct, nil); err == nil {
		t.Fatal("Connect to a closed peer succeeded")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect waited for its deadline instead of seeing the peer gone: %v", err)
	}
	select {
	case cs := <-ended:
		if !cs.Ended() {
			t.Error("the failed session does not report Ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SessionEnded not called for a session whose Connect failed")
	}
}
