//go:build !nochdb

package chdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
)

// Backend is an [audit.Backend] on the embedded engine.
type Backend struct {
	l   *lib
	dir string
	// sem holds the right to run a statement: one at a time, waited for
	// with a context.
	sem  chan struct{}
	sess *conn // nil once closed; guarded by sem
	nice int   // Options.Nice
}

var _ audit.Backend = (*Backend)(nil)

// The engine of this process: chDB runs one per process, on one data
// directory, shared by every connection.
var (
	engineMu    sync.Mutex
	engineDir   string
	engineConns int
)

// Open loads libchdb.so (once per process) and opens a session on the
// engine with its data in opts.DataDir. It fails, saying how to install
// the library, when the library is missing, and when the engine of this
// process already runs on another data directory.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if opts.DataDir == "" {
		return nil, errors.New("opening embedded ClickHouse engine: no data directory configured")
	}
	if opts.Nice < 0 || opts.Nice > 19 {
		return nil, fmt.Errorf("opening embedded ClickHouse engine: nice %d: want 0 (unchanged) to 19", opts.Nice)
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("opening embedded ClickHouse engine: data directory %s: %w", opts.DataDir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("opening embedded ClickHouse engine: %w", err)
	}
	path, looked := opts.libPath()
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening embedded ClickHouse engine: library libchdb.so not found (looked at %s): install it with `make chdb` (npm package @chdb/lib-linux-x64-gnu), or set %s to its path", looked, EnvLib)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := loadLib(path)
	if err != nil {
		return nil, fmt.Errorf("opening embedded ClickHouse engine: loading %s: %w (reinstall it with `make chdb`)", path, err)
	}

	engineMu.Lock()
	defer engineMu.Unlock()
	if engineConns > 0 && engineDir != dir {
		return nil, fmt.Errorf("opening embedded ClickHouse engine on %s: this process's engine already runs on %s; close that backend first", dir, engineDir)
	}
	// Inserts run on one thread: the engine shares the gateway's cores,
	// and should not take all of them for a batch while calls wait.
	// Auditors' queries run on their own sessions, without this limit.
	sess, err := l.connectArgs("--path="+dir, "--max_threads=1", "--max_insert_threads=1")
	if err != nil {
		return nil, fmt.Errorf("opening embedded ClickHouse engine on %s: %w", dir, err)
	}
	if _, err := lowerEnginePriority(opts.Nice); err != nil {
		sess.close()
		return nil, fmt.Errorf("opening embedded ClickHouse engine on %s: %w", dir, err)
	}
	engineDir = dir
	engineConns++
	b := &Backend{l: l, dir: dir, sem: make(chan struct{}, 1), sess: sess, nice: opts.Nice}
	return b, nil
}

// Name implements [audit.Backend]: "chdb:" and the data directory.
func (b *Backend) Name() string { return "chdb:" + b.dir }

// Close closes the session; the data stays in the data directory. It
// waits for a running statement.
func (b *Backend) Close() error {
	b.sem <- struct{}{}
	defer func() { <-b.sem }()
	if b.sess == nil {
		return nil
	}
	b.sess.close()
	b.sess = nil
	engineMu.Lock()
	engineConns--
	engineMu.Unlock()
	return nil
}

// errClosed is returned by a closed Backend.
var errClosed = errors.New("embedded ClickHouse engine: backend closed")

// acquire waits for the right to run a statement.
func (b *Backend) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.sess == nil {
		<-b.sem
		return errClosed
	}
	return nil
}

func (b *Backend) release() { <-b.sem }

// Exec implements [audit.Backend].
func (b *Backend) Exec(ctx context.Context, stmt string) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	err := onEngineThread(b.nice, func() error {
		_, _, err := b.sess.exec([]byte(stmt), "TabSeparated")
		return err
	})
	if err != nil {
		return fmt.Errorf("executing %s: %w", summarize(stmt), err)
	}
	return nil
}

// tableName is what Insert accepts as a table: name or database.name.
var tableName = regexp.MustCompile("^(`[^`\\\\]+`|[A-Za-z_][A-Za-z0-9_]*)(\\.(`[^`\\\\]+`|[A-Za-z_][A-Za-z0-9_]*))?$")

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// insertChunk is how much encoded data Insert hands the engine at a time:
// the engine parses one chunk while the next is encoded.
const insertChunk = 1 << 20

// Insert implements [audit.Backend]: a streaming INSERT ... FORMAT
// JSONEachRow with insert_deduplication_token, which the tables'
// non_replicated_deduplication_window turns into exactly-once. Each line
// is the event's JSON (the columns of chschema.EventColumns, times in
// UTC).
func (b *Backend) Insert(ctx context.Context, table string, events []audit.Event, token string) error {
	return b.insert(ctx, table, token, len(events), "", func(buf []byte, i int) ([]byte, error) {
		out, err := appendEvent(buf, &events[i])
		if err != nil {
			return nil, fmt.Errorf("encoding event %s: %w", events[i].EventID, err)
		}
		return out, nil
	})
}

// InsertJSON implements [audit.RawInserter]: rows are events as
// json.Marshal wrote them (the spool's records), inserted as they are.
func (b *Backend) InsertJSON(ctx context.Context, table string, rows [][]byte, token string) error {
	// encoding/json writes times as RFC 3339 and empty lists as null.
	return b.insert(ctx, table, token, len(rows), ", date_time_input_format = 'best_effort', input_format_null_as_default = 1",
		func(buf []byte, i int) ([]byte, error) {
			return append(append(buf, rows[i]...), '\n'), nil
		})
}

// insert streams n rows (appended to the buffer by row) into table.
func (b *Backend) insert(ctx context.Context, table, token string, n int, settings string, row func(buf []byte, i int) ([]byte, error)) (err error) {
	if !tableName.MatchString(table) {
		return fmt.Errorf("inserting into %q: not a table name", table)
	}
	if n == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("inserting %d events into %s: %w", n, table, err)
		}
	}()
	var q strings.Builder
	q.WriteString("INSERT INTO ")
	q.WriteString(table)
	q.WriteString(" SETTINGS ")
	if token != "" {
		q.WriteString("insert_deduplication_token = ")
		q.WriteString(quoteString(token))
		q.WriteString(", ")
	}
	// The views' blocks are deduplicated too (see
	// schema/clickhouse/002_rollup_minute.sql). A field the table lacks
	// is an error rather than silently dropped data.
	q.WriteString("deduplicate_blocks_in_dependent_materialized_views = 1, input_format_skip_unknown_fields = 0")
	q.WriteString(settings)

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	// Before every insert: the engine may have started threads since.
	_, _ = lowerEnginePriority(b.nice)
	return onEngineThread(b.nice, func() error { return b.stream(q.String(), bp, n, row) })
}

// stream runs an INSERT query, handing the engine the rows in chunks.
func (b *Backend) stream(query string, bp *[]byte, n int, row func(buf []byte, i int) ([]byte, error)) error {
	s, err := b.sess.insert(query, "JSONEachRow")
	if err != nil {
		return err
	}
	buf := (*bp)[:0]
	for i := range n {
		if buf, err = row(buf, i); err != nil {
			s.cancel()
			return err
		}
		if len(buf) >= insertChunk {
			if err := s.append(buf); err != nil {
				s.cancel()
				return err
			}
			buf = buf[:0]
		}
	}
	*bp = buf
	if err := s.append(buf); err != nil {
		s.cancel()
		return err
	}
	return s.done()
}

// Query implements [audit.Backend]. The query runs on its own session
// whose settings carry opts: readonly=1 (and then only a single
// read-only statement is accepted), max_result_rows with
// result_overflow_mode=throw, max_memory_usage, and max_execution_time
// (the shorter of opts.Timeout and the context's deadline).
func (b *Backend) Query(ctx context.Context, query string, opts audit.QueryOptions) (*audit.Result, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	defer b.release()

	args := []string{
		"--path=" + b.dir,
		"--date_time_output_format=iso",
		"--output_format_json_quote_64bit_integers=0",
		"--output_format_json_quote_denormals=0",
	}
	limit, err := opts.ExecutionLimit(ctx)
	if err != nil {
		return nil, err
	}
	if v := limit.Setting(); v != "" {
		args = append(args, "--max_execution_time="+v)
	}
	if opts.MaxRows > 0 {
		args = append(args, "--max_result_rows="+strconv.Itoa(opts.MaxRows), "--result_overflow_mode=throw")
	}
	if opts.MaxMemory > 0 {
		args = append(args, "--max_memory_usage="+strconv.FormatInt(opts.MaxMemory, 10))
	}
	if opts.ReadOnly {
		args = append(args, "--readonly=1")
	}
	var res *audit.Result
	err = onEngineThread(b.nice, func() (err error) {
		res, err = b.query(ctx, query, args, opts, limit)
		return err
	})
	return res, err
}

// query runs Query's statement on a session with args.
func (b *Backend) query(ctx context.Context, query string, args []string, opts audit.QueryOptions, limit audit.ExecutionLimit) (*audit.Result, error) {
	c, err := b.l.connectArgs(args...)
	if err != nil {
		return nil, fmt.Errorf("querying: %w", err)
	}
	defer c.close()

	q := []byte(query)
	n, class, err := c.classify(q)
	if err != nil {
		return nil, fmt.Errorf("querying: %w", err)
	}
	if n > 1 {
		return nil, fmt.Errorf("querying %s: %w", summarize(query), ErrMultipleStatements)
	}
	if opts.ReadOnly && n == 1 && class != classReadOnly {
		return nil, fmt.Errorf("querying %s: %w", summarize(query), ErrNotReadOnly)
	}
	out, _, err := c.exec(q, "JSONCompact")
	if err != nil {
		var ce *Error
		timedOut := errors.As(err, &ce) && ce.Code == audit.TimeoutExceeded
		if cerr := limit.Cause(ctx, timedOut); cerr != nil {
			return nil, fmt.Errorf("querying %s: %w: %w", summarize(query), cerr, err)
		}
		return nil, fmt.Errorf("querying %s: %w", summarize(query), err)
	}
	res, err := parseJSONCompact(out)
	if err != nil {
		return nil, fmt.Errorf("querying %s: reading the result: %w", summarize(query), err)
	}
	return res, nil
}

// Errors of Query.
var (
	// ErrMultipleStatements: Query runs one statement.
	ErrMultipleStatements = errors.New("more than one statement")
	// ErrNotReadOnly: a read-only query must be one SELECT, SHOW,
	// DESCRIBE, EXPLAIN, EXISTS or CHECK, without INTO OUTFILE.
	ErrNotReadOnly = errors.New("not a read-only statement")
)

// parseJSONCompact reads the JSONCompact output format.
func parseJSONCompact(out []byte) (*audit.Result, error) {
	res := &audit.Result{Columns: []audit.Column{}, Rows: [][]any{}}
	if len(bytes.TrimSpace(out)) == 0 {
		return res, nil
	}
	var raw struct {
		Meta []audit.Column `json:"meta"`
		Data [][]any        `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	if raw.Meta != nil {
		res.Columns = raw.Meta
	}
	for _, r := range raw.Data {
		if len(r) != len(res.Columns) {
			return nil, fmt.Errorf("row has %d values for %d columns", len(r), len(res.Columns))
		}
		for i, v := range r {
			r[i] = value(v, res.Columns[i].Type)
		}
		res.Rows = append(res.Rows, r)
	}
	return res, nil
}

// value converts a decoded JSON value of type typ to the result
// conventions of [chschema] (integers beyond 2^53 as strings, ...). The
// engine already writes times as RFC 3339 (date_time_output_format=iso).
func value(v any, typ string) any {
	switch x := v.(type) {
	case json.Number:
		s := x.String()
		if !chschema.IsFloat(typ) && !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return chschema.Int(i)
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return chschema.Uint(u)
			}
			return s // (U)Int128/256
		}
		f, err := x.Float64()
		if err != nil {
			return s
		}
		return chschema.Float(f)
	case []any:
		elem, tuple := chschema.ArrayElem(typ), chschema.TupleElems(typ)
		for i := range x {
			t := elem
			if i < len(tuple) {
				t = tuple[i].Type
			}
			x[i] = value(x[i], t)
		}
		return x
	case map[string]any:
		elems := map[string]string{}
		for _, e := range chschema.TupleElems(typ) {
			elems[e.Name] = e.Type
		}
		mv := chschema.MapValue(typ)
		for k := range x {
			t, ok := elems[k]
			if !ok {
				t = mv
			}
			x[k] = value(x[k], t)
		}
		return x
	}
	return v
}

// summarize shortens a statement for an error message.
func summarize(stmt string) string {
	s := strings.Join(strings.Fields(stmt), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)
}

// quoteString is a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
