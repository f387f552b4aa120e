package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// readiness is the part of the gateway's /readyz document the overview
// shows.
type readiness struct {
	Status    string `json:"status"`
	Revision  int64  `json:"revision"`
	Error     string `json:"error"`
	Upstreams map[string]struct {
		State    string    `json:"state"`
		Since    time.Time `json:"since"`
		Error    string    `json:"error"`
		Restarts int       `json:"restarts"`
	} `json:"upstreams"`
	Quarantined []struct {
		Upstream string `json:"upstream"`
		Tool     string `json:"tool"`
		Reason   string `json:"reason"`
	} `json:"quarantined_tools"`
	Approvals string `json:"approvals"`
	Vault     string `json:"vault"`
	Audit     string `json:"audit"`
}

type upstreamRow struct {
	Name, State, Error string
	Since              time.Time
	Restarts           int
}

type overviewView struct {
	Ready     *readiness
	Upstreams []upstreamRow
	Sessions  map[string]int
	VSNames   []string
	SessionsN int
	// CallsPerMin is the last 15 minutes' average; -1 when unknown.
	CallsPerMin float64
	CallsNote   string
	Pending     int
	PendingNote string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	m := mayFor(s)
	v := overviewView{CallsPerMin: -1, Pending: -1}
	if c.status != nil {
		var rd readiness
		if body, ok := c.statusGet(r, "/readyz"); ok && json.Unmarshal(body, &rd) == nil {
			v.Ready = &rd
			for name, h := range rd.Upstreams {
				v.Upstreams = append(v.Upstreams, upstreamRow{Name: name, State: h.State, Error: h.Error, Since: h.Since, Restarts: h.Restarts})
			}
			sort.Slice(v.Upstreams, func(i, j int) bool { return v.Upstreams[i].Name < v.Upstreams[j].Name })
		}
		if body, ok := c.statusGet(r, "/metrics"); ok {
			v.Sessions = gaugeByLabel(body, "gatehouse_sessions", "vs")
			for name, n := range v.Sessions {
				v.VSNames = append(v.VSNames, name)
				v.SessionsN += n
			}
			sort.Strings(v.VSNames)
		}
	}
	if m.Audit {
		now := c.now().UTC()
		var out struct {
			S []auditStat `json:"auditStats"`
		}
		err := c.gql(r, `query($w: AuditEventWhere) { auditStats(interval: "1m", where: $w) { bucket calls } }`,
			map[string]any{"w": map[string]any{"from": now.Add(-15 * time.Minute).Format(time.RFC3339Nano), "to": now.Format(time.RFC3339Nano)}}, &out)
		if err != nil {
			v.CallsNote = err.Error()
		} else {
			n := 0
			for _, st := range out.S {
				n += st.Calls
			}
			v.CallsPerMin = float64(n) / 15
		}
	} else {
		v.CallsNote = "Calls per minute come from the audit trail: the auditor or admin role sees them."
	}
	if m.Approvals {
		var out struct {
			P struct {
				TotalCount int `json:"totalCount"`
			} `json:"pendingApprovals"`
		}
		if err := c.gql(r, `query { pendingApprovals(first: 1) { totalCount } }`, nil, &out); err != nil {
			v.PendingNote = err.Error()
		} else {
			v.Pending = out.P.TotalCount
		}
	} else {
		v.PendingNote = "Approvals are visible to the approver, auditor and admin roles."
	}
	c.render(w, r, "overview", "Overview", "overview", v)
}

// statusGet runs GET path on the gateway's operator handler in-process.
func (c *Console) statusGet(r *http.Request, path string) ([]byte, bool) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
	if err != nil {
		return nil, false
	}
	rec := newRecorder()
	c.status.ServeHTTP(rec, req)
	if rec.status != http.StatusOK && rec.status != http.StatusServiceUnavailable {
		c.log.Warn("console status read failed", "path", path, "status", rec.status)
		return nil, false
	}
	return rec.body.Bytes(), true
}

// gaugeByLabel reads the samples of metric from Prometheus text format,
// keyed by the value of label.
func gaugeByLabel(text []byte, metric, label string) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := metric + "{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		val, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		key := ""
		for _, kv := range strings.Split(line[len(prefix):end], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == label {
				key = strings.Trim(v, `"`)
			}
		}
		out[key] += int(val)
	}
	return out
}
