package graph_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// auditServer serves the audit endpoints of an env at /audit/.
func auditServer(t *testing.T, e *env, opts *graph.HandlerOptions) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/audit/", graph.NewAuditHandler(e.client, opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// call sends one request to the audit endpoints and returns the status,
// the body and, for errors, the error's code and message.
func call(t *testing.T, srv *httptest.Server, method, path, token, contentType, body string) (int, string, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	var e struct {
		Errors []gqlError `json:"errors"`
	}
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(b, &e); err != nil || len(e.Errors) != 1 {
			t.Fatalf("%s %s: HTTP %d with body %q", method, path, resp.StatusCode, b)
		}
		code, _ := e.Errors[0].Extensions["code"].(string)
		return resp.StatusCode, string(b), code, e.Errors[0].Message
	}
	return resp.StatusCode, string(b), "", ""
}

// TestAuditQuery runs auditors' SQL: the result in each format, the
// refusals (with the reason, as 400), the row limit, and the errors.
func TestAuditQuery(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, opts := auditEnv(t, at.api)
	srv := auditServer(t, e, opts)
	const q = `SELECT agent, count() AS calls, max(total_us) AS slowest FROM audit_events WHERE kind = 'request' AND agent IN ('ci-bot', 'claude@alice') GROUP BY agent ORDER BY agent`

	// JSON, the body being the SQL text or a JSON object.
	for _, ct := range []string{"", "text/plain", "application/sql", "application/json"} {
		body := q
		if ct == "application/json" {
			b, _ := json.Marshal(map[string]string{"query": q})
			body = string(b)
		}
		status, out, code, msg := call(t, srv, "POST", "/audit/query", e.auditor, ct, body)
		if status != 200 {
			t.Fatalf("Content-Type %q: HTTP %d %s: %s", ct, status, code, msg)
		}
		var res struct {
			Columns []audit.Column
			Rows    [][]any
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		wantCols := []audit.Column{{Name: "agent", Type: "LowCardinality(String)"}, {Name: "calls", Type: "UInt64"}, {Name: "slowest", Type: "UInt64"}}
		if !slices.Equal(res.Columns, wantCols) || len(res.Rows) != 2 ||
			res.Rows[0][0] != "ci-bot" || res.Rows[0][1] != float64(24) || res.Rows[0][2] != float64(1500) ||
			res.Rows[1][0] != "claude@alice" || res.Rows[1][1] != float64(3) || res.Rows[1][2] != float64(122_000_000) {
			t.Errorf("Content-Type %q: %s", ct, out)
		}
	}

	// JSON lines and CSV; arrays and tuples are JSON in CSV (named tuples
	// as objects).
	const arrays = `SELECT event_id, approvers, findings FROM audit_events WHERE request_id IN ('req-apr-1', 'req-fetch') ORDER BY request_id`
	_, out, _, _ := call(t, srv, "POST", "/audit/query?format=jsonl", e.admin, "", arrays)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var first map[string]any
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &first) != nil ||
		!strings.HasPrefix(lines[0], `{"event_id":"gw1-`) || !strings.Contains(lines[0], `"approvers":["token:bob"],"findings":[]}`) ||
		!strings.Contains(lines[1], `"detector":"injection"`) || !strings.Contains(lines[1], `"path":"$.content[0].text"`) {
		t.Errorf("jsonl: %s", out)
	}
	_, out, _, _ = call(t, srv, "POST", "/audit/query?format=csv", e.admin, "", arrays)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 || !slices.Equal(recs[0], []string{"event_id", "approvers", "findings"}) ||
		recs[1][1] != `["token:bob"]` || recs[1][2] != `[]` || !strings.HasPrefix(recs[2][2], `[{"`) ||
		!strings.Contains(recs[2][2], `"rule":"flag-injection"`) {
		t.Errorf("csv (%v): %q", err, out)
	}

	// Refused: 400 with the reason; nothing changed.
	for _, tc := range []struct{ sql, reason string }{
		{"INSERT INTO audit_events (event_id) VALUES ('forged')", "only SELECT queries are allowed"},
		{"DROP TABLE audit_events", "only SELECT queries are allowed"},
		{"ALTER TABLE audit_events DELETE WHERE 1", "only SELECT queries are allowed"},
		{"SELECT name FROM system.tables", "table system.tables is not readable"},
		{"SELECT * FROM file('/etc/passwd')", "table function file() is not allowed"},
		{"SELECT * FROM url('http://example.com/x.csv', CSV)", "table function url() is not allowed"},
		{"SELECT 1 FROM audit_events; DROP TABLE audit_events", "is not allowed"},
		{"SELECT count() FROM audit_events SETTINGS readonly = 0", `"SETTINGS" is not allowed`},
		{"SELECT * FROM audit_events INTO OUTFILE '/tmp/x'", `"INTO OUTFILE" is not allowed`},
		{"SELECT 1", "the query reads no table"},
	} {
		status, _, code, msg := call(t, srv, "POST", "/audit/query", e.auditor, "", tc.sql)
		if status != 400 || code != "INVALID" || !strings.Contains(msg, tc.reason) {
			t.Errorf("%s: HTTP %d %s %q, want 400 INVALID %q", tc.sql, status, code, msg, tc.reason)
		}
	}
	if n, err := countRows(t.Context(), at.backend, "SELECT count() FROM audit_events"); err != nil || n != len(at.events) {
		t.Errorf("after the refusals: %d events (%v), want %d", n, err, len(at.events))
	}

	// The backend's own errors are 400 QUERY_FAILED with its message.
	status, _, code, msg := call(t, srv, "POST", "/audit/query", e.auditor, "", "SELECT no_such_column FROM audit_events")
	if status != 400 || code != "QUERY_FAILED" || !strings.Contains(msg, "no_such_column") {
		t.Errorf("unknown column: HTTP %d %s %q", status, code, msg)
	}

	// Bad requests.
	for _, tc := range []struct{ method, path, ct, body string }{
		{"POST", "/audit/query", "", ""},
		{"POST", "/audit/query", "application/json", `{"sql": "SELECT 1"}`},
		{"POST", "/audit/query", "application/json", `SELECT 1`},
		{"POST", "/audit/query?format=xml", "", q},
	} {
		if status, _, code, _ := call(t, srv, tc.method, tc.path, e.auditor, tc.ct, tc.body); status != 400 || code != "INVALID" {
			t.Errorf("%s %s %q: HTTP %d %s", tc.method, tc.path, tc.body, status, code)
		}
	}
	if status, _, _, _ := call(t, srv, "GET", "/audit/query", e.auditor, "", ""); status != 405 {
		t.Errorf("GET /audit/query: HTTP %d", status)
	}
	if status, _, _, _ := call(t, srv, "POST", "/audit/export", e.auditor, "", ""); status != 405 {
		t.Errorf("POST /audit/export: HTTP %d", status)
	}
	if status, _, _, _ := call(t, srv, "GET", "/audit/nope", e.auditor, "", ""); status != 404 {
		t.Errorf("GET /audit/nope: HTTP %d", status)
	}
}

// TestAuditQueryOneAtATime: while an auditor's query runs, another is
// refused with 429 BUSY instead of queueing behind it (queued queries held
// up the audit trail's inserts for as long as they all took), and a file
// read through file() is refused before anything runs.
func TestAuditQueryOneAtATime(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	api := &audit.API{Backend: at.api.Backend, Tables: at.api.Tables, Keys: at.api.Keys}
	e, opts := auditEnv(t, api)
	srv := auditServer(t, e, opts)
	done := make(chan int, 1)
	go func() {
		for { // the probes below may hold the slot at first
			status, _, _, _ := call(t, srv, "POST", "/audit/query", e.auditor, "", "SELECT sleepEachRow(1) FROM audit_events LIMIT 2")
			if status != http.StatusTooManyRequests {
				done <- status
				return
			}
		}
	}()
	var status int
	var code, msg string
	for range 100 { // until the slow query holds the slot
		status, _, code, msg = call(t, srv, "POST", "/audit/query", e.auditor, "", "SELECT count() FROM audit_events")
		if status == http.StatusTooManyRequests {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status != http.StatusTooManyRequests || code != "BUSY" || !strings.Contains(msg, "one at a time") {
		t.Errorf("a second query while one runs: HTTP %d %s %q, want 429 BUSY", status, code, msg)
	}
	if s := <-done; s != http.StatusOK {
		t.Errorf("the slow query: HTTP %d", s)
	}
	if status, _, _, _ := call(t, srv, "POST", "/audit/query", e.auditor, "", "SELECT count() FROM audit_events"); status != http.StatusOK {
		t.Errorf("a query after the slow one ended: HTTP %d", status)
	}
	status, _, code, msg = call(t, srv, "POST", "/audit/query", e.auditor, "", "SELECT file('/etc/hostname') FROM audit_events LIMIT 1")
	if status != http.StatusBadRequest || code != "INVALID" || !strings.Contains(msg, "file() is not allowed") {
		t.Errorf("file(): HTTP %d %s %q, want 400 INVALID", status, code, msg)
	}
}

// TestAuditQueryRowLimit: a result beyond the API's row limit is refused
// with a hint, not truncated.
func TestAuditQueryRowLimit(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	limited := &audit.API{Backend: at.api.Backend, Tables: at.api.Tables, Keys: at.api.Keys, MaxRows: 100}
	e, opts := auditEnv(t, limited)
	srv := auditServer(t, e, opts)
	status, _, code, msg := call(t, srv, "POST", "/audit/query", e.auditor, "", "SELECT event_id FROM audit_events")
	if status != 400 || code != "QUERY_FAILED" || !strings.Contains(msg, "TOO_MANY_ROWS") || !strings.Contains(msg, "add a LIMIT") {
		t.Errorf("over the limit: HTTP %d %s %q", status, code, msg)
	}
	status, out, _, _ := call(t, srv, "POST", "/audit/query?format=jsonl", e.auditor, "", "SELECT event_id FROM audit_events LIMIT 100")
	if status != 200 || strings.Count(out, "\n") != 100 {
		t.Errorf("at the limit: HTTP %d, %d rows", status, strings.Count(out, "\n"))
	}
}

// TestAuditAuth: the audit endpoints take the admin API's tokens (and its
// other principals), for the admin and auditor roles only; with the audit
// trail off they answer 503.
func TestAuditAuth(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, opts := auditEnv(t, at.api)
	// An OIDC sign-in: tokens "oidc-auditor" and "oidc-viewer".
	opts.Authenticate = func(r *http.Request) (*graph.Principal, error) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch tok {
		case "oidc-auditor":
			return &graph.Principal{Name: "oidc:corp:ada", Roles: []string{"auditor"}}, nil
		case "oidc-viewer":
			return &graph.Principal{Name: "oidc:corp:bob", Roles: []string{"viewer"}}, nil
		case "oidc-expired":
			return nil, errors.New("token expired")
		}
		return nil, nil
	}
	srv := auditServer(t, e, opts)
	off, offOpts := auditEnv(t, nil)
	offSrv := auditServer(t, off, offOpts)
	from, to := url.QueryEscape(at.yesterday.Format(time.RFC3339)), url.QueryEscape(at.yesterday.Add(time.Hour).Format(time.RFC3339))
	export := "/audit/export?from=" + from + "&to=" + to
	for _, tc := range []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, "UNAUTHENTICATED"},
		{"unknown token", "gha_nope", 401, "UNAUTHENTICATED"},
		{"expired OIDC", "oidc-expired", 401, "UNAUTHENTICATED"},
		{"viewer", e.viewer, 403, "FORBIDDEN"},
		{"approver", e.approver, 403, "FORBIDDEN"},
		{"OIDC viewer", "oidc-viewer", 403, "FORBIDDEN"},
		{"auditor", e.auditor, 200, ""},
		{"admin", e.admin, 200, ""},
		{"OIDC auditor", "oidc-auditor", 200, ""},
	} {
		status, _, code, _ := call(t, srv, "POST", "/audit/query", tc.token, "", "SELECT count() FROM audit_events")
		if status != tc.status || code != tc.code {
			t.Errorf("query as %s: HTTP %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
		status, _, code, _ = call(t, srv, "GET", export, tc.token, "", "")
		if status != tc.status || code != tc.code {
			t.Errorf("export as %s: HTTP %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	for _, path := range []string{"/audit/query", export} {
		method := "POST"
		if path != "/audit/query" {
			method = "GET"
		}
		status, _, code, msg := call(t, offSrv, method, path, off.auditor, "", "SELECT 1 FROM audit_events")
		if status != 503 || code != "UNAVAILABLE" || msg != "the audit trail is off (serve --audit off)" {
			t.Errorf("%s with audit off: HTTP %d %s %q", path, status, code, msg)
		}
		// Authentication still comes first.
		if status, _, _, _ := call(t, offSrv, method, path, off.viewer, "", ""); status != 403 {
			t.Errorf("%s with audit off, as viewer: HTTP %d", path, status)
		}
	}
}

// TestAuditExport streams time ranges as JSON lines and CSV, through
// several pages, with filters, and refuses bad parameters.
func TestAuditExport(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, opts := auditEnv(t, at.api)
	srv := auditServer(t, e, opts)
	y := at.yesterday
	params := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return "/audit/export?" + v.Encode()
	}

	// load-bot's 1,200 calls (two pages), oldest first, as recorded.
	want := at.expectIDs(true, func(ev *audit.Event) bool { return ev.Agent == "load-bot" })
	status, out, code, msg := call(t, srv, "GET", params("from", y.Add(-72*time.Hour).Format(time.RFC3339), "to", y.Format(time.DateOnly), "agent", "load-bot"), e.auditor, "", "")
	if status != 200 {
		t.Fatalf("export: HTTP %d %s %s", status, code, msg)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev audit.Event
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if len(got) == 0 {
			rec := at.events[slices.IndexFunc(at.events, func(r audit.Event) bool { return r.EventID == ev.EventID })]
			if audit.HashEvent(&ev) != rec.Hash || ev.Hash != rec.Hash {
				t.Errorf("exported event %s does not hash as recorded:\n%s", ev.EventID, sc.Text())
			}
			if !strings.Contains(sc.Text(), `"roles":[]`) || !strings.Contains(sc.Text(), `"findings":[]`) {
				t.Errorf("empty lists not as []: %s", sc.Text())
			}
		}
		got = append(got, ev.EventID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("jsonl: %d events, want %d (first %v)", len(got), len(want), got[:min(3, len(got))])
	}

	// CSV: the events table's columns, with filters.
	status, out, code, msg = call(t, srv, "GET", params("from", y.Format(time.DateOnly), "to", y.Add(24*time.Hour).Format(time.RFC3339),
		"format", "csv", "outcome", "blocked", "detector", "injection"), e.auditor, "", "")
	if status != 200 {
		t.Fatalf("csv export: HTTP %d %s %s", status, code, msg)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 4 {
		t.Fatalf("csv (%v): %q", err, out)
	}
	col := func(name string) int { return slices.Index(recs[0], name) }
	res, err := at.backend.Query(t.Context(), "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'audit_events' ORDER BY position", audit.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var tableCols []string
	for _, r := range res.Rows {
		tableCols = append(tableCols, r[0].(string))
	}
	if !slices.Equal(recs[0], tableCols) {
		t.Errorf("csv header %v\nwant the table's columns %v", recs[0], tableCols)
	}
	for _, r := range recs[1:] {
		if r[col("agent")] != "ci-bot" || r[col("outcome")] != "blocked" || r[col("total_us")] != "300" ||
			!strings.Contains(r[col("findings")], `"detector":"injection"`) || r[col("roles")] != "[]" {
			t.Errorf("csv row %v", r)
		}
		if ts, err := time.Parse(time.RFC3339Nano, r[0]); err != nil || ts.Before(y.Add(11*time.Hour)) {
			t.Errorf("csv time %q: %v", r[0], err)
		}
	}

	// Nothing matches: an empty export.
	if status, out, _, _ := call(t, srv, "GET", params("from", y.Format(time.DateOnly), "to", y.Add(time.Hour).Format(time.RFC3339), "agent", "nobody"), e.auditor, "", ""); status != 200 || out != "" {
		t.Errorf("empty export: HTTP %d %q", status, out)
	}

	// Bad parameters are 400, saying what is wrong.
	from, to := y.Format(time.DateOnly), y.Add(24*time.Hour).Format(time.DateOnly)
	for _, tc := range []struct{ path, reason string }{
		{params("to", to), "give the time range"},
		{params("from", from), "give the time range"},
		{params("from", to, "to", from), "to must be after from"},
		{params("from", "yesterday", "to", to), `from: "yesterday" is not a time`},
		{params("from", from, "to", to, "format", "json"), "format: want jsonl or csv"},
		{params("from", from, "to", to, "tool", "deploy"), `unknown parameter "tool"`},
		{params("from", from, "to", to) + "&agent=a&agent=b", `parameter "agent" given 2 times`},
	} {
		status, _, code, msg := call(t, srv, "GET", tc.path, e.auditor, "", "")
		if status != 400 || code != "INVALID" || !strings.Contains(msg, tc.reason) {
			t.Errorf("%s: HTTP %d %s %q, want 400 %q", tc.path, status, code, msg, tc.reason)
		}
	}
}

// TestAuditExportInterrupted: a failure after the first page aborts the
// response, so the client sees a broken transfer instead of a short
// export that looks complete.
func TestAuditExportInterrupted(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, opts := auditEnv(t, &failingAudit{AuditAPI: at.api, after: 1})
	opts.Logger = slog.New(slog.DiscardHandler)
	srv := auditServer(t, e, opts)
	y := at.yesterday
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/audit/export?agent=load-bot&from="+y.Add(-72*time.Hour).Format(time.DateOnly)+"&to="+y.Format(time.DateOnly), nil)
	req.Header.Set("Authorization", "Bearer "+e.auditor)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err == nil {
		t.Errorf("HTTP %d, read %d bytes, error %v: want a broken transfer", resp.StatusCode, len(b), err)
	}
}

// failingAudit fails Events after `after` successful calls.
type failingAudit struct {
	graph.AuditAPI
	after int
}

func (f *failingAudit) Events(ctx context.Context, fl audit.Filter, asc bool, first int, cursor string) (*audit.Page, error) {
	if f.after <= 0 {
		return nil, errors.New("backend went away (test)")
	}
	f.after--
	return f.AuditAPI.Events(ctx, fl, asc, first, cursor)
}
