package h2cork

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a net.Conn that keeps a copy of every Write it is given.
type recorder struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, bytes.Clone(p))
	if r.Conn == nil {
		return len(p), nil
	}
	return r.Conn.Write(p)
}

func (r *recorder) SetWriteDeadline(t time.Time) error {
	if r.Conn == nil {
		return nil
	}
	return r.Conn.SetWriteDeadline(t)
}

func (r *recorder) Close() error {
	if r.Conn == nil {
		return nil
	}
	return r.Conn.Close()
}

func (r *recorder) taken() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

type frame struct {
	typ, flags byte
	stream     uint32
}

// frames splits the bytes of one write into whole frames; it fails the
// test if the write does not hold whole frames (after the preface).
func frames(t *testing.T, w []byte) []frame {
	t.Helper()
	w = bytes.TrimPrefix(w, []byte(preface))
	var out []frame
	for len(w) > 0 {
		if len(w) < frameHeaderLen {
			t.Fatalf("write ends inside a frame header: % x", w)
		}
		n := int(w[0])<<16 | int(w[1])<<8 | int(w[2])
		out = append(out, frame{typ: w[3], flags: w[4], stream: uint32(w[5]&0x7f)<<24 | uint32(w[6])<<16 | uint32(w[7])<<8 | uint32(w[8])})
		if len(w) < frameHeaderLen+n {
			break // the payload continues in the next write
		}
		w = w[frameHeaderLen+n:]
	}
	return out
}

// TestRealClient runs net/http's HTTP/2 client over Conn against a real
// h2c server: POSTs and GETs get their answers, and every POST's HEADERS
// frame went out in the same write as DATA of its stream.
func TestRealClient(t *testing.T) {
	// Only a write, never the timer, may send a held frame here: the race
	// detector and a busy machine can stretch the microseconds between a
	// request's HEADERS and DATA past HoldFor.
	defer func(d time.Duration) { holdFor = d }(holdFor)
	holdFor = time.Minute
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Proto", r.Proto)
		w.Write(append([]byte(r.Method+" "), b...))
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()

	var rec *recorder
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		rec = &recorder{Conn: c}
		return Client(rec), nil
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	body := strings.Repeat("x", 1000)
	for i := range 20 {
		method := http.MethodPost
		var rd io.Reader = strings.NewReader(body)
		want := "POST " + body
		if i%4 == 3 {
			method, rd, want = http.MethodGet, nil, "GET "
		}
		req, _ := http.NewRequest(method, srv.URL, rd)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %d: %v", method, i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != want || resp.Proto != "HTTP/2.0" {
			t.Fatalf("%s %d: %s %q, %v; want HTTP/2.0 %q", method, i, resp.Proto, got, err, want)
		}
	}

	posts, gets, grants := 0, 0, 0
	for _, w := range rec.taken() {
		fs := frames(t, w)
		if slices.ContainsFunc(fs, func(f frame) bool { return f.typ == frameWindowUpdate }) {
			grants++
			// The connection's first write (preface, SETTINGS, the
			// window's raise) aside, credit leaves with a request.
			if !slices.ContainsFunc(fs, func(f frame) bool { return f.typ == frameHeaders || f.typ == 0x4 }) {
				t.Errorf("a write of WINDOW_UPDATE frames alone: %+v", fs)
			}
		}
		for i, f := range fs {
			if f.typ != frameHeaders {
				continue
			}
			if f.flags&flagEndStream != 0 {
				gets++
				continue
			}
			posts++
			if !slices.ContainsFunc(fs[i+1:], func(g frame) bool { return g.typ == frameData && g.stream == f.stream }) {
				t.Errorf("a POST's HEADERS frame was written without its DATA after it: write of %d frames: %+v", len(fs), fs)
			}
		}
	}
	if posts != 15 || gets != 5 {
		t.Errorf("saw %d POST and %d GET header frames, want 15 and 5", posts, gets)
	}
	// 20 answers of ≈ 1 KB: the client granted credit for every 4 KiB
	// it read (and raised the connection's window in its first write).
	if grants < 4 {
		t.Errorf("saw %d writes with WINDOW_UPDATE frames, want at least 4", grants)
	}
}

// headers is a HEADERS frame on stream 1 with END_HEADERS and the given
// extra flags, with a 3-byte payload.
func headers(flags byte) []byte {
	return []byte{0, 0, 3, frameHeaders, flagEndHeaders | flags, 0, 0, 0, 1, 0x82, 0x86, 0x84}
}

func data(end bool) []byte {
	f := byte(0)
	if end {
		f = flagEndStream
	}
	return []byte{0, 0, 2, 0x0, f, 0, 0, 0, 1, 'h', 'i'}
}

// grant is a WINDOW_UPDATE frame for stream, granting 4 KiB.
func grant(stream byte) []byte {
	return []byte{0, 0, 4, frameWindowUpdate, 0, 0, 0, 0, stream, 0, 0, 0x10, 0}
}

// TestHeldLeaveAlone: a HEADERS frame whose DATA never comes, and a grant
// no request follows, are sent by the timer.
func TestHeldLeaveAlone(t *testing.T) {
	for name, h := range map[string][]byte{"headers": headers(0), "grant": grant(0)} {
		t.Run(name, func(t *testing.T) { testHeldLeavesAlone(t, h) })
	}
}

func testHeldLeavesAlone(t *testing.T, h []byte) {
	rec := &recorder{}
	c := Client(rec)
	if _, err := c.Write([]byte(preface)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Write(h); n != len(h) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := len(rec.taken()); got != 1 {
		t.Fatalf("%d writes right after the frame, want 1 (the preface): the frame was not held", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.taken()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("held frame never sent")
		}
		time.Sleep(time.Millisecond)
	}
	if w := rec.taken()[1]; !bytes.Equal(w, h) {
		t.Fatalf("timer sent % x, want % x", w, h)
	}
}

// TestWhatIsNotHeld: frames that end a stream, incomplete header blocks,
// writes that end inside a frame, and connections that are not HTTP/2
// pass through at once.
func TestWhatIsNotHeld(t *testing.T) {
	cont := []byte{0, 0, 1, frameContinuation, flagEndHeaders, 0, 0, 0, 1, 0x88}
	settingsAck := []byte{0, 0, 0, 0x4, 0x1, 0, 0, 0, 0}
	noEnd := []byte{0, 0, 3, frameHeaders, 0, 0, 0, 0, 1, 0x82, 0x86, 0x84}
	for _, tc := range []struct {
		name   string
		writes [][]byte
		held   []bool // per write
	}{
		{"headers ending the stream", [][]byte{[]byte(preface), headers(flagEndStream)}, []bool{false, false}},
		{"headers then data", [][]byte{[]byte(preface), headers(0), data(true)}, []bool{false, true, false}},
		{"headers without END_HEADERS", [][]byte{[]byte(preface), noEnd}, []bool{false, false}},
		{"continuation ends the block", [][]byte{[]byte(preface), noEnd, cont}, []bool{false, false, true}},
		{"continuation of a GET", [][]byte{[]byte(preface), append(noEnd[:4:4], flagEndStream, 0, 0, 0, 1, 0x82, 0x86, 0x84), cont}, []bool{false, false, false}},
		{"write ends inside the header block", [][]byte{[]byte(preface), headers(0)[:10]}, []bool{false, false}},
		{"frame header split across writes", [][]byte{[]byte(preface), headers(0)[:4], headers(0)[4:]}, []bool{false, false, true}},
		{"preface split across writes", [][]byte{[]byte(preface[:5]), append([]byte(preface[5:]), headers(0)...)}, []bool{false, true}},
		{"headers, then a SETTINGS acknowledgement", [][]byte{[]byte(preface), append(headers(0), settingsAck...)}, []bool{false, true}},
		{"headers and data in one write", [][]byte{[]byte(preface), append(headers(0), data(false)...)}, []bool{false, false}},
		{"control frames join held headers", [][]byte{[]byte(preface), headers(0), settingsAck, settingsAck, data(true)}, []bool{false, true, true, true, false}},
		{"control frames alone pass", [][]byte{[]byte(preface), settingsAck}, []bool{false, false}},
		{"a grant waits for the next request", [][]byte{[]byte(preface), grant(0), headers(0), data(true)}, []bool{false, true, true, false}},
		{"grants for the connection and a stream", [][]byte{[]byte(preface), append(grant(0), grant(1)...), headers(flagEndStream)}, []bool{false, true, false}},
		{"grants join held headers", [][]byte{[]byte(preface), headers(0), grant(0), data(true)}, []bool{false, true, true, false}},
		{"a grant with another control frame passes", [][]byte{[]byte(preface), append(grant(0), settingsAck...)}, []bool{false, false}},
		{"a grant split across writes passes", [][]byte{[]byte(preface), grant(0)[:5], grant(0)[5:]}, []bool{false, false, false}},
		{"held headers leave with the next headers' write", [][]byte{[]byte(preface), headers(0), headers(flagEndStream)}, []bool{false, true, false}},
		{"not HTTP/2", [][]byte{[]byte("POST / HTTP/1.1\r\n\r\n"), headers(0)}, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			c := Client(rec)
			defer c.Close()
			var sent []byte
			for i, w := range tc.writes {
				before := len(rec.taken())
				if n, err := c.Write(w); n != len(w) || err != nil {
					t.Fatalf("write %d: %d, %v", i, n, err)
				}
				sent = append(sent, w...)
				if held := len(rec.taken()) == before; held != tc.held[i] {
					t.Fatalf("write %d held: %v, want %v", i, held, tc.held[i])
				}
			}
			c.Close()
			if got := bytes.Join(rec.taken(), nil); !bytes.Equal(got, sent) {
				t.Fatalf("bytes on the wire differ from those written:\n got % x\nwant % x", got, sent)
			}
		})
	}
}

// TestWriteError: a write that fails after held bytes reports the
// error, and so does every later write.
func TestWriteError(t *testing.T) {
	rec := &recorder{}
	c := Client(rec)
	c.Write([]byte(preface))
	c.Write(headers(0))
	boom := errors.New("boom")
	rec.mu.Lock()
	rec.fail = boom
	rec.mu.Unlock()
	if _, err := c.Write(data(true)); !errors.Is(err, boom) {
		t.Fatalf("write after held headers: %v, want boom", err)
	}
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if _, err := c.Write(data(true)); !errors.Is(err, boom) {
		t.Fatalf("later write: %v, want the first error again", err)
	}
}

// TestCloseDoesNotHang: held bytes that the peer does not read do not
// make Close block, whether Close or the timer tries to send them.
func TestCloseDoesNotHang(t *testing.T) {
	t.Run("Close sends", func(t *testing.T) { closeDoesNotHang(t, 0) })
	t.Run("the timer sends", func(t *testing.T) {
		defer func(d time.Duration) { holdFor = d }(holdFor)
		holdFor = time.Microsecond
		closeDoesNotHang(t, 50*time.Millisecond) // the timer's write is stuck by then
	})
}

func closeDoesNotHang(t *testing.T, wait time.Duration) {
	a, b := net.Pipe()
	defer b.Close()
	go io.ReadFull(b, make([]byte, len(preface))) // then stops reading
	c := Client(a)
	if _, err := c.Write([]byte(preface)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(headers(0)); err != nil { // held
		t.Fatal(err)
	}
	time.Sleep(wait)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on held bytes the peer does not read")
	}
}
