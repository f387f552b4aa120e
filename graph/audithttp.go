package graph

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// NewAuditHandler returns the auditors' HTTP endpoints over opts.Audit,
// behind the authentication of [NewHandler] (admin tokens, and the
// principals opts.Authenticate signs in) and for the admin and auditor
// roles only. Mount it at /audit/ with the options given to NewHandler;
// it serves the paths ending in:
//
//   - POST …/query: runs one read-only SQL query over the audit tables
//     ([audit.ReadableTables]). The body is the SQL text, or JSON
//     {"query": "…"} (Content-Type application/json). ?format= json (the
//     default: {"columns": [{"name", "type"}…], "rows": [[…]…]}), jsonl
//     (one object per row, keys in column order) or csv (a header row,
//     then the rows; arrays and tuples as JSON). The query is checked by
//     [audit.CheckSQL] and run with readonly=1, a row limit and a timeout
//     (audit.API's MaxRows and Timeout): a refused or failing query
//     answers 400 with the reason.
//   - GET …/export?from=…&to=…: streams the events of a time range, oldest
//     first, as jsonl (the default: each line an event in the events
//     table's row format) or csv (?format=csv: a header of the same column
//     names). from (inclusive) and to (exclusive) are required, as RFC 3339
//     times or dates (2006-01-02, midnight UTC). The filters of
//     auditEvents' where narrow it, under the same names: kind, agent,
//     team, virtualServer, upstream, method, target, decision, outcome,
//     approvalID, requestID, sessionID, detector. An unknown parameter is
//     a 400, so that a misspelt filter does not export everything. The
//     events are read 1,000 at a time; a failure after the first page
//     aborts the response (the client sees a truncated transfer, never a
//     silently short export).
//
// Errors are JSON, shaped like GraphQL errors ({"errors": [{"message",
// "extensions": {"code"}}]}): 401 UNAUTHENTICATED, 403 FORBIDDEN, 400
// INVALID (a bad parameter or a query audit.CheckSQL refuses) or
// QUERY_FAILED (the backend refused or failed the query: syntax, row
// limit, timeout), 503 UNAVAILABLE (the audit trail is off, or its
// ClickHouse does not answer), 500 INTERNAL (an export's read failed
// otherwise), 404 and 405.
func NewAuditHandler(client *ent.Client, opts *HandlerOptions) http.Handler {
	return &auditHandler{authenticator{client: client, opts: opts.withDefaults()}}
}

type auditHandler struct {
	authenticator
}

// codeQueryFailed is the code of an auditor's query the backend refused
// or failed.
const codeQueryFailed = "QUERY_FAILED"

// exportPage is how many events the export reads at a time.
const exportPage = 1000

func (h *auditHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var want string
	switch path.Base(r.URL.Path) {
	case "query":
		want = http.MethodPost
	case "export":
		want = http.MethodGet
	default:
		writeError(w, http.StatusNotFound, codeNotFound, "no such audit endpoint: POST /audit/query or GET /audit/export")
		return
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "use "+want+" for "+r.URL.Path)
		return
	}
	p := h.principal(w, r)
	if p == nil {
		return
	}
	if !slices.ContainsFunc(auditRoles, p.HasRole) {
		h.opts.Logger.Warn("audit endpoint refused", "remote", r.RemoteAddr, "path", r.URL.Path, "admin", p.Actor(), "reason", "role")
		writeError(w, http.StatusForbidden, codeForbidden, "the audit trail needs an admin token with the role "+strings.Join(auditRoles, " or "))
		return
	}
	if h.opts.Audit == nil {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, ErrAuditOff.Error())
		return
	}
	ctx := WithPrincipal(r.Context(), p)
	if want == http.MethodPost {
		h.query(ctx, w, r)
	} else {
		h.export(ctx, w, r)
	}
}

// query serves POST …/query.
func (h *auditHandler) query(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "jsonl" && format != "csv" {
		writeError(w, http.StatusBadRequest, codeInvalid, "format: want json, jsonl or csv")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, codeInvalid, fmt.Sprintf("the query is larger than %d bytes", mbe.Limit))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, codeInvalid, "reading the query: "+err.Error())
		return
	}
	sql := string(body)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		var in struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, codeInvalid, `the body is not JSON {"query": "SELECT …"}: `+err.Error())
			return
		}
		sql = in.Query
	}
	if strings.TrimSpace(sql) == "" {
		writeError(w, http.StatusBadRequest, codeInvalid, `send one SELECT as the body, or JSON {"query": "SELECT …"}`)
		return
	}
	// Checked here too (audit.API.Query checks again) so that a refusal is
	// told apart from the backend's errors.
	if err := audit.CheckSQL(sql); err != nil {
		writeError(w, http.StatusBadRequest, codeInvalid, err.Error())
		return
	}
	start := time.Now()
	res, err := h.opts.Audit.Query(ctx, sql)
	if err != nil {
		h.failed(ctx, w, r, err, true)
		return
	}
	h.opts.Logger.Info("audit query", "admin", PrincipalFromContext(ctx).Actor(), "rows", len(res.Rows),
		"latency_ms", time.Since(start).Milliseconds(), "query", sql)
	switch format {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	case "jsonl":
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = writeRowsJSONL(w, res)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		_ = writeRowsCSV(w, res)
	}
}

// failed answers a failed read of the audit trail: 503 when the backend
// is unreachable; for an auditor's query (userQuery) 400, since the
// backend refused or failed what the auditor wrote; else 500.
func (h *auditHandler) failed(ctx context.Context, w http.ResponseWriter, r *http.Request, err error, userQuery bool) {
	switch {
	case errors.Is(err, audit.ErrRefused):
		h.opts.Logger.Info("audit query refused", "admin", PrincipalFromContext(ctx).Actor(), "error", err)
		writeError(w, http.StatusBadRequest, codeInvalid, err.Error())
	case errors.Is(err, audit.ErrBusy):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "BUSY", err.Error())
	case errors.Is(err, audit.ErrUnavailable):
		h.opts.Logger.Warn("audit read failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the audit trail's ClickHouse is unavailable: "+err.Error())
	case r.Context().Err() != nil:
		// The client went away: nobody to answer.
	case !userQuery:
		h.opts.Logger.Error("audit read failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "INTERNAL", "reading the audit trail: "+err.Error())
	default:
		msg := err.Error()
		if strings.Contains(msg, "TOO_MANY_ROWS") {
			msg += " (narrow the query, aggregate, or add a LIMIT)"
		}
		if strings.Contains(msg, "TIMEOUT_EXCEEDED") || strings.Contains(msg, "Timeout exceeded") {
			msg = "the query ran past the time limit and was stopped: narrow its time range, or aggregate through audit_rollup_minute (" + msg + ")"
		}
		h.opts.Logger.Info("audit query refused", "admin", PrincipalFromContext(ctx).Actor(), "error", err)
		writeError(w, http.StatusBadRequest, codeQueryFailed, msg)
	}
}

// exportFilters are the query parameters of …/export that set an
// [audit.Filter] field: auditEvents' where, by the same names.
var exportFilters = map[string]func(*audit.Filter) *string{
	"kind":          func(f *audit.Filter) *string { return &f.Kind },
	"agent":         func(f *audit.Filter) *string { return &f.Agent },
	"team":          func(f *audit.Filter) *string { return &f.Team },
	"virtualServer": func(f *audit.Filter) *string { return &f.VirtualServer },
	"upstream":      func(f *audit.Filter) *string { return &f.Upstream },
	"method":        func(f *audit.Filter) *string { return &f.Method },
	"target":        func(f *audit.Filter) *string { return &f.Target },
	"decision":      func(f *audit.Filter) *string { return &f.Decision },
	"outcome":       func(f *audit.Filter) *string { return &f.Outcome },
	"approvalID":    func(f *audit.Filter) *string { return &f.ApprovalID },
	"requestID":     func(f *audit.Filter) *string { return &f.RequestID },
	"sessionID":     func(f *audit.Filter) *string { return &f.SessionID },
	"detector":      func(f *audit.Filter) *string { return &f.Detector },
}

// exportParams are the query parameters …/export accepts besides the
// filters.
var exportParams = []string{"from", "to", "format"}

// exportFilter reads the export's parameters.
func exportFilter(q url.Values) (f audit.Filter, format string, err error) {
	for k, v := range q {
		if _, ok := exportFilters[k]; !ok && !slices.Contains(exportParams, k) {
			names := slices.Concat(exportParams, slices.Sorted(maps.Keys(exportFilters)))
			return f, "", fmt.Errorf("unknown parameter %q: want %s", k, strings.Join(names, ", "))
		}
		if len(v) > 1 {
			return f, "", fmt.Errorf("parameter %q given %d times", k, len(v))
		}
	}
	for k, field := range exportFilters {
		*field(&f) = q.Get(k)
	}
	if f.From, err = parseTime(q.Get("from")); err != nil {
		return f, "", fmt.Errorf("from: %w", err)
	}
	if f.To, err = parseTime(q.Get("to")); err != nil {
		return f, "", fmt.Errorf("to: %w", err)
	}
	if f.From.IsZero() || f.To.IsZero() {
		return f, "", errors.New("give the time range: from and to (RFC 3339 or 2006-01-02)")
	}
	if !f.To.After(f.From) {
		return f, "", errors.New("to must be after from")
	}
	switch format = q.Get("format"); format {
	case "":
		format = "jsonl"
	case "jsonl", "csv":
	default:
		return f, "", errors.New("format: want jsonl or csv")
	}
	return f, format, nil
}

// parseTime reads a time of the audit endpoints: RFC 3339, or a date
// (2006-01-02) meaning its midnight UTC. "" is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 (2006-01-02T15:04:05Z) or a date (2006-01-02)", s)
}

// export serves GET …/export.
func (h *auditHandler) export(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	f, format, err := exportFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalid, err.Error())
		return
	}
	start := time.Now()
	// The first page is read before anything is written, so that its
	// failure is an HTTP status.
	page, err := h.opts.Audit.Events(ctx, f, true, exportPage, "")
	if err != nil {
		h.failed(ctx, w, r, err, false)
		return
	}
	name := "audit-" + f.From.UTC().Format("20060102T150405Z") + "-" + f.To.UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	var write func(*audit.Event) error
	flush := func() error { return nil }
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		_ = cw.Write(eventFields)
		rec := make([]string, len(eventFields))
		write = func(e *audit.Event) error { return cw.Write(eventRecord(e, rec)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		write = func(e *audit.Event) error { return enc.Encode(exportEvent(e)) }
	}
	rc := http.NewResponseController(w)
	n := 0
	for {
		for i := range page.Events {
			if err := write(&page.Events[i]); err != nil {
				return // the client went away
			}
			n++
		}
		if err := flush(); err != nil {
			return
		}
		_ = rc.Flush()
		if page.Next == "" {
			break
		}
		if page, err = h.opts.Audit.Events(ctx, f, true, exportPage, page.Next); err != nil {
			h.opts.Logger.Error("audit export aborted", "admin", PrincipalFromContext(ctx).Actor(), "events", n, "error", err)
			// Abort the response: a truncated transfer, not a short export.
			panic(http.ErrAbortHandler)
		}
	}
	h.opts.Logger.Info("audit export", "admin", PrincipalFromContext(ctx).Actor(), "events", n, "format", format,
		"from", f.From, "to", f.To, "latency_ms", time.Since(start).Milliseconds())
}

// exportEvent is e with nil lists as empty ones, as the events table
// stores them.
func exportEvent(e *audit.Event) *audit.Event {
	c := *e
	for _, l := range []*[]string{&c.Roles, &c.Grants, &c.Approvers, &c.SecretBindings, &c.LeaseIDs} {
		*l = nonNil(*l)
	}
	if c.Findings == nil {
		c.Findings = []audit.Finding{}
	}
	c.Time = c.Time.UTC()
	return &c
}

// eventFields are the JSON names of [audit.Event]'s fields, in order: the
// columns of a CSV export.
var eventFields = func() []string {
	t := reflect.TypeFor[audit.Event]()
	out := make([]string, t.NumField())
	for i := range out {
		out[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return out
}()

// eventRecord fills rec with e's CSV values: times in RFC 3339 (UTC),
// numbers in decimal, lists and findings as JSON.
func eventRecord(e *audit.Event, rec []string) []string {
	v := reflect.ValueOf(exportEvent(e)).Elem()
	for i := range rec {
		rec[i] = csvValue(v.Field(i).Interface())
	}
	return rec
}

// csvValue is one value of a CSV export or query result.
func csvValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// writeRowsJSONL writes res as one JSON object per row, keys in column
// order.
func writeRowsJSONL(w io.Writer, res *audit.Result) error {
	keys := make([][]byte, len(res.Columns))
	for i, c := range res.Columns {
		keys[i], _ = json.Marshal(c.Name)
	}
	var line []byte
	for _, row := range res.Rows {
		line = append(line[:0], '{')
		for i, v := range row {
			if i > 0 {
				line = append(line, ',')
			}
			line = append(line, keys[i]...)
			line = append(line, ':')
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			line = append(line, b...)
		}
		line = append(line, '}', '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

// writeRowsCSV writes res as CSV: a header of the column names, then the
// rows.
func writeRowsCSV(w io.Writer, res *audit.Result) error {
	cw := csv.NewWriter(w)
	rec := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		rec[i] = c.Name
	}
	_ = cw.Write(rec)
	for _, row := range res.Rows {
		for i, v := range row {
			rec[i] = csvValue(v)
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}
