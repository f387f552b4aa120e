package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/internal/clip"
)

// auditFilterFields are the audit explorer's filters, named as auditEvents'
// where and /audit/export's parameters name them, so that the explorer's
// query string is the export's.
var auditFilterFields = []string{"kind", "agent", "team", "virtualServer", "upstream", "target", "decision", "outcome", "detector", "approvalID"}

// auditRanges are the explorer's preset time ranges.
var auditRanges = []struct {
	Key   string
	Label string
	Span  time.Duration
}{
	{"15m", "Last 15 minutes", 15 * time.Minute},
	{"1h", "Last hour", time.Hour},
	{"24h", "Last 24 hours", 24 * time.Hour},
	{"7d", "Last 7 days", 7 * 24 * time.Hour},
	{"30d", "Last 30 days", 30 * 24 * time.Hour},
}

// auditFilter is the explorer's parsed query string.
type auditFilter struct {
	Range    string
	From, To time.Time
	// FromText and ToText are the custom range as typed (empty: the preset).
	FromText, ToText string
	Fields           map[string]string
	// Problems says what of the query string was not understood (and
	// left out of the filter), for the page to show.
	Problems []string
}

// localLayout is the format of <input type="datetime-local">, read as UTC.
const localLayout = "2006-01-02T15:04"

func parseFormTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, localLayout, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func parseAuditFilter(q url.Values, now time.Time) auditFilter {
	f := auditFilter{Range: q.Get("range"), Fields: map[string]string{}, To: now.UTC()}
	span := 24 * time.Hour
	found := false
	for _, r := range auditRanges {
		if r.Key == f.Range {
			span, found = r.Span, true
		}
	}
	if !found {
		if f.Range != "" {
			f.Problems = append(f.Problems, fmt.Sprintf("Range %q is not one of the choices; showing the last 24 hours.", clip.String(f.Range, 64)))
		}
		f.Range = "24h"
	}
	f.From = f.To.Add(-span)
	for _, b := range []struct {
		key   string
		time  *time.Time
		typed *string
	}{{"from", &f.From, &f.FromText}, {"to", &f.To, &f.ToText}} {
		s := strings.TrimSpace(q.Get(b.key))
		if s == "" {
			continue
		}
		if t, ok := parseFormTime(s); ok {
			*b.time, *b.typed = t, s
		} else {
			f.Problems = append(f.Problems, fmt.Sprintf("%q is not a date or time for %s (e.g. 2026-12-03T14:00, UTC); it is left out of the filter.", clip.String(s, 64), strings.ToUpper(b.key[:1])+b.key[1:]))
		}
	}
	for _, k := range auditFilterFields {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			f.Fields[k] = v
		}
	}
	return f
}

// where is the filter as auditEvents' and auditStats' where.
func (f auditFilter) where() map[string]any {
	w := map[string]any{"from": f.From.Format(time.RFC3339Nano), "to": f.To.Format(time.RFC3339Nano)}
	for k, v := range f.Fields {
		w[k] = v
	}
	return w
}

// query is the filter as the explorer's query string (the range pinned
// when paging, so that later pages do not slide).
func (f auditFilter) query() url.Values {
	q := url.Values{"range": {f.Range}}
	if f.FromText != "" {
		q.Set("from", f.FromText)
	}
	if f.ToText != "" {
		q.Set("to", f.ToText)
	}
	for k, v := range f.Fields {
		q.Set(k, v)
	}
	return q
}

// exportQuery is the filter as /audit/export's parameters.
func (f auditFilter) exportQuery(format string) url.Values {
	q := url.Values{"from": {f.From.Format(time.RFC3339Nano)}, "to": {f.To.Format(time.RFC3339Nano)}, "format": {format}}
	for k, v := range f.Fields {
		q.Set(k, v)
	}
	return q
}

// auditEvent is an AuditEvent of the admin API (the fields the console
// selects are set).
type auditEvent struct{ model.AuditEvent }

// Link is the event detail page's address.
func (e auditEvent) Link() string {
	return "/console/audit/event?" + url.Values{"id": {e.EventID}, "t": {e.Time.Format(time.RFC3339Nano)}}.Encode()
}

type auditStat struct {
	Bucket *time.Time `json:"bucket"`
	Group  []string   `json:"group"`
	Calls  int        `json:"calls"`
	Denied int        `json:"denials"`
	Errors int        `json:"errors"`
	P99Us  float64    `json:"p99Us"`
}

type auditView struct {
	F           auditFilter
	Ranges      any
	Events      []auditEvent
	Next        string
	First       string
	Paged       bool
	ExportCSV   string
	ExportJSONL string
	Interval    string
	Charts      charts
	Total       struct{ Calls, Denied, Errors int }
}

const auditListFields = `time eventID kind agent team virtualServer method target decision outcome totalUs approvalID findings { detector kind }`

// auditExplorer shows the events matching the filter a page at a time,
// with charts of the rollups over the same filter.
func (c *Console) auditExplorer(w http.ResponseWriter, r *http.Request) {
	f := parseAuditFilter(r.URL.Query(), c.now())
	interval := bucketFor(f.To.Sub(f.From))
	tools := f.where()
	tools["method"] = "tools/call"
	vars := map[string]any{"where": f.where(), "toolsWhere": tools, "interval": interval.String()}
	after := r.URL.Query().Get("after")
	if after != "" {
		vars["after"] = after
	}
	var out struct {
		Events struct {
			Edges []struct {
				Node auditEvent `json:"node"`
			} `json:"edges"`
			PageInfo struct {
				HasNextPage bool   `json:"hasNextPage"`
				EndCursor   string `json:"endCursor"`
			} `json:"pageInfo"`
		} `json:"auditEvents"`
		Series []auditStat `json:"series"`
		Agents []auditStat `json:"agents"`
		Tools  []auditStat `json:"tools"`
	}
	err := c.gql(r, `query($where: AuditEventWhere, $toolsWhere: AuditEventWhere, $after: String, $interval: String) {
  auditEvents(where: $where, first: 50, after: $after) { edges { node { `+auditListFields+` } } pageInfo { hasNextPage endCursor } }
  series: auditStats(interval: $interval, where: $where) { bucket calls denials errors p99Us }
  agents: auditStats(groupBy: [AGENT], where: $where) { group calls denials errors }
  tools: auditStats(groupBy: [TARGET], where: $toolsWhere) { group calls denials errors }
}`, vars, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v := auditView{F: f, Ranges: auditRanges, Paged: after != "", Interval: durationText(interval)}
	for _, e := range out.Events.Edges {
		v.Events = append(v.Events, e.Node)
	}
	q := f.query()
	v.First = "/console/audit?" + q.Encode()
	if out.Events.PageInfo.HasNextPage {
		q.Set("after", out.Events.PageInfo.EndCursor)
		v.Next = "/console/audit?" + q.Encode()
	}
	v.ExportCSV = "/console/audit/export?" + f.exportQuery("csv").Encode()
	v.ExportJSONL = "/console/audit/export?" + f.exportQuery("jsonl").Encode()
	for _, s := range out.Series {
		v.Total.Calls += s.Calls
		v.Total.Denied += s.Denied
		v.Total.Errors += s.Errors
	}
	v.Charts = buildCharts(out.Series, out.Agents, out.Tools, f.From, f.To, interval)
	c.render(w, r, "audit", "Audit", "audit", v)
}

// bucketFor picks a chart bucket giving at most about 60 bars over span.
func bucketFor(span time.Duration) time.Duration {
	for _, d := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		3 * time.Hour, 6 * time.Hour, 12 * time.Hour} {
		if span/d <= 60 {
			return d
		}
	}
	return 24 * time.Hour
}

type eventView struct {
	E auditEvent
}

// auditEvent shows one event, found by its ID at its time.
func (c *Console) auditEvent(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	t, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("t"))
	if id == "" || err != nil {
		c.renderError(w, r, nil, http.StatusBadRequest, "Bad request", "An event link names the event's ID and time.")
		return
	}
	var out struct {
		Events struct {
			Edges []struct {
				Node auditEvent `json:"node"`
			} `json:"edges"`
		} `json:"auditEvents"`
	}
	err = c.gql(r, `query($where: AuditEventWhere) { auditEvents(where: $where, first: 1000, orderBy: TIME_ASC) { edges { node {
  time eventID node seq hash prevHash kind requestID sessionID agent team roles authMethod virtualServer upstream method target
  arguments decision grants rule policyRevision findings { rule detector kind path action } approvalID approvers secretBindings
  outcome errorCode error authUs policyUs guardUs approvalUs upstreamUs totalUs requestBytes responseBytes } } } }`,
		map[string]any{"where": map[string]any{"from": t.Format(time.RFC3339Nano), "to": t.Add(time.Millisecond).Format(time.RFC3339Nano)}}, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	for _, e := range out.Events.Edges {
		if e.Node.EventID == id {
			c.render(w, r, "event", "Event "+id, "audit", eventView{E: e.Node})
			return
		}
	}
	c.renderError(w, r, nil, http.StatusNotFound, "No such event", "No audit event "+id+" at that time.")
}
