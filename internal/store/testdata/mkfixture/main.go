// Command mkfixture wrote testdata/schema-3e8cc63.db, the fixture of
// TestUpgradeFromFixture: a config store made by the schema of commit
// 3e8cc63 (before the admin change log), with rows in every table.
//
// It was run once, at that commit, from the repository root:
//
//	go run ./internal/store/testdata/mkfixture internal/store/testdata/schema-3e8cc63.db
//
// It is kept as the record of how the file was made, against that commit's
// API (store.ApplyDocument took the actor as a string then); testdata is
// outside `./...`, so it is not built with the rest. Do not adapt it to
// refresh the file: at a later commit it would write the later schema, and
// the test would no longer prove an upgrade. A new schema gets a new
// fixture, under a new name, from a checkout of the commit before it.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	_ "modernc.org/sqlite"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/ent/approvalrule"
	"github.com/gatehouse-dev/gatehouse/ent/grant"
	"github.com/gatehouse-dev/gatehouse/ent/guardrailrule"
	"github.com/gatehouse-dev/gatehouse/ent/policyrule"
	"github.com/gatehouse-dev/gatehouse/ent/secretbinding"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/ent/virtualserver"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: mkfixture OUT.db")
	}
	out := os.Args[1]
	if _, err := os.Stat(out); err == nil {
		log.Fatalf("%s exists: remove it first", out)
	}
	ctx := context.Background()
	c, err := store.Open(ctx, "sqlite://"+out)
	if err != nil {
		log.Fatal(err)
	}
	if err := fill(ctx, c); err != nil {
		log.Fatal(err)
	}
	c.Close()
	// Fold the WAL into the file and leave it in rollback-journal mode, so
	// that the fixture is one self-contained file.
	db, err := sql.Open("sqlite", "file:"+out)
	if err != nil {
		log.Fatal(err)
	}
	for _, stmt := range []string{"PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA journal_mode=DELETE", "VACUUM"} {
		if _, err := db.Exec(stmt); err != nil {
			log.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()
}

// fill writes the README example through ApplyDocument (upstreams, virtual
// servers with selections, agents, a team, a role, API keys) and one row of
// each remaining entity: a discovered tool, a grant, a policy rule, a
// guardrail rule, an approval rule, a secret binding and an admin token.
func fill(ctx context.Context, c *ent.Client) error {
	doc, err := config.Parse([]byte(readme))
	if err != nil {
		return err
	}
	if _, err := store.ApplyDocument(ctx, c, doc, "fixture:apply"); err != nil {
		return err
	}
	ctx = actor.NewContext(ctx, "fixture")
	everything := c.Upstream.Query().Where(upstream.Name("everything")).OnlyX(ctx)
	ops := c.VirtualServer.Query().Where(virtualserver.Name("ops")).OnlyX(ctx)
	seen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.Tool.Create().
		SetUpstream(everything).
		SetName("echo").
		SetDescription("Echoes back the input.").
		SetInputSchema(json.RawMessage(`{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}`)).
		SetAnnotations(json.RawMessage(`{"readOnlyHint":true}`)).
		SetDefinitionHash("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0").
		SetFirstSeen(seen).
		SetLastSeen(seen).
		SaveX(ctx)
	rule := c.ApprovalRule.Create().
		SetName("two-sre").
		SetApproverGroups([]string{"sre"}).
		SetQuorum(2).
		SetOnTimeout(approvalrule.OnTimeoutEscalate).
		SetEscalateTo([]string{"platform"}).
		SetTimeoutSeconds(900).
		SaveX(ctx)
	c.Grant.Create().
		SetVirtualServer(ops).
		SetSubjectKind(grant.SubjectKindTeam).
		SetSubject("platform").
		SetTools([]string{"say", "get_*"}).
		SetEffect(grant.EffectRequireApproval).
		SetApprovalRule(rule).
		SetPriority(10).
		SaveX(ctx)
	c.PolicyRule.Create().
		SetName("no-weekend-deploys").
		SetExpression(`tool == "deploy" && now.getDayOfWeek() in [0, 6]`).
		SetEffect(policyrule.EffectDeny).
		SaveX(ctx)
	c.GuardrailRule.Create().
		SetName("aws-keys").
		SetDetector(guardrailrule.DetectorRegex).
		SetPattern(`AKIA[0-9A-Z]{16}`).
		SetAction(guardrailrule.ActionRedact).
		SetVirtualServer(ops).
		SaveX(ctx)
	c.SecretBinding.Create().
		SetName("everything-token").
		SetUpstream(everything).
		SetSource(secretbinding.SourceKv).
		SetPath("secret/data/everything").
		SetKey("token").
		SetInjection(secretbinding.InjectionHeader).
		SetTarget("Authorization").
		SetTemplate("Bearer {{.Value}}").
		SaveX(ctx)
	if _, _, err := store.CreateAdminToken(ctx, c, "root", []string{"admin"}, nil); err != nil {
		return err
	}
	for _, t := range []string{"upstreams", "tools", "virtual_servers", "selections", "teams", "roles", "agents", "api_keys",
		"grants", "policy_rules", "guardrail_rules", "approval_rules", "secret_bindings", "admin_tokens"} {
		if n := count(ctx, c, t); n == 0 {
			return fmt.Errorf("table %s is empty", t)
		}
	}
	return nil
}

func count(ctx context.Context, c *ent.Client, table string) int {
	q := map[string]func() int{
		"upstreams":       func() int { return c.Upstream.Query().CountX(ctx) },
		"tools":           func() int { return c.Tool.Query().CountX(ctx) },
		"virtual_servers": func() int { return c.VirtualServer.Query().CountX(ctx) },
		"selections":      func() int { return c.Selection.Query().CountX(ctx) },
		"teams":           func() int { return c.Team.Query().CountX(ctx) },
		"roles":           func() int { return c.Role.Query().CountX(ctx) },
		"agents":          func() int { return c.Agent.Query().CountX(ctx) },
		"api_keys":        func() int { return c.APIKey.Query().CountX(ctx) },
		"grants":          func() int { return c.Grant.Query().CountX(ctx) },
		"policy_rules":    func() int { return c.PolicyRule.Query().CountX(ctx) },
		"guardrail_rules": func() int { return c.GuardrailRule.Query().CountX(ctx) },
		"approval_rules":  func() int { return c.ApprovalRule.Query().CountX(ctx) },
		"secret_bindings": func() int { return c.SecretBinding.Query().CountX(ctx) },
		"admin_tokens":    func() int { return c.AdminToken.Query().CountX(ctx) },
	}
	return q[table]()
}

// readme is the upstreams, virtual servers and agents of testdata/readme.yaml.
const readme = `
upstreams:
  - name: everything
    transport: streamable-http
    url: http://127.0.0.1:18080/mcp
    headers: {X-Team: platform}
  - name: memory
    transport: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-memory"]
    env: {MEMORY_FILE_PATH: /tmp/memory.json}
    dir: /srv/memory
  - name: legacy
    transport: sse
    url: http://127.0.0.1:9000/sse
    disabled: true
virtual_servers:
  - name: conformance
    anonymous: true
    include: [{upstream: everything}]
  - name: ops
    description: Operations tools
    include:
      - upstream: everything
        tools: [echo, "get_*"]
        exclude_tools: [get_secret]
        rename: {echo: say}
        descriptions: {say: "Repeat a message."}
        prompts: []
      - {upstream: memory}
agents:
  - name: ci-bot
    team: platform
    roles: [deployer]
    labels: {env: prod}
    api_keys:
      - {sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
      - {sha256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752", expires: 2027-01-01T00:00:00Z}
`
