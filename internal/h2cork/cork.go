// Package h2cork makes an HTTP/2 client connection send a request's
// HEADERS frame in the same write as the DATA frame that follows it.
//
// net/http's HTTP/2 client flushes a request's HEADERS frame to the
// connection on its own, then writes the body's DATA frames in a second
// write (golang/go#58674). On a loopback or LAN connection each write is a
// system call, a TCP segment and a wake-up of the peer, so a small POST
// (an MCP tools/call) costs two of each where one would do. The
// gateway's upstream leg makes one such request per proxied call.
//
// [Conn] wraps a cleartext (h2c, prior knowledge) client connection and
// follows the frames written to it. A write that completes a HEADERS
// block whose stream stays open for a body, with no DATA frame after it,
// is held, and goes out with the next write, as one write; if no write follows within
// [HoldFor], a timer sends it alone. The flow-control credit the client
// grants as it reads responses (WINDOW_UPDATE frames, a write of their
// own) waits for the next write the same way. Everything else passes
// through at once, so the bytes on the wire and their order are unchanged: only
// where the TCP segments break moves.
package h2cork

import (
	"net"
	"sync"
	"time"
)

// HoldFor bounds how long a HEADERS frame waits for its DATA frame. The
// client writes the body right after the headers, so the wait normally
// ends within microseconds; the bound only matters for a body that is
// slow to produce or a stream waiting for flow-control credit.
//
// It also bounds how long a write of WINDOW_UPDATE frames alone waits for
// the next write. net/http's client grants the server credit for every
// 4 KiB of response it reads, a write of its own that wakes the server
// for nothing it must act on at once: the client's windows start at
// 1 GiB for the connection and 4 MiB for a stream, far beyond what a
// server sends in HoldFor, so the grant can leave with the next request
// (under load, microseconds later) without ever holding the server back.
const HoldFor = 500 * time.Microsecond

// holdFor is HoldFor; tests lengthen it.
var holdFor = HoldFor

// maxHeld bounds the bytes held: a larger block is sent at once.
const maxHeld = 64 << 10

// preface is what an HTTP/2 client sends first (RFC 9113, section 3.4).
const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Frame types and flags the tracker needs (RFC 9113, section 6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameWindowUpdate = 0x8
	frameContinuation = 0x9
	flagEndStream     = 0x1
	flagEndHeaders    = 0x4
	frameHeaderLen    = 9
)

// Conn is a client connection whose request HEADERS frames leave with
// their first DATA frame. Create it with [Client].
type Conn struct {
	net.Conn

	mu    sync.Mutex
	t     tracker
	held  []byte
	timer *time.Timer
	err   error // a failed timer-sent write: returned by the next Write
}

// Client wraps c, a connection on which an HTTP/2 client is about to
// speak cleartext HTTP/2 with prior knowledge. If the first bytes written
// are not the HTTP/2 client preface, the wrapper passes every write
// through unchanged.
func Client(c net.Conn) *Conn {
	cc := &Conn{Conn: c}
	cc.t.preface = len(preface)
	return cc
}

// Write implements [net.Conn].
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	hold, control, grant := c.t.scan(p)
	// A write of control frames only (the read loop acknowledging
	// SETTINGS or PING) joins held headers rather than sending them
	// without their DATA frame; the timer still bounds the wait from the
	// first hold. A write of WINDOW_UPDATE frames only (the read loop
	// granting flow-control credit for a response it read) is held even
	// alone, for the next request's write: see [HoldFor].
	hold = hold || grant || control && len(c.held) > 0
	if hold && len(c.held)+len(p) <= maxHeld {
		// The timer runs from the first held write: later ones (another
		// request's headers before the first one's body) do not extend it.
		if len(c.held) == 0 {
			if c.timer == nil {
				c.timer = time.AfterFunc(holdFor, c.flushHeld)
			} else {
				c.timer.Reset(holdFor)
			}
		}
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if len(c.held) == 0 {
		return c.Conn.Write(p)
	}
	// One write of the held frames and p. Copying p (a request's first
	// DATA frame, about its body's size) costs far less than a second
	// system call, and a single Write keeps this independent of the
	// wrapped connection's type (writev is only for *net.TCPConn).
	c.timer.Stop()
	held := len(c.held)
	c.held = append(c.held, p...)
	n, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	if cap(c.held) > maxHeld {
		c.held = nil // a large first DATA frame: do not keep its buffer
	}
	if err != nil {
		// The held bytes were reported written by an earlier Write; the
		// connection is broken either way, so report this write's share.
		c.err = err
		return max(0, n-held), err
	}
	return len(p), nil
}

// flushHeld sends held bytes whose DATA frame did not come within
// HoldFor.
func (c *Conn) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 || c.err != nil {
		return
	}
	if _, err := c.Conn.Write(c.held); err != nil {
		c.err = err
	}
	c.held = c.held[:0]
}

// closeWriteWait bounds how long Close tries to send held bytes: a peer
// that stopped reading must not make Close block, as a plain connection's
// Close never does.
const closeWriteWait = 100 * time.Millisecond

// Close implements [net.Conn]. Held bytes are sent first, as a write
// would have sent them before the close, if the connection takes them
// within closeWriteWait.
func (c *Conn) Close() error {
	// The deadline also ends a write in progress (the timer's, under mu).
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeWriteWait))
	c.sendHeldBeforeClose()
	return c.Conn.Close()
}

func (c *Conn) sendHeldBeforeClose() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if len(c.held) > 0 && c.err == nil {
		_, _ = c.Conn.Write(c.held)
	}
	c.held = nil
}

// tracker follows the frame boundaries of the bytes a client writes.
type tracker struct {
	off     bool // not HTTP/2 after all: never hold
	preface int  // preface bytes still expected
	hdr     [frameHeaderLen]byte
	hdrN    int // bytes of hdr filled
	rem     int // payload bytes of the current frame still to come

	inBlock  bool // a header block awaits its CONTINUATION frames
	openBody bool // the current header block leaves its stream open
}

// scan consumes p, one write. hold reports whether it should be held: it
// ends on a frame boundary, outside a header block, and it completed a
// header block of a stream that stays open for a body, with no DATA frame
// after it. Control frames after the block (a SETTINGS or PING
// acknowledgement the client wrote in the same flush) do not matter.
// control reports whether p is whole frames none of which is DATA,
// HEADERS or CONTINUATION; grant, whether they are all WINDOW_UPDATE.
func (t *tracker) scan(p []byte) (hold, control, grant bool) {
	if t.off {
		return false, false, false
	}
	awaiting := false
	control = t.preface == 0 && t.rem == 0 && t.hdrN == 0 && len(p) > 0
	grant = control
	for len(p) > 0 {
		switch {
		case t.preface > 0:
			n := min(t.preface, len(p))
			done := len(preface) - t.preface
			if string(p[:n]) != preface[done:done+n] {
				t.off = true
				return false, false, false
			}
			t.preface -= n
			p = p[n:]
		case t.rem > 0:
			n := min(t.rem, len(p))
			t.rem -= n
			p = p[n:]
		default:
			n := copy(t.hdr[t.hdrN:], p)
			t.hdrN += n
			p = p[n:]
			if t.hdrN < frameHeaderLen {
				return false, false, false
			}
			t.hdrN = 0
			t.rem = int(t.hdr[0])<<16 | int(t.hdr[1])<<8 | int(t.hdr[2])
			typ, flags := t.hdr[3], t.hdr[4]
			if typ == frameData || typ == frameHeaders || typ == frameContinuation {
				control = false
			}
			if typ != frameWindowUpdate {
				grant = false
			}
			switch typ {
			case frameHeaders:
				t.openBody = flags&flagEndStream == 0
				t.inBlock = flags&flagEndHeaders == 0
				awaiting = awaiting || (!t.inBlock && t.openBody)
			case frameContinuation:
				if flags&flagEndHeaders != 0 && t.inBlock {
					t.inBlock = false
					awaiting = awaiting || t.openBody
				}
			case frameData:
				awaiting = false
			}
		}
	}
	boundary := t.preface == 0 && t.rem == 0 && t.hdrN == 0
	return awaiting && boundary && !t.inBlock, control && boundary, grant && boundary
}
