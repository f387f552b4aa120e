package console

import (
	"net/http"
	"net/url"
)

// The configuration pages are read-only views for the admin, viewer and
// auditor roles; changes go through the GraphQL API or `gatehouse apply`.

type named struct {
	Name string `json:"name"`
}

type pageView[T any] struct {
	Items []T
	Total int
	Next  string
}

// list runs a connection query with $after and renders page.
func list[T any](c *Console, w http.ResponseWriter, r *http.Request, field, query, page, title string) {
	vars := map[string]any{}
	if a := r.URL.Query().Get("after"); a != "" {
		vars["after"] = a
	}
	var out map[string]connection[T]
	if err := c.gql(r, query, vars, &out); err != nil {
		c.fail(w, r, err)
		return
	}
	conn := out[field]
	v := pageView[T]{Items: conn.nodes(), Total: conn.TotalCount}
	if conn.PageInfo.HasNextPage {
		v.Next = r.URL.Path + "?" + url.Values{"after": {conn.PageInfo.EndCursor}}.Encode()
	}
	c.render(w, r, page, title, "config", v)
}

type virtualServerRow struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Anonymous   bool   `json:"anonymous"`
	Selections  []struct {
		Position     int      `json:"position"`
		Upstream     named    `json:"upstream"`
		Tools        []string `json:"tools"`
		ExcludeTools []string `json:"excludeTools"`
	} `json:"selections"`
}

func (c *Console) configVirtualServers(w http.ResponseWriter, r *http.Request) {
	list[virtualServerRow](c, w, r, "virtualServers", `query($after: Cursor) { virtualServers(first: 40, after: $after, orderBy: {field: NAME}) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { name description anonymous selections { position upstream { name } tools excludeTools } } } } }`,
		"virtualservers", "Virtual servers")
}

type agentRow struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Team        *named            `json:"team"`
	Roles       []named           `json:"roles"`
	Labels      map[string]string `json:"labels"`
}

func (c *Console) configAgents(w http.ResponseWriter, r *http.Request) {
	list[agentRow](c, w, r, "agents", `query($after: Cursor) { agents(first: 50, after: $after, orderBy: {field: NAME}) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { name description team { name } roles { name } labels } } } }`,
		"agents", "Agents")
}

type grantRow struct {
	Name          string   `json:"name"`
	SubjectKind   string   `json:"subjectKind"`
	Subject       string   `json:"subject"`
	VirtualServer named    `json:"virtualServer"`
	Tools         []string `json:"tools"`
	Resources     []string `json:"resources"`
	Prompts       []string `json:"prompts"`
	Effect        string   `json:"effect"`
	When          string   `json:"when"`
	Priority      int      `json:"priority"`
	ApprovalRule  *named   `json:"approvalRule"`
}

func (c *Console) configGrants(w http.ResponseWriter, r *http.Request) {
	list[grantRow](c, w, r, "grants", `query($after: Cursor) { grants(first: 40, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { name subjectKind subject virtualServer { name } tools resources prompts effect when priority approvalRule { name } } } } }`,
		"grants", "Grants")
}

type toolRow struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Description    string `json:"description"`
	Upstream       named  `json:"upstream"`
	PinStatus      string `json:"pinStatus"`
	DefinitionHash string `json:"definitionHash"`
	DefinitionDiff string `json:"definitionDiff"`
	ApprovedBy     string `json:"approvedBy"`
	LastSeen       string `json:"lastSeen"`
	InputSchema    any    `json:"inputSchema"`
}

type toolsView struct {
	Quarantined []toolRow
	Pending     []toolRow
	Notice      string
}

// toolsReview is the tool-pinning review queue: quarantined tools (their
// definition changed since it was approved) with the diff, and tools
// awaiting a first approval with their definition.
func (c *Console) toolsReview(w http.ResponseWriter, r *http.Request) {
	const fields = `id name description upstream { name } pinStatus definitionHash definitionDiff approvedBy lastSeen inputSchema`
	var out struct {
		Q connection[toolRow] `json:"quarantined"`
		P connection[toolRow] `json:"pending"`
	}
	err := c.gql(r, `query { quarantined: tools(first: 25, where: {pinStatus: QUARANTINED}) { edges { node { `+fields+` } } }
  pending: tools(first: 25, where: {pinStatus: PENDING}) { edges { node { `+fields+` } } } }`, nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, "tools", "Tool pinning", "tools", toolsView{Quarantined: out.Q.nodes(), Pending: out.P.nodes(), Notice: noticeText(r.URL.Query().Get("done"))})
}

// toolApprove approves the reviewed definition (its hash, from the form)
// of a tool: approveToolDefinition refuses with CONFLICT when the upstream
// changed it again since the page was shown.
func (c *Console) toolApprove(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	id := r.PathValue("id")
	err := c.gql(r, `mutation($id: ID!, $h: String!) { approveToolDefinition(tool: $id, hash: $h) { pinStatus } }`,
		map[string]any{"id": id, "h": r.PostFormValue("hash")}, nil)
	if err != nil {
		c.log.Warn("console tool approval refused", "admin", s.name, "tool_id", id, "error", err)
		c.fail(w, r, err)
		return
	}
	c.log.Info("console tool approval", "admin", s.name, "tool_id", id)
	http.Redirect(w, r, "/console/tools?done=pinned", http.StatusSeeOther)
}
