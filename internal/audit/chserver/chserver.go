// Package chserver is the audit trail on a ClickHouse server or cluster,
// through clickhouse-go's native protocol: batch inserts with
// deduplication tokens, LZ4 compression, TLS, several hosts.
package chserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
)

// Options configure [Open]. Only Addr is required.
type Options struct {
	// Addr lists the servers' native-protocol addresses (host:9000, or
	// host:9440 with TLS). Connections go to the first that answers, in
	// order.
	Addr []string
	// Database is the connection's database; empty means the user's
	// default (usually "default"). It must exist.
	Database string
	// Username and Password authenticate; an empty Username means
	// "default".
	Username string
	Password string
	// TLS, when not nil, encrypts connections. Certificates are always
	// verified.
	TLS *TLSOptions
	// DialTimeout bounds connecting to one server; zero means 10s.
	DialTimeout time.Duration
	// MaxOpenConns bounds the pool; zero means 10.
	MaxOpenConns int
}

// TLSOptions configure TLS to the servers.
type TLSOptions struct {
	// CAFile is a PEM bundle of the CAs that sign the servers'
	// certificates; empty means the system roots.
	CAFile string
	// ServerName is the name to verify in the servers' certificates;
	// empty means the host of each address.
	ServerName string
	// CertFile and KeyFile are a client certificate and key (PEM), for
	// servers that authenticate clients by certificate; both or neither.
	CertFile string
	KeyFile  string
}

// Backend is an [audit.Backend] on a ClickHouse server or cluster.
type Backend struct {
	conn driver.Conn
	name string
}

var _ audit.Backend = (*Backend)(nil)

// Open prepares a connection pool; it dials lazily, so a server that is
// down makes the first statement fail with [audit.ErrUnavailable], not
// Open.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if len(opts.Addr) == 0 {
		return nil, errors.New("opening ClickHouse: no server address configured")
	}
	co := &clickhouse.Options{
		Protocol:         clickhouse.Native,
		Addr:             opts.Addr,
		Auth:             clickhouse.Auth{Database: opts.Database, Username: opts.Username, Password: opts.Password},
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout:      opts.DialTimeout,
		MaxOpenConns:     opts.MaxOpenConns,
		MaxIdleConns:     2,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		ClientInfo:       clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "gatehouse"}}},
	}
	if co.DialTimeout == 0 {
		co.DialTimeout = 10 * time.Second
	}
	if co.MaxOpenConns == 0 {
		co.MaxOpenConns = 10
	}
	if opts.TLS != nil {
		cfg, err := opts.TLS.config()
		if err != nil {
			return nil, fmt.Errorf("opening ClickHouse: %w", err)
		}
		co.TLS = cfg
	}
	conn, err := clickhouse.Open(co)
	if err != nil {
		return nil, fmt.Errorf("opening ClickHouse %s: %w", strings.Join(opts.Addr, ","), err)
	}
	return &Backend{conn: conn, name: "clickhouse:" + strings.Join(opts.Addr, ",")}, nil
}

func (o *TLSOptions) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("TLS client certificate: set both the certificate and the key file, or neither")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Name implements [audit.Backend]: "clickhouse:" and the addresses.
func (b *Backend) Name() string { return b.name }

// Close closes the pool.
func (b *Backend) Close() error {
	if err := b.conn.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", b.name, err)
	}
	return nil
}

// Exec implements [audit.Backend].
func (b *Backend) Exec(ctx context.Context, stmt string) error {
	if err := b.conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("executing %s: %w", summarize(stmt), classify(err))
	}
	return nil
}

// tableName is what Insert accepts as a table: name or database.name.
var tableName = regexp.MustCompile("^(`[^`\\\\]+`|[A-Za-z_][A-Za-z0-9_]*)(\\.(`[^`\\\\]+`|[A-Za-z_][A-Za-z0-9_]*))?$")

// Insert implements [audit.Backend]: one native batch of the columns of
// chschema.EventColumns, sent with insert_deduplication_token (and
// deduplicate_blocks_in_dependent_materialized_views, so the rollups stay
// exact when a batch is replayed).
func (b *Backend) Insert(ctx context.Context, table string, events []audit.Event, token string) (err error) {
	if !tableName.MatchString(table) {
		return fmt.Errorf("inserting into %q: not a table name", table)
	}
	if len(events) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("inserting %d events into %s: %w", len(events), table, classify(err))
		}
	}()
	settings := clickhouse.Settings{"deduplicate_blocks_in_dependent_materialized_views": 1}
	if token != "" {
		settings["insert_deduplication_token"] = token
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	batch, err := b.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+chschema.EventColumnNames()+")")
	if err != nil {
		return err
	}
	defer func() {
		if !batch.IsSent() {
			_ = batch.Abort()
		}
	}()
	row := make([]any, len(chschema.EventColumns))
	for i := range events {
		for j, c := range chschema.EventColumns {
			row[j] = c.Value(&events[i])
		}
		if err := batch.Append(row...); err != nil {
			return fmt.Errorf("event %s: %w", events[i].EventID, err)
		}
	}
	return batch.Send()
}

// Query implements [audit.Backend]. opts become the query's settings:
// readonly=1, max_result_rows with result_overflow_mode=throw,
// max_memory_usage, and max_execution_time (the shorter of opts.Timeout and the context's
// deadline). Values follow the conventions of chschema (values.go).
func (b *Backend) Query(ctx context.Context, query string, opts audit.QueryOptions) (*audit.Result, error) {
	settings := clickhouse.Settings{}
	if opts.ReadOnly {
		settings["readonly"] = 1
	}
	if opts.MaxRows > 0 {
		settings["max_result_rows"] = opts.MaxRows
		settings["result_overflow_mode"] = "throw"
	}
	if opts.MaxMemory > 0 {
		settings["max_memory_usage"] = opts.MaxMemory
	}
	limit, err := opts.ExecutionLimit(ctx)
	if err != nil {
		return nil, err
	}
	if v := limit.Setting(); v != "" {
		settings["max_execution_time"] = v
	}
	rows, err := b.conn.Query(clickhouse.Context(ctx, clickhouse.WithSettings(settings)), query)
	if err != nil {
		return nil, queryErr(ctx, limit, query, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	res := &audit.Result{Columns: make([]audit.Column, len(types)), Rows: [][]any{}}
	dest := make([]any, len(types))
	for i, ct := range types {
		res.Columns[i] = audit.Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
	}
	for rows.Next() {
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("querying %s: reading a row: %w", summarize(query), err)
		}
		row := make([]any, len(types))
		for i := range dest {
			row[i] = value(reflect.ValueOf(dest[i]).Elem(), res.Columns[i].Type)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, queryErr(ctx, limit, query, err)
	}
	return res, nil
}

// queryErr is the error of query, run under ctx with limit, that failed
// with err: classified, and wrapping the context's error when that was
// the cause (see [audit.ExecutionLimit.Cause]).
func queryErr(ctx context.Context, limit audit.ExecutionLimit, query string, err error) error {
	if cerr := limit.Cause(ctx, timedOut(err)); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("querying %s: %w: %w", summarize(query), cerr, classify(err))
	}
	return fmt.Errorf("querying %s: %w", summarize(query), classify(err))
}

// timedOut says err is the server's TIMEOUT_EXCEEDED.
func timedOut(err error) bool {
	var ex *proto.Exception
	return errors.As(err, &ex) && ex.Code == audit.TimeoutExceeded
}

// classify marks failures to reach the server with audit.ErrUnavailable;
// server exceptions stay as they are (*proto.Exception).
func classify(err error) error {
	var ex *proto.Exception
	if errors.As(err, &ex) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, clickhouse.ErrAcquireConnTimeout) || isConnErr(err) {
		return fmt.Errorf("%w: %w", audit.ErrUnavailable, err)
	}
	return err
}

func isConnErr(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "EOF") || strings.Contains(s, "broken pipe") || strings.Contains(s, "connection reset")
}

// value converts a scanned value to the result conventions of chschema.
func value(v reflect.Value, typ string) any {
	if !v.IsValid() {
		return nil
	}
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		return value(v.Elem(), typ)
	}
	switch x := v.Interface().(type) {
	case time.Time:
		if scale, ok := chschema.TimeScale(typ); ok {
			return chschema.Time(x, scale)
		}
		if strings.HasPrefix(unwrapType(typ), "Date") {
			return chschema.Date(x)
		}
		return chschema.Time(x, 6)
	case big.Int:
		return x.String()
	case []byte:
		return string(x)
	case fmt.Stringer:
		if k := v.Kind(); k != reflect.Struct && k != reflect.Array && k != reflect.Slice {
			break
		}
		if strings.HasPrefix(unwrapType(typ), "Decimal") {
			if f, err := strconv.ParseFloat(x.String(), 64); err == nil {
				return f
			}
		}
		return x.String() // UUID, IPv4/6 and others
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return chschema.Int(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return chschema.Uint(v.Uint())
	case reflect.Float32, reflect.Float64:
		return chschema.Float(v.Float())
	case reflect.Slice, reflect.Array:
		elem := chschema.ArrayElem(typ)
		out := make([]any, v.Len())
		tuple := chschema.TupleElems(typ)
		for i := range out {
			t := elem
			if i < len(tuple) {
				t = tuple[i].Type
			}
			out[i] = value(v.Index(i), t)
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		elems := map[string]string{}
		for _, e := range chschema.TupleElems(typ) {
			elems[e.Name] = e.Type
		}
		mapValue := chschema.MapValue(typ)
		it := v.MapRange()
		for it.Next() {
			k := fmt.Sprint(it.Key().Interface())
			t, ok := elems[k]
			if !ok {
				t = mapValue
			}
			out[k] = value(it.Value(), t)
		}
		return out
	}
	return fmt.Sprint(v.Interface())
}

func unwrapType(typ string) string { return chschema.Unwrap(typ) }

// summarize shortens a statement for an error message.
func summarize(stmt string) string {
	s := strings.Join(strings.Fields(stmt), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)
}
