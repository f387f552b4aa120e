package graph_test

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
)

// TestRoleMatrix sends each kind of operation with a token of each role
// and checks that exactly the documented roles may: admin everything
// (approving tool definitions included), viewer and auditor reading the
// configuration (explainDecision included), auditor (and admin) the change
// log and the audit trail, approver nothing yet but me.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	trail := loadAuditTrail(t)
	eachBackend(t, nil, func(t *testing.T, e *env) {
		e.h = graph.NewHandler(e.client, &graph.HandlerOptions{
			Gateway: &fakeGateway{exposed: map[string][]graph.ExposedTool{"ops": {{Name: "say", Upstream: "everything", UpstreamTool: "echo"}}}, tools: map[string][]graph.UpstreamTool{"everything": {}}},
			Audit:   trail.api, Logger: slog.New(slog.DiscardHandler)})
		up := e.createUpstream("everything", "streamable_http", "http://127.0.0.1:1/mcp")
		e.must(`mutation { createAgent(input: {name: "ci-bot"}) { id } }`, nil, nil)
		if _, err := store.RecordToolDefinitions(t.Context(), e.client, "everything", []tooldef.Definition{{Name: "echo"}}, config.PinningAuto, time.Now()); err != nil {
			t.Fatal(err)
		}
		echo := e.pinTools(nil)[0]
		var change struct {
			AdminChanges struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		e.must(`{ adminChanges(first: 1) { edges { node { id } } } }`, nil, &change)
		entry := change.AdminChanges.Edges[0].Node.ID

		const (
			admin    = "admin"
			viewer   = "viewer"
			auditor  = "auditor"
			approver = "approver"
		)
		readers := []string{admin, viewer, auditor}
		for _, op := range []struct {
			name    string
			query   string
			vars    map[string]any
			allowed []string
		}{
			{"query config", `{ upstreams { totalCount } }`, nil, readers},
			{"node", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": up.ID}, readers},
			{"validateConfig", `{ validateConfig { valid } }`, nil, readers},
			{"effectiveTools", `{ effectiveTools(virtualServer: "ops") { name } }`, nil, readers},
			{"exportConfig", `{ exportConfig }`, nil, readers},
			{"adminChanges", `{ adminChanges(first: 1) { totalCount } }`, nil, []string{admin, auditor}},
			{"change log node", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": entry}, []string{admin, auditor}},
			{"me", `{ me { name } }`, nil, []string{admin, viewer, auditor, approver}},
			{"auditEvents", `{ auditEvents(first: 2) { edges { node { eventID agent arguments } } } }`, nil, []string{admin, auditor}},
			{"auditStats", `{ auditStats(groupBy: [UPSTREAM], interval: "1h") { bucket group calls p99Us } }`, nil, []string{admin, auditor}},
			{"auditVerify", `{ auditVerify(node: "gw1") { ok problems { kind } } }`, nil, []string{admin, auditor}},
			{"mutation", `mutation($n: String!) { createTeam(input: {name: $n}) { id } }`, nil, []string{admin}},
			{"rateLimits", `{ rateLimits { totalCount } }`, nil, readers},
			{"settings", `{ settings { pinningMode } }`, nil, readers},
			{"explainDecision", `{ explainDecision(agent: "ci-bot", virtualServer: "ops", tool: "say", arguments: {x: 1}) { effect grants { grant } } }`, nil, readers},
			{"quarantined tools", `{ tools(where: {pinStatus: QUARANTINED}) { totalCount } }`, nil, readers},
			{"createRateLimit", `mutation($n: String!) { createRateLimit(input: {name: $n, requests: 1, perSeconds: 1}) { id } }`, nil, []string{admin}},
			{"updateSettings", `mutation { updateSettings(pinningMode: auto) { pinningMode } }`, nil, []string{admin}},
			{"approveToolDefinition", `mutation($tool: ID!, $hash: String!) { approveToolDefinition(tool: $tool, hash: $hash) { pinStatus } }`,
				map[string]any{"tool": echo.ID, "hash": echo.DefinitionHash}, []string{admin}},
			{"applyConfig", `mutation { applyConfig(document: "upstreams: []", dryRun: true) { applied } }`, nil, []string{admin}},
			{"discoverTools", `mutation { discoverTools(upstream: "everything") { name } }`, nil, []string{admin}},
			{"createAdminToken", `mutation($n: String!) { createAdminToken(input: {name: $n, roles: ["viewer"]}) { token } }`, nil, []string{admin}},
		} {
			for _, role := range []string{admin, viewer, auditor, approver} {
				token := map[string]string{admin: e.admin, viewer: e.viewer, auditor: e.auditor, approver: e.approver}[role]
				vars := map[string]any{"n": "by-" + role + "-" + strings.ReplaceAll(op.name, " ", "-")}
				for k, v := range op.vars {
					vars[k] = v
				}
				status, resp := e.post(token, op.query, pick(op.query, vars))
				allowed := slices.Contains(op.allowed, role)
				switch {
				case status != 200:
					t.Errorf("%s as %s: HTTP %d", op.name, role, status)
				case allowed && len(resp.Errors) > 0:
					t.Errorf("%s as %s: %+v, want allowed", op.name, role, resp.Errors)
				case !allowed && (len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != "FORBIDDEN"):
					t.Errorf("%s as %s: %+v, want FORBIDDEN", op.name, role, resp.Errors)
				case !allowed && !allNull(resp.Data):
					t.Errorf("%s as %s: FORBIDDEN but data %s", op.name, role, resp.Data)
				}
			}
		}
		if n := e.client.Team.Query().CountX(t.Context()); n != 1 {
			t.Errorf("%d teams created, want 1 (by the admin)", n)
		}
	})
}

// TestSecretsNeverReturned checks that no query returns an admin token or
// agent key in plaintext after the one response that creates it, nor an
// admin token's hash (agent key hashes are configuration and may appear).
func TestSecretsNeverReturned(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		var tok struct {
			CreateAdminToken struct{ Token string }
		}
		e.must(`mutation { createAdminToken(input: {name: "ci", roles: ["admin"]}) { token } }`, nil, &tok)
		var ag struct{ CreateAgent struct{ ID string } }
		e.must(`mutation { createAgent(input: {name: "ci-bot"}) { id } }`, nil, &ag)
		var key struct{ RotateAgentKey struct{ Key string } }
		e.must(`mutation($a: ID!) { rotateAgentKey(agent: $a) { key } }`, map[string]any{"a": ag.CreateAgent.ID}, &key)

		// The schema has no field for an admin token's hash.
		var ty struct {
			Type struct{ Fields []struct{ Name string } } `json:"__type"`
		}
		e.must(`{ __type(name: "AdminToken") { fields { name } } }`, nil, &ty)
		for _, f := range ty.Type.Fields {
			if strings.Contains(strings.ToLower(f.Name), "hash") {
				t.Errorf("AdminToken.%s", f.Name)
			}
		}
		if len(ty.Type.Fields) == 0 {
			t.Fatal("no AdminToken fields")
		}

		secrets := map[string]string{
			"admin token":         tok.CreateAdminToken.Token,
			"admin token body":    tok.CreateAdminToken.Token[8:],
			"admin token hash":    identity.HashKey(tok.CreateAdminToken.Token),
			"root token hash":     identity.HashKey(e.admin),
			"agent key":           key.RotateAgentKey.Key,
			"agent key body":      key.RotateAgentKey.Key[8:],
			"token_hash (column)": "token_hash",
		}
		for _, q := range []string{
			`{ adminTokens { edges { node { id name prefix roles expiresAt lastUsedAt createdBy updatedBy createdAt updatedAt } } } }`,
			`{ apiKeys { edges { node { id keyHash prefix revoked expiresAt lastUsedAt agent { name } } } } }`,
			`{ adminChanges(first: 100) { edges { node { id entityType entityName before after actor } } } }`,
			`{ exportConfig }`,
			`{ agents { edges { node { name apiKeys { keyHash prefix } } } } }`,
		} {
			_, resp := e.post(e.admin, q, nil)
			if len(resp.Errors) > 0 {
				t.Fatalf("%s: %+v", q, resp.Errors)
			}
			for what, s := range secrets {
				if strings.Contains(string(resp.Data), s) {
					t.Errorf("%s returns the %s", q, what)
				}
			}
		}
		// Agent key hashes are readable: that is how keys are managed.
		_, resp := e.post(e.viewer, `{ apiKeys { edges { node { keyHash } } } }`, nil)
		if !strings.Contains(string(resp.Data), identity.HashKey(key.RotateAgentKey.Key)) {
			t.Errorf("key hash not listed: %s", resp.Data)
		}
	})
}

// allNull reports whether data is null or an object of nulls.
func allNull(data json.RawMessage) bool {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return false
	}
	for _, v := range m {
		if v != nil {
			return false
		}
	}
	return true
}
