//go:build !nochdb

package chdb

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"unsafe"
)

// conn is one chDB connection. Its methods are not safe for concurrent
// use: a chDB connection runs one statement at a time.
type conn struct {
	l *lib
	h *unsafe.Pointer // chdb_connection *
}

// connectArgs opens a connection with ClickHouse command-line arguments
// ("--path=...", "--readonly=1", ...). The argument strings are Go
// memory the engine only reads during the call (it parses them into its
// own settings), as with cgo's rules for passed pointers.
func (l *lib) connectArgs(args ...string) (*conn, error) {
	argv := make([]*byte, 0, len(args)+1)
	keep := make([][]byte, 0, len(args)+1)
	for _, a := range append([]string{"clickhouse"}, args...) {
		b := append([]byte(a), 0)
		keep = append(keep, b)
		argv = append(argv, &b[0])
	}
	h := l.connect(int32(len(argv)), argv)
	runtime.KeepAlive(keep)
	if h == nil || *h == nil {
		return nil, fmt.Errorf("chdb_connect refused the arguments %q (the engine reports no reason)", args)
	}
	return &conn{l: l, h: h}, nil
}

func (c *conn) close() {
	if c.h != nil {
		c.l.closeConn(c.h)
		c.h = nil
	}
}

// exec runs query and returns its output in format, and the rows it wrote.
func (c *conn) exec(query []byte, format string) (out []byte, written uint64, err error) {
	if c.h == nil {
		return nil, 0, errors.New("connection closed")
	}
	f := []byte(format)
	var qp, fp []byte = query, f
	if len(qp) == 0 {
		qp = []byte{0}
	}
	if len(fp) == 0 {
		fp = []byte{0}
	}
	res := c.l.queryN(*c.h, qp, uintptr(len(query)), fp, uintptr(len(f)))
	runtime.KeepAlive(qp)
	runtime.KeepAlive(fp)
	if res == nil {
		return nil, 0, nil
	}
	defer c.l.destroyResult(res)
	if msg := goString(c.l.resultError(res)); msg != "" {
		return nil, 0, engineError(msg)
	}
	written = c.l.resultRowsWrite(res)
	if n := c.l.resultLength(res); n > 0 {
		if p := c.l.resultBuffer(res); p != nil {
			out = make([]byte, n)
			copy(out, unsafe.Slice(p, n))
		}
	}
	return out, written, nil
}

// insertStream is a streaming INSERT: the statement is sent first, the
// data follows in chunks. The connection runs nothing else until it is
// finished or cancelled.
type insertStream struct {
	l *lib
	s unsafe.Pointer // chdb_insert_stream
}

// insert begins a streaming INSERT of data in format; query is the
// INSERT without FORMAT and data.
func (c *conn) insert(query, format string) (*insertStream, error) {
	if c.h == nil {
		return nil, errors.New("connection closed")
	}
	q, f := append([]byte(query), 0), append([]byte(format), 0)
	s := c.l.streamInsertN(*c.h, q, uintptr(len(query)), f, uintptr(len(format)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if s == nil {
		return nil, errors.New("chdb_stream_insert failed")
	}
	st := &insertStream{l: c.l, s: s}
	if msg := goString(c.l.streamError(s)); msg != "" {
		c.l.streamDestroy(s)
		return nil, engineError(msg)
	}
	return st, nil
}

// append sends one chunk; the engine copies it.
func (s *insertStream) append(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	rc := s.l.streamAppend(s.s, data, uintptr(len(data)))
	runtime.KeepAlive(data)
	if rc != 0 {
		if msg := goString(s.l.streamError(s.s)); msg != "" {
			return engineError(msg)
		}
		return errors.New("chdb_stream_append failed")
	}
	return nil
}

// done commits the insert and frees the stream.
func (s *insertStream) done() error {
	defer s.l.streamDestroy(s.s)
	res := s.l.streamDone(s.s)
	if res == nil {
		if msg := goString(s.l.streamError(s.s)); msg != "" {
			return engineError(msg)
		}
		return nil
	}
	defer s.l.destroyResult(res)
	if msg := goString(s.l.resultError(res)); msg != "" {
		return engineError(msg)
	}
	return nil
}

// cancel abandons the insert and frees the stream.
func (s *insertStream) cancel() {
	s.l.streamCancel(s.s)
	s.l.streamDestroy(s.s)
}

// classify reports the statement count and class of sql.
func (c *conn) classify(sql []byte) (count int, class uint32, err error) {
	if c.h == nil {
		return 0, 0, errors.New("connection closed")
	}
	a := queryAnalysis{StructSize: uint32(unsafe.Sizeof(queryAnalysis{}))}
	p := sql
	if len(p) == 0 {
		p = []byte{0}
	}
	if rc := c.l.classifyN(*c.h, p, uintptr(len(sql)), nil, 0, &a); rc != 0 {
		return 0, 0, fmt.Errorf("chdb_classify_query_n failed (%d)", rc)
	}
	runtime.KeepAlive(p)
	return int(a.StatementCount), a.QueryClass, nil
}

// Error is an error the engine reported, trimmed of stack traces.
type Error struct {
	// Code is the ClickHouse error code (396), or 0 when the message
	// names none.
	Code int
	// Name is the error's name (TOO_MANY_ROWS_OR_BYTES), or "".
	Name string
	// Message is the engine's message.
	Message string
}

func (e *Error) Error() string { return e.Message }

var (
	errCode = regexp.MustCompile(`^Code: (\d+)\. `)
	errName = regexp.MustCompile(`\(([A-Z][A-Z0-9_]+)\)$`)
)

// maxErrorLen bounds an engine message (syntax errors list every
// expected token).
const maxErrorLen = 2000

func engineError(msg string) error {
	if i := strings.Index(msg, "Stack trace"); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(msg)
	msg = strings.TrimSuffix(msg, ":")
	msg = strings.TrimSpace(msg)
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen] + "..."
	}
	e := &Error{Message: msg}
	if m := errCode.FindStringSubmatch(msg); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
	}
	if m := errName.FindStringSubmatch(msg); m != nil {
		e.Name = m[1]
	}
	return e
}
