package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// approval is an Approval as the console's queries select it.
type approval struct {
	ApprovalID     string          `json:"approvalID"`
	State          string          `json:"state"`
	Agent          string          `json:"agent"`
	Team           string          `json:"team"`
	VirtualServer  string          `json:"virtualServer"`
	Tool           string          `json:"tool"`
	Upstream       string          `json:"upstream"`
	UpstreamTool   string          `json:"upstreamTool"`
	Arguments      any             `json:"arguments"`
	ArgsHash       string          `json:"argsHash"`
	Attempt        int             `json:"attempt"`
	Reasons        []string        `json:"reasons"`
	Rule           string          `json:"rule"`
	ApproverGroups []string        `json:"approverGroups"`
	Quorum         int             `json:"quorum"`
	Approvers      []string        `json:"approvers"`
	Decisions      json.RawMessage `json:"decisions"`
	Escalated      bool            `json:"escalated"`
	Deadline       *time.Time      `json:"deadline"`
	Reason         string          `json:"reason"`
	DecidedAt      *time.Time      `json:"decidedAt"`
	ExecutedAt     *time.Time      `json:"executedAt"`
	ClosedAt       *time.Time      `json:"closedAt"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
}

// decision is one entry of an approval's decisions.
type decision struct {
	Approver string    `json:"approver"`
	Approve  bool      `json:"approve"`
	Comment  string    `json:"comment"`
	At       time.Time `json:"at"`
}

const approvalListFields = `approvalID state agent team virtualServer tool reasons rule quorum approvers approverGroups escalated deadline createdAt updatedAt decidedAt reason`

type connection[T any] struct {
	TotalCount int `json:"totalCount"`
	PageInfo   struct {
		HasNextPage bool   `json:"hasNextPage"`
		EndCursor   string `json:"endCursor"`
	} `json:"pageInfo"`
	Edges []struct {
		Node T `json:"node"`
	} `json:"edges"`
}

func (c connection[T]) nodes() []T {
	out := make([]T, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node
	}
	return out
}

type inboxView struct {
	Pending []approval
	Total   int
	Notice  string
	// Since is when the list was read, for console.js's first poll.
	Since string
}

// approvalsInbox lists pending calls, oldest first; console.js refreshes
// the list when approvalChanged reports a change.
func (c *Console) approvalsInbox(w http.ResponseWriter, r *http.Request) {
	since := c.now().UTC().Format(time.RFC3339Nano)
	var out struct {
		P connection[approval] `json:"pendingApprovals"`
	}
	if err := c.gql(r, `query { pendingApprovals(first: 40) { totalCount edges { node { `+approvalListFields+` } } } }`, nil, &out); err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "inbox", "Approvals", "approvals", inboxView{
		Pending: out.P.nodes(), Total: out.P.TotalCount, Notice: noticeText(r.URL.Query().Get("done")),
		Since: since,
	})
}

func noticeText(done string) string {
	switch done {
	case "approved":
		return "Your approval was recorded."
	case "denied":
		return "The call was denied."
	case "pinned":
		return "The tool definition was approved."
	}
	return ""
}

type historyView struct {
	Items  []approval
	Total  int
	Filter url.Values
	Next   string
	States []string
}

var finalStates = []string{"executing", "approved", "denied", "timed_out", "cancelled", "failed"}

// approvalsHistory lists decided approvals, most recently changed first,
// filtered by state, agent, virtual server and tool.
func (c *Console) approvalsHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	where := map[string]any{"stateNEQ": "pending"}
	if st := q.Get("state"); st != "" {
		where["state"] = st
	}
	for _, f := range []string{"agent", "virtualServer", "tool"} {
		if v := strings.TrimSpace(q.Get(f)); v != "" {
			where[f] = v
		}
	}
	vars := map[string]any{"where": where}
	if a := q.Get("after"); a != "" {
		vars["after"] = a
	}
	var out struct {
		A connection[approval] `json:"approvals"`
	}
	err := c.gql(r, `query($where: ApprovalWhereInput, $after: Cursor) {
  approvals(first: 25, after: $after, where: $where, orderBy: [{field: UPDATED_AT, direction: DESC}]) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { `+approvalListFields+` } } } }`, vars, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v := historyView{Items: out.A.nodes(), Total: out.A.TotalCount, Filter: q, States: finalStates}
	if out.A.PageInfo.HasNextPage {
		nq := url.Values{}
		for k, vs := range q {
			nq[k] = vs
		}
		nq.Set("after", out.A.PageInfo.EndCursor)
		v.Next = "/console/approvals/history?" + nq.Encode()
	}
	c.render(w, r, "history", "Approval history", "history", v)
}

type detailView struct {
	A         approval
	Decisions []decision
	Pending   bool
	// Since is when the approval was read, for console.js's first poll.
	Since string
}

func (c *Console) approvalDetail(w http.ResponseWriter, r *http.Request) {
	since := c.now().UTC().Format(time.RFC3339Nano)
	var out struct {
		A *approval `json:"approval"`
	}
	err := c.gql(r, `query($id: String!) { approval(approvalId: $id) {
  approvalID state agent team virtualServer tool upstream upstreamTool arguments argsHash attempt reasons rule
  approverGroups quorum approvers decisions escalated deadline reason decidedAt executedAt closedAt createdAt updatedAt } }`,
		map[string]any{"id": r.PathValue("id")}, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if out.A == nil {
		c.renderError(w, r, nil, http.StatusNotFound, "No such approval", "There is no approval "+r.PathValue("id")+".")
		return
	}
	var ds []decision
	if len(out.A.Decisions) > 0 {
		_ = json.Unmarshal(out.A.Decisions, &ds)
	}
	c.render(w, r, "approval", "Approval "+out.A.ApprovalID, "approvals", detailView{A: *out.A, Decisions: ds, Pending: out.A.State == "pending", Since: since})
}

// approvalDecide approves or denies (the button pressed: action) with the
// form's comment, as the signed-in admin.
func (c *Console) approvalDecide(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	id := r.PathValue("id")
	comment := strings.TrimSpace(r.PostFormValue("comment"))
	var err error
	switch action := r.PostFormValue("action"); action {
	case "approve":
		err = c.gql(r, `mutation($id: String!, $c: String) { approveCall(id: $id, comment: $c) { state } }`,
			map[string]any{"id": id, "c": comment}, nil)
	case "deny":
		if comment == "" {
			comment = "denied by an approver in the console"
		}
		err = c.gql(r, `mutation($id: String!, $c: String!) { denyCall(id: $id, reason: $c) { state } }`,
			map[string]any{"id": id, "c": comment}, nil)
	default:
		c.renderError(w, r, nil, http.StatusBadRequest, "Bad request", "Choose Approve or Deny.")
		return
	}
	if err != nil {
		c.log.Warn("console decision refused", "admin", s.name, "approval", id, "error", err)
		c.fail(w, r, err)
		return
	}
	done := "approved"
	if r.PostFormValue("action") == "deny" {
		done = "denied"
	}
	c.log.Info("console decision", "admin", s.name, "approval", id, "decision", done)
	http.Redirect(w, r, "/console/approvals?done="+done, http.StatusSeeOther)
}

// approvalsChanges is console.js's long poll: it waits (up to 25 s) in
// approvalChanged for an approval changed after since (only approvalID,
// when given) and answers JSON {"cursor": TIME, "changed": N}.
func (c *Console) approvalsChanges(w http.ResponseWriter, r *http.Request) {
	vars := map[string]any{}
	if id := r.URL.Query().Get("approvalID"); id != "" {
		vars["where"] = map[string]any{"approvalID": id}
	}
	if since, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("since")); err == nil {
		vars["since"] = since
	} else {
		vars["since"] = c.now().UTC()
	}
	var out struct {
		C struct {
			Cursor    time.Time `json:"cursor"`
			Approvals []struct {
				ApprovalID string `json:"approvalID"`
			} `json:"approvals"`
		} `json:"approvalChanged"`
	}
	err := c.gql(r, `query($since: Time, $where: ApprovalWhereInput) { approvalChanged(since: $since, waitSeconds: 25, where: $where) { cursor approvals { approvalID } } }`, vars, &out)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusBadGateway
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.Status
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	cursor := out.C.Cursor
	if cursor.IsZero() {
		cursor = vars["since"].(time.Time)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"cursor": cursor.Format(time.RFC3339Nano), "changed": len(out.C.Approvals)})
}
