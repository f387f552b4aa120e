package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter narrows audit events. Zero fields match everything; From is
// inclusive, To exclusive.
type Filter struct {
	From, To      time.Time
	Kind          string
	Agent         string
	Team          string
	VirtualServer string
	Upstream      string
	Method        string
	Target        string
	Decision      string
	Outcome       string
	ApprovalID    string
	RequestID     string
	SessionID     string
	// Detector matches events with a guardrail finding of this detector
	// (e.g. "injection").
	Detector string
}

// where renders f as a WHERE clause (with the leading WHERE; "" if f is
// empty).
func (f Filter) where() string {
	var c []string
	add := func(col, v string) {
		if v != "" {
			c = append(c, col+" = "+quote(v))
		}
	}
	if !f.From.IsZero() {
		c = append(c, "time >= "+timeLit(f.From))
	}
	if !f.To.IsZero() {
		c = append(c, "time < "+timeLit(f.To))
	}
	add("kind", f.Kind)
	add("agent", f.Agent)
	add("team", f.Team)
	add("virtual_server", f.VirtualServer)
	add("upstream", f.Upstream)
	add("method", f.Method)
	add("target", f.Target)
	add("decision", f.Decision)
	add("outcome", f.Outcome)
	add("approval_id", f.ApprovalID)
	add("request_id", f.RequestID)
	add("session_id", f.SessionID)
	if f.Detector != "" {
		c = append(c, "arrayExists(x -> x.detector = "+quote(f.Detector)+", findings)")
	}
	if len(c) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c, " AND ")
}

// Layouts of DateTime64(6) values as ClickHouse reads (chTime) and
// writes them with toString (chTimeOut, trailing zeros optional).
const (
	chTime    = "2006-01-02 15:04:05.000000"
	chTimeOut = "2006-01-02 15:04:05.999999"
)

func timeLit(t time.Time) string {
	return "toDateTime64(" + quote(t.UTC().Format(chTime)) + ", 6, 'UTC')"
}

// eventColumns is the SELECT list that reads an Event back (findings as an
// array of tuples, rebuilt by decodeEvent).
const eventColumns = `toString(time) AS time, event_id, node, seq, prev_hash, hash, kind, request_id, session_id,
agent, team, roles, auth_method, virtual_server, upstream, method, target, arguments, args_hash,
decision, grants, rule, policy_revision,
findings,
approval_id, approvers, secret_bindings, lease_ids, outcome, error_code, error,
auth_us, policy_us, guard_us, approval_us, upstream_us, total_us, request_bytes, response_bytes`

// Page is one page of events and the cursor of the next one ("" when
// this is the last).
type Page struct {
	Events []Event
	Next   string
}

// Events lists events matching f, newest first (or oldest first with asc),
// first at a time after cursor (from a previous Page.Next).
func Events(ctx context.Context, b Backend, table string, f Filter, asc bool, first int, cursor string) (*Page, error) {
	if first <= 0 || first > 1000 {
		first = 100
	}
	where := f.where()
	if cursor != "" {
		t, id, err := DecodeCursor(cursor)
		if err != nil {
			return nil, err
		}
		op := "<"
		if asc {
			op = ">"
		}
		cond := fmt.Sprintf("(time, event_id) %s (%s, %s)", op, timeLit(t), quote(id))
		if where == "" {
			where = " WHERE " + cond
		} else {
			where += " AND " + cond
		}
	}
	dir := "DESC"
	if asc {
		dir = "ASC"
	}
	// prefer_column_name_to_alias: WHERE and ORDER BY mean the time
	// column, not the toString(time) AS time of eventColumns.
	q := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY time %s, event_id %s LIMIT %d SETTINGS prefer_column_name_to_alias = 1",
		eventColumns, table, where, dir, dir, first+1)
	events, err := queryEvents(ctx, b, q)
	if err != nil {
		return nil, err
	}
	p := &Page{Events: events}
	if len(events) > first {
		p.Events = events[:first]
		last := p.Events[first-1]
		p.Next = EventCursor(&last)
	}
	return p, nil
}

// EventCursor is the cursor that pages after e (in either order).
func EventCursor(e *Event) string {
	return base64.RawURLEncoding.EncodeToString([]byte(e.Time.UTC().Format(time.RFC3339Nano) + "|" + e.EventID))
}

// DecodeCursor reads a cursor of EventCursor.
func DecodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if ts, id, ok := strings.Cut(string(b), "|"); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				return t, id, nil
			}
		}
	}
	return time.Time{}, "", fmt.Errorf("invalid cursor %q", c)
}

// queryEvents runs q (selecting eventColumns) and decodes its rows.
func queryEvents(ctx context.Context, b Backend, q string) ([]Event, error) {
	res, err := b.Query(ctx, q, QueryOptions{})
	if err != nil {
		return nil, err
	}
	return decodeEvents(res)
}

// decodeEvents turns rows of eventColumns into events.
func decodeEvents(res *Result) ([]Event, error) {
	out := make([]Event, 0, len(res.Rows))
	for _, row := range res.Rows {
		m := make(map[string]any, len(row))
		for i, c := range res.Columns {
			if i < len(row) {
				m[c.Name] = row[i]
			}
		}
		var fs []Finding
		if raw, ok := m["findings"].([]any); ok {
			for _, t := range raw {
				switch v := t.(type) {
				case map[string]any: // named tuple as an object
					fs = append(fs, Finding{Rule: str(v["rule"]), Detector: str(v["detector"]), Kind: str(v["kind"]), Path: str(v["path"]),
						Action: str(v["action"]), Start: uint32(num(v["start"])), End: uint32(num(v["end"]))})
				case []any:
					if len(v) == 7 {
						fs = append(fs, Finding{Rule: str(v[0]), Detector: str(v[1]), Kind: str(v[2]), Path: str(v[3]), Action: str(v[4]),
							Start: uint32(num(v[5])), End: uint32(num(v[6]))})
					}
				}
			}
		}
		delete(m, "findings")
		if t, ok := m["time"].(string); ok {
			// toString(DateTime64(6)) is "2006-01-02 15:04:05.000000", UTC.
			pt, err := time.Parse(chTimeOut, t)
			if err != nil {
				return nil, fmt.Errorf("event time %q: %w", t, err)
			}
			m["time"] = pt.UTC()
		}
		// 64-bit integers may arrive quoted (JSON output formats quote
		// them by default).
		for _, k := range numericColumns {
			if v, ok := m[k].(string); ok {
				m[k] = json.Number(v)
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		var e Event
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("decoding event %v: %w", m["event_id"], err)
		}
		e.Findings = fs
		out = append(out, e)
	}
	return out, nil
}

var numericColumns = []string{"seq", "policy_revision", "error_code", "auth_us", "policy_us", "guard_us", "approval_us",
	"upstream_us", "total_us", "request_bytes", "response_bytes"}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, _ := n.Float64()
		return f
	case string:
		f, _ := strconv.ParseFloat(n, 64)
		return f
	case int64:
		return float64(n)
	case uint64:
		return float64(n)
	}
	return 0
}

// Stat is one group of [Stats].
type Stat struct {
	// Bucket is the interval's start (zero without an interval).
	Bucket time.Time
	// Group holds the values of the group-by columns, in their order.
	Group      []string
	Calls      uint64
	Denials    uint64
	Errors     uint64
	ToolErrors uint64
	Approvals  uint64
	// P50/P90/P99 are total latency quantiles, microseconds.
	P50, P90, P99 float64
}

// StatsGroupBy are the columns Stats can group by.
var StatsGroupBy = []string{"agent", "team", "virtual_server", "upstream", "target", "method", "outcome", "decision", "node"}

// sqlList is a ClickHouse tuple of string literals.
func sqlList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quote(v)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// Stats aggregates request events matching f by groupBy columns and, if
// interval is positive, by time bucket.
func Stats(ctx context.Context, b Backend, table string, groupBy []string, interval time.Duration, f Filter) ([]Stat, error) {
	for _, g := range groupBy {
		if !slices.Contains(StatsGroupBy, g) {
			return nil, fmt.Errorf("cannot group by %q: want one of %s", g, strings.Join(StatsGroupBy, ", "))
		}
	}
	if f.Kind == "" {
		f.Kind = KindRequest
	}
	bucket := "toDateTime64(0, 6, 'UTC')"
	if interval > 0 {
		if interval < time.Second {
			return nil, errors.New("interval must be at least 1s")
		}
		bucket = fmt.Sprintf("toStartOfInterval(time, INTERVAL %d SECOND)", int64(interval/time.Second))
	}
	keys := append([]string{"bucket"}, groupBy...)
	q := fmt.Sprintf(`SELECT toString(%s) AS bucket%s, count() AS calls,
countIf(outcome IN %s) AS denials, countIf(outcome IN %s) AS errors, countIf(outcome = 'tool_error') AS tool_errors,
countIf(approval_id != '') AS approvals, quantiles(0.5, 0.9, 0.99)(total_us) AS q
FROM %s%s GROUP BY %s ORDER BY %s LIMIT 10000`,
		bucket, prefixed(groupBy), sqlList(DenialOutcomes), sqlList(ErrorOutcomes), table, f.where(), strings.Join(keys, ", "), strings.Join(keys, ", "))
	res, err := b.Query(ctx, q, QueryOptions{})
	if err != nil {
		return nil, err
	}
	var out []Stat
	for _, row := range res.Rows {
		s := Stat{}
		if t, err := time.Parse(chTimeOut, str(row[0])); err == nil && interval > 0 {
			s.Bucket = t.UTC()
		}
		for i := range groupBy {
			s.Group = append(s.Group, fmt.Sprint(row[1+i]))
		}
		n := 1 + len(groupBy)
		s.Calls, s.Denials, s.Errors, s.ToolErrors, s.Approvals = uint64(num(row[n])), uint64(num(row[n+1])), uint64(num(row[n+2])), uint64(num(row[n+3])), uint64(num(row[n+4]))
		if q, ok := row[n+5].([]any); ok && len(q) == 3 {
			s.P50, s.P90, s.P99 = num(q[0]), num(q[1]), num(q[2])
		}
		out = append(out, s)
	}
	return out, nil
}

func prefixed(cols []string) string {
	var b strings.Builder
	for _, c := range cols {
		b.WriteString(", ")
		b.WriteString(c)
	}
	return b.String()
}

// ReadableTables are the tables auditors' SQL may read.
var ReadableTables = []string{"audit_events", "audit_events_all", "audit_rollup_minute", "audit_checkpoints"}

var (
	tableRef   = regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_.]*|` + "`[^`]*`" + `|"[^"]*")(\s*\()?`)
	statements = regexp.MustCompile(`(?i)^\s*(SELECT|WITH)\b`)
	cteName    = regexp.MustCompile(`(?i)\b([A-Za-z_][A-Za-z0-9_]*)\s+AS\s*\(`)
	forbidden  = regexp.MustCompile(`(?i)\b(INTO\s+OUTFILE|SETTINGS|FORMAT)\b|;\s*\S`)
)

// CheckSQL refuses what an auditor's query may not do: anything but one
// SELECT (or WITH … SELECT), reading tables other than ReadableTables,
// table functions (file(), url(), remote(), …), settings overrides and
// output redirection. The backend also runs it with readonly=1.
func CheckSQL(q string) error {
	if !statements.MatchString(q) {
		return refused("only SELECT queries are allowed")
	}
	if m := forbidden.FindString(q); m != "" {
		return refused(fmt.Sprintf("%q is not allowed in audit queries", strings.TrimSpace(m)))
	}
	allowed := readableNames(q)
	refs := tableRef.FindAllStringSubmatch(q, -1)
	if len(refs) == 0 {
		return refused("the query reads no table: read one of " + strings.Join(ReadableTables, ", "))
	}
	for _, r := range refs {
		name := strings.Trim(r[1], "`\"")
		if r[2] != "" {
			return refused(fmt.Sprintf("table function %s() is not allowed: read one of %s", name, strings.Join(ReadableTables, ", ")))
		}
		if !slices.Contains(allowed, name) {
			return refused(fmt.Sprintf("table %s is not readable: read one of %s", name, strings.Join(ReadableTables, ", ")))
		}
	}
	return nil
}

// readableNames are the tables q may read: ReadableTables and the names
// q's own WITH clauses define.
func readableNames(q string) []string {
	names := slices.Clone(ReadableTables)
	for _, m := range cteName.FindAllStringSubmatch(q, -1) {
		names = append(names, m[1]) // WITH name AS (…)
	}
	return names
}

// Query runs an auditor's read-only SQL with limits: checked by CheckSQL,
// then by CheckParsed on the backend's own parse of it.
// opts bound the query (ReadOnly is set whatever it says).
func Query(ctx context.Context, b Backend, q string, opts QueryOptions) (*Result, error) {
	if err := CheckSQL(q); err != nil {
		return nil, err
	}
	if err := CheckParsed(ctx, b, q, opts.Timeout); err != nil {
		return nil, err
	}
	opts.ReadOnly = true
	return b.Query(ctx, q, opts)
}

// ErrRefused is what CheckSQL's and CheckParsed's refusals are (errors.Is).
var ErrRefused = errors.New("audit query refused")

// refused is a refusal of CheckSQL or CheckParsed: its text says why.
type refused string

func (r refused) Error() string      { return string(r) }
func (refused) Is(target error) bool { return target == ErrRefused }

// ioFunctions are the beginnings (lower case) of the names of ClickHouse
// functions that read or write outside the query's tables: files, URLs,
// object stores, other servers and databases, programs, other tables
// (merge, joinGet, dictionaries), the server's file systems. Scalar
// functions among them (file() reads any file the process can) pass
// readonly=1, which only stops writes.
// inFunctions are the IN operators, whose right side may name a table.
var inFunctions = map[string]bool{
	"in": true, "notin": true, "globalin": true, "globalnotin": true,
	"nullin": true, "notnullin": true, "globalnullin": true, "globalnotnullin": true,
}

var ioFunctions = []string{
	"file", "url", "s3", "gcs", "oss", "cosn", "hdfs", "azure", "remote", "cluster",
	"mysql", "postgres", "mongo", "redis", "sqlite", "jdbc", "odbc", "executable",
	"input", "merge", "loop", "dict", "joinget", "iceberg", "deltalake", "hudi", "hive",
	"paimon", "arrowflight", "ytsaurus", "filesystem", "getmacro", "getsetting",
}

// CheckParsed asks the backend's own parser for q's syntax tree (EXPLAIN
// AST, which runs nothing) and refuses tables other than ReadableTables
// (and q's own WITH names) and functions that reach outside the audit
// tables (ioFunctions). CheckSQL reads q's text, where quoting and comments
// can hide a name (`system`.`tables`, system/**/./**/tables); the parser
// has undone them.
func CheckParsed(ctx context.Context, b Backend, q string, timeout time.Duration) error {
	res, err := b.Query(ctx, "EXPLAIN AST "+q, QueryOptions{ReadOnly: true, MaxRows: 100000, Timeout: timeout})
	if err != nil {
		return err
	}
	allowed := readableNames(q)
	notReadable := func(name string) error {
		return refused(fmt.Sprintf("table %s is not readable: read one of %s", name, strings.Join(ReadableTables, ", ")))
	}
	// ins are the IN operators being read, outermost first: the depth of
	// their argument list and the arguments seen. An identifier on an
	// IN's right names a table.
	type in struct{ at, args int }
	var ins []in
	for _, row := range res.Rows {
		if len(row) == 0 {
			continue
		}
		line := str(row[0])
		depth := len(line) - len(strings.TrimLeft(line, " "))
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for len(ins) > 0 && depth < ins[len(ins)-1].at {
			ins = ins[:len(ins)-1]
		}
		if n := len(ins); n > 0 && depth == ins[n-1].at+1 {
			ins[n-1].args++
			if ins[n-1].args == 2 && f[0] == "Identifier" && !slices.Contains(allowed, strings.TrimPrefix(f[1], "default.")) {
				return notReadable(f[1])
			}
		}
		switch f[0] {
		case "Identifier":
			// A database's table in an expression (x IN system.one):
			// whatever the position, one of another database is refused.
			if db, _, ok := strings.Cut(strings.ToLower(f[1]), "."); ok && (db == "system" || db == "information_schema") {
				return notReadable(f[1])
			}
		case "TableIdentifier":
			name := strings.TrimPrefix(f[1], "default.")
			if !slices.Contains(allowed, name) {
				return notReadable(f[1])
			}
		case "Function":
			name := strings.ToLower(f[1])
			if inFunctions[name] {
				ins = append(ins, in{at: depth + 1}) // its ExpressionList
			}
			for _, p := range ioFunctions {
				if strings.HasPrefix(name, p) {
					return refused(fmt.Sprintf("function %s() is not allowed in audit queries: it reaches outside the audit tables", f[1]))
				}
			}
		}
	}
	return nil
}

// VerifyReport is the result of [Verify] for one node.
type VerifyReport struct {
	Node        string    `json:"node"`
	Events      uint64    `json:"events"`
	Checkpoints int       `json:"checkpoints"`
	LastSeq     uint64    `json:"last_seq"`
	Problems    []Problem `json:"problems"`
}

// Nodes lists the nodes that recorded events.
func Nodes(ctx context.Context, b Backend, table string) ([]string, error) {
	res, err := b.Query(ctx, "SELECT DISTINCT node FROM "+table+" ORDER BY node", QueryOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range res.Rows {
		out = append(out, str(r[0]))
	}
	return out, nil
}

// Verify recomputes node's hash chain from the backend, in pages, and
// checks its signed checkpoints (key may be nil to skip signatures).
func Verify(ctx context.Context, b Backend, tables Tables, node string, key ed25519.PublicKey) (*VerifyReport, error) {
	tables = tables.withDefaults()
	table := tables.Events
	cps, err := checkpoints(ctx, b, tables.ReadCheckpoints, node)
	if err != nil {
		return nil, err
	}
	v := NewVerifier(node, key)
	for _, cp := range cps {
		v.WantHash(cp.Seq)
	}
	var after uint64
	for {
		q := fmt.Sprintf("SELECT %s FROM %s WHERE node = %s AND seq > %d ORDER BY seq LIMIT 10000", eventColumns, table, quote(node), after)
		events, err := queryEvents(ctx, b, q)
		if err != nil {
			return nil, err
		}
		for i := range events {
			v.Next(&events[i])
		}
		if len(events) < 10000 {
			break
		}
		after = events[len(events)-1].Seq
	}
	for _, cp := range cps {
		if cp.Seq <= v.last {
			v.Checkpoint(cp)
		}
	}
	return &VerifyReport{Node: node, Events: v.Checked, Checkpoints: len(cps), LastSeq: v.last, Problems: v.Problems}, nil
}

func checkpoints(ctx context.Context, b Backend, table, node string) ([]Checkpoint, error) {
	res, err := b.Query(ctx, fmt.Sprintf("SELECT DISTINCT node, seq, hash, toString(time), signature FROM %s WHERE node = %s ORDER BY seq",
		table, quote(node)), QueryOptions{})
	if err != nil {
		return nil, err
	}
	var out []Checkpoint
	for _, r := range res.Rows {
		t, _ := time.Parse(chTimeOut, str(r[3]))
		out = append(out, Checkpoint{Node: str(r[0]), Seq: uint64(num(r[1])), Hash: str(r[2]), Time: t, Signature: str(r[4])})
	}
	return out, nil
}
