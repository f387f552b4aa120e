package vaulttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// front is a TCP proxy from a fixed loopback address to Vault that can be
// taken down and brought back. It copies bytes and knows nothing of HTTP,
// so connections behave exactly as with Vault itself, keep-alive included.
type front struct {
	addr   string // 127.0.0.1:PORT, fixed for the front's life
	target string

	mu     sync.Mutex
	ln     net.Listener          // nil while down
	gen    int                   // counts listeners, so a connection accepted before down is not kept after up
	conns  map[net.Conn]struct{} // both ends of every live connection
	closed bool
	wg     sync.WaitGroup // accept loops and copiers
}

func newFront(target string) (*front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("front proxy listen: %w", err)
	}
	f := &front{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	f.serve(ln)
	return f, nil
}

// serve runs the accept loop of ln. It must be called with f.mu held or
// before f is shared.
func (f *front) serve(ln net.Listener) {
	f.ln = ln
	f.gen++
	gen := f.gen
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by down or close
			}
			f.wg.Add(1) // this goroutine's count keeps the group above zero
			go func() {
				defer f.wg.Done()
				f.proxy(c, gen)
			}()
		}
	}()
}

// proxy connects c to the target and copies both ways until either side
// closes, or down cuts them.
func (f *front) proxy(c net.Conn, gen int) {
	up, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	if f.ln == nil || f.gen != gen { // went down meanwhile
		f.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	f.conns[c] = struct{}{}
	f.conns[up] = struct{}{}
	f.wg.Add(2)
	f.mu.Unlock()

	var once sync.Once
	done := func() {
		once.Do(func() {
			c.Close()
			up.Close()
			f.mu.Lock()
			delete(f.conns, c)
			delete(f.conns, up)
			f.mu.Unlock()
		})
	}
	pipe := func(dst, src net.Conn) {
		defer f.wg.Done()
		defer done()
		_, _ = io.Copy(dst, src)
	}
	go pipe(up, c)
	go pipe(c, up)
}

// down closes the listener and every live connection.
func (f *front) down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
}

// up listens on the front's address again. Binding can fail briefly while
// the kernel releases the port, so it retries for a few seconds.
func (f *front) up() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("front proxy used after the test ended")
	}
	if f.ln != nil {
		return nil
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var ln net.Listener
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			f.serve(ln)
			return nil
		}
	}
	return fmt.Errorf("bringing the front proxy back on %s: %w", f.addr, err)
}

// close takes the front down for good and waits for its goroutines.
func (f *front) close() {
	f.down()
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.wg.Wait()
}
