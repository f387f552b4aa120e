package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
)

const auditUsage = `Usage: gatehouse audit <query|verify|export> [flags]

Reads the running gateway's audit trail through its admin API (an admin
token with the auditor or admin role; $` + EnvServer + `, $` + EnvAdminToken + `).

  gatehouse audit query "SELECT …" [--format table|json|jsonl|csv]
  gatehouse audit verify [--node NODE] [--json]
  gatehouse audit export --from TIME --to TIME [--format jsonl|csv] [filters]

query runs one read-only SELECT over the audit tables (audit_events,
audit_rollup_minute, audit_checkpoints; audit_events_all in a cluster) and
prints the result ("-" reads the query from stdin). The gateway refuses
anything else (other tables, table functions, SETTINGS, INTO OUTFILE) and
bounds the result (10,000 rows) and the time (30 s).

verify recomputes the hash chain of every node's events (or --node's) and
checks the signed checkpoints; it prints every problem found (a gap, a
modified, reordered or duplicated event, a bad checkpoint) and exits 1
when there is any.

export writes the events of [--from, --to) to stdout, oldest first: JSON
lines (each an event in the events table's row format) or CSV. Times are
RFC 3339 (2026-11-30T09:00:00Z) or dates (2026-11-30, midnight UTC). The
filter flags narrow it: each must match exactly. A failure midway exits 1
saying the output is incomplete.

Example: what did ci-bot do yesterday?

  gatehouse audit export --from 2026-11-29 --to 2026-11-30 --agent ci-bot
  gatehouse audit query "SELECT time, method, target, outcome FROM audit_events
    WHERE agent = 'ci-bot' AND toDate(time) = yesterday() ORDER BY time"

Flags:
`

// auditFilterFlags are export's filter flags and the query parameters of
// /audit/export they set.
var auditFilterFlags = []struct{ flag, param, help string }{
	{"kind", "kind", "only events of this kind: request, admin or approval"},
	{"agent", "agent", "only this agent (or the admin of admin events)"},
	{"team", "team", "only this team"},
	{"virtual-server", "virtualServer", "only this virtual server"},
	{"upstream", "upstream", "only this upstream"},
	{"method", "method", "only this method (tools/call, ...)"},
	{"target", "target", "only this target: tool name, resource URI or prompt name"},
	{"decision", "decision", "only this decision (allow, deny, require_approval, approve)"},
	{"outcome", "outcome", "only this outcome (ok, denied, error, tool_error, ...)"},
	{"approval-id", "approvalID", "only events of this approval (apr-...)"},
	{"request-id", "requestID", "only events of this request"},
	{"session-id", "sessionID", "only events of this MCP session"},
	{"detector", "detector", "only events with a guardrail finding of this detector (injection, pii, ...)"},
}

func auditCmd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	format := fs.String("format", "", "query: table (default), json, jsonl or csv; export: jsonl (default) or csv")
	node := fs.String("node", "", "verify: only this node (default: every node)")
	asJSON := fs.Bool("json", false, "verify: print the reports as JSON")
	from := fs.String("from", "", "export: first instant (inclusive), RFC 3339 or 2006-01-02")
	to := fs.String("to", "", "export: end (exclusive), RFC 3339 or 2006-01-02")
	filters := make([]*string, len(auditFilterFlags))
	for i, f := range auditFilterFlags {
		filters[i] = fs.String(f.flag, "", "export: "+f.help)
	}
	var af adminFlags
	af.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), auditUsage)
		fs.PrintDefaults()
	}
	if len(args) > 0 && isHelp(args[0]) {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if len(args) == 0 {
		fs.Usage()
		return usageError{errors.New("give a subcommand: query, verify or export")}
	}
	sub := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	// Flags may follow the query too.
	var sql string
	if rest := fs.Args(); len(rest) > 0 {
		sql = rest[0]
		if err := parseFlags(fs, rest[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected argument %q (quote the query as one argument)", fs.Arg(0))}
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	only := func(allowed ...string) error {
		for name := range set {
			if name != "server" && name != "token-file" && !slices.Contains(allowed, name) {
				return usageError{fmt.Errorf("--%s does not apply to audit %s", name, sub)}
			}
		}
		return nil
	}
	switch sub {
	case "query":
		if err := only("format"); err != nil {
			return err
		}
		if sql == "" {
			return usageError{errors.New(`audit query needs the SQL: gatehouse audit query "SELECT …" (or - to read stdin)`)}
		}
		if sql == "-" {
			b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
			if err != nil {
				return fmt.Errorf("reading the query: %w", err)
			}
			sql = string(b)
		}
		switch *format {
		case "":
			*format = "table"
		case "table", "json", "jsonl", "csv":
		default:
			return usageError{fmt.Errorf("--format %q: want table, json, jsonl or csv", *format)}
		}
	case "verify":
		if err := only("node", "json"); err != nil {
			return err
		}
	case "export":
		allowed := []string{"format", "from", "to"}
		for _, f := range auditFilterFlags {
			allowed = append(allowed, f.flag)
		}
		if err := only(allowed...); err != nil {
			return err
		}
		if *from == "" || *to == "" {
			return usageError{errors.New("audit export needs --from and --to (RFC 3339 or 2006-01-02)")}
		}
		if *format != "" && *format != "jsonl" && *format != "csv" {
			return usageError{fmt.Errorf("--format %q: want jsonl or csv", *format)}
		}
	default:
		return usageError{fmt.Errorf("unknown subcommand %q (query, verify or export)", sub)}
	}
	if sub != "query" && sql != "" {
		return usageError{fmt.Errorf("unexpected argument %q", sql)}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	switch sub {
	case "query":
		return auditQuery(ctx, c, stdout, sql, *format)
	case "verify":
		return auditVerify(ctx, c, stdout, *node, *asJSON)
	default:
		q := url.Values{"from": {*from}, "to": {*to}}
		if *format != "" {
			q.Set("format", *format)
		}
		for i, f := range auditFilterFlags {
			if *filters[i] != "" {
				q.Set(f.param, *filters[i])
			}
		}
		return auditExport(ctx, c, stdout, q)
	}
}

// auditQuery runs sql on the gateway's /audit/query and prints the result
// in format.
func auditQuery(ctx context.Context, c *adminClient, w io.Writer, sql, format string) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	wire := format
	if format == "table" {
		wire = "json"
	}
	resp, err := c.send(ctx, http.MethodPost, "/audit/query?format="+wire, "text/plain; charset=utf-8", strings.NewReader(sql))
	if err != nil {
		return fmt.Errorf("audit query: %w", err)
	}
	defer resp.Body.Close()
	if format != "table" {
		if _, err := io.Copy(w, resp.Body); err != nil {
			return fmt.Errorf("audit query: reading the result: %w", err)
		}
		return nil
	}
	var res struct {
		Columns []struct {
			Name string `json:"name"`
		} `json:"columns"`
		Rows [][]json.RawMessage `json:"rows"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fmt.Errorf("audit query: reading the result: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, col := range res.Columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, col.Name)
	}
	fmt.Fprintln(tw)
	for _, row := range res.Rows {
		for i, v := range row {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, tableCell(v))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	noun := "rows"
	if len(res.Rows) == 1 {
		noun = "row"
	}
	fmt.Fprintf(w, "(%d %s)\n", len(res.Rows), noun)
	return nil
}

// tableCell shows a result value in a table: strings as they are (with
// tabs and newlines escaped, to keep the table's shape), NULL empty,
// anything else as JSON.
func tableCell(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
	}
	if string(v) == "null" {
		return ""
	}
	return string(v)
}

// verifyReport is an AuditVerifyReport as the admin API returns it.
type verifyReport struct {
	Node        string `json:"node"`
	Events      int    `json:"events"`
	Checkpoints int    `json:"checkpoints"`
	LastSeq     int    `json:"lastSeq"`
	OK          bool   `json:"ok"`
	Problems    []struct {
		Node   string `json:"node"`
		Seq    int    `json:"seq"`
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
	} `json:"problems"`
}

// errAuditProblems is returned (exit status 1) when verify found problems.
var errAuditProblems = errors.New("the audit trail failed verification")

func auditVerify(ctx context.Context, c *adminClient, w io.Writer, node string, asJSON bool) error {
	var out struct {
		Reports []verifyReport `json:"auditVerify"`
	}
	vars := map[string]any{}
	if node != "" {
		vars["n"] = node
	}
	const q = `query($n: String) { auditVerify(node: $n) { node events checkpoints lastSeq ok problems { node seq kind detail } } }`
	if err := c.do(ctx, q, vars, &out); err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	problems, bad := 0, 0
	for _, r := range out.Reports {
		problems += len(r.Problems)
		if len(r.Problems) > 0 {
			bad++
		}
	}
	if asJSON {
		if err := writeJSON(w, out.Reports); err != nil {
			return err
		}
	} else {
		if len(out.Reports) == 0 {
			fmt.Fprintln(w, "no audit events recorded yet")
		}
		for _, r := range out.Reports {
			status := "ok"
			if len(r.Problems) > 0 {
				status = fmt.Sprintf("%d problem(s)", len(r.Problems))
			}
			fmt.Fprintf(w, "%s: %d events, %d checkpoints, last seq %d: %s\n", r.Node, r.Events, r.Checkpoints, r.LastSeq, status)
			for _, p := range r.Problems {
				fmt.Fprintf(w, "  seq %d: %s: %s\n", p.Seq, p.Kind, p.Detail)
			}
		}
	}
	if problems > 0 {
		return fmt.Errorf("%w: %d problem(s) in %d of %d node(s)", errAuditProblems, problems, bad, len(out.Reports))
	}
	return nil
}

// auditExport streams the gateway's /audit/export?q to w.
func auditExport(ctx context.Context, c *adminClient, w io.Writer, q url.Values) error {
	resp, err := c.send(ctx, http.MethodGet, "/audit/export?"+q.Encode(), "", nil)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return fmt.Errorf("audit export: interrupted after %d bytes, the output is incomplete: %w", n, err)
	}
	return nil
}
