package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/ent/secretbinding"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// openTest opens a fresh SQLite store in a temporary directory.
func openTest(t *testing.T) *ent.Client {
	t.Helper()
	c, err := Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readmeDoc(t *testing.T) *config.Document {
	t.Helper()
	b, err := os.ReadFile("testdata/readme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := config.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestOpenSQLite checks the accepted URL forms and that every connection has
// foreign keys on and the WAL journal.
func TestOpenSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, url := range []string{
		"sqlite://" + filepath.Join(dir, "a", "abs.db"),
		filepath.Join(dir, "plain.db"),
	} {
		c, err := Open(context.Background(), url)
		if err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
		c.Close()
		db, err := sql.Open("sqlite", sqliteDSN(strings.TrimPrefix(url, "sqlite://")))
		if err != nil {
			t.Fatal(err)
		}
		var fk int
		var mode string
		if err := db.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if fk != 1 || mode != "wal" {
			t.Errorf("%s: foreign_keys=%d journal_mode=%s, want 1 and wal", url, fk, mode)
		}
	}
	for _, bad := range []string{"", "mysql://x", "sqlite://"} {
		if _, err := Open(context.Background(), bad); err == nil {
			t.Errorf("Open(%q) succeeded, want an error", bad)
		}
	}
}

// TestRoundTrip applies README's example and exports it back unchanged.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c := openTest(t)
	ctx := context.Background()
	want := readmeDoc(t)
	res, err := ApplyDocument(ctx, c, want, ApplyOptions{Actor: "test:apply"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) == 0 {
		t.Fatal("apply reported no changes")
	}
	got, err := ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps lists sorted by name and key hashes in lowercase.
	sortDoc(want)
	want.Agents[0].APIKeys[1].SHA256 = strings.ToLower(want.Agents[0].APIKeys[1].SHA256)
	if !reflect.DeepEqual(got.Upstreams, want.Upstreams) {
		t.Errorf("upstreams:\ngot  %+v\nwant %+v", got.Upstreams, want.Upstreams)
	}
	if !reflect.DeepEqual(got.VirtualServers, want.VirtualServers) {
		t.Errorf("virtual servers:\ngot  %+v\nwant %+v", got.VirtualServers, want.VirtualServers)
	}
	if !reflect.DeepEqual(got.Agents, want.Agents) {
		t.Errorf("agents:\ngot  %+v\nwant %+v", got.Agents, want.Agents)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("exported document does not validate: %v", err)
	}

	// Applying the same document again changes nothing.
	res, err = ApplyDocument(ctx, c, want, ApplyOptions{Actor: "test:again", Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 0 {
		t.Errorf("second apply changed %v", res.Changes)
	}
	u := c.Upstream.Query().Where(upstream.Name("everything")).OnlyX(ctx)
	if u.CreatedBy != "test:apply" || u.UpdatedBy != "test:apply" {
		t.Errorf("created_by/updated_by = %q/%q, want test:apply", u.CreatedBy, u.UpdatedBy)
	}
}

// TestExportApplyOfAPIDefaults: an upstream created without timeouts (as
// through the admin API, stored as 0) exports with the defaults, and
// applying that export changes nothing.
func TestExportApplyOfAPIDefaults(t *testing.T) {
	t.Parallel()
	c := openTest(t)
	ctx := context.Background()
	c.Upstream.Create().SetName("api").SetTransport("streamable-http").SetURL("http://127.0.0.1:1/mcp").SaveX(ctx)
	doc, err := ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	doc.ApplyDefaults()
	res, err := ApplyDocument(ctx, c, doc, ApplyOptions{Actor: "test", Prune: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 0 {
		t.Errorf("applying the export would change %v", res.Changes)
	}
}

func sortDoc(d *config.Document) {
	slices.SortFunc(d.Upstreams, func(a, b config.Upstream) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(d.VirtualServers, func(a, b config.VirtualServer) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(d.Agents, func(a, b config.Agent) int { return strings.Compare(a.Name, b.Name) })
}

// TestApplyIsDeclarative applies a document and then a changed one with
// Prune: what the second lacks is deleted (keys revoked), what changed is
// updated, the rest is left untouched, and the actor is recorded.
func TestApplyIsDeclarative(t *testing.T) {
	t.Parallel()
	c := openTest(t)
	ctx := context.Background()
	first := readmeDoc(t)
	if _, err := ApplyDocument(ctx, c, first, ApplyOptions{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	before := c.Upstream.Query().Where(upstream.Name("memory")).OnlyX(ctx)

	second := readmeDoc(t)
	second.Upstreams = second.Upstreams[:2] // drop legacy
	second.Upstreams[0].URL = "http://127.0.0.1:18081/mcp"
	second.VirtualServers[1].Include = second.VirtualServers[1].Include[:1] // drop memory from ops
	second.VirtualServers[1].Include[0].Tools = nil                         // all tools
	second.VirtualServers = second.VirtualServers[1:]                       // drop conformance
	second.Agents[0].Roles = []string{"reader", "deployer"}
	second.Agents[0].APIKeys = second.Agents[0].APIKeys[1:]
	second.Agents[0].APIKeys[0].Expires = nil
	res, err := ApplyDocument(ctx, c, second, ApplyOptions{Actor: "bob", Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, ch := range res.Changes {
		changes = append(changes, ch.String())
	}
	wantChanges := []string{
		"upstream everything updated (url)",
		"virtual_server conformance deleted",
		"virtual_server ops updated (include)",
		"upstream legacy deleted",
		"agent ci-bot updated (roles)",
		"role reader created",
		"api_key ci-bot/9f86d081 revoked",
		"api_key ci-bot/60303ae2 updated (expires)",
	}
	slices.Sort(changes)
	slices.Sort(wantChanges)
	if !slices.Equal(changes, wantChanges) {
		t.Errorf("changes:\ngot  %q\nwant %q", changes, wantChanges)
	}
	got, err := ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	sortDoc(second)
	slices.Sort(second.Agents[0].Roles)
	second.Agents[0].APIKeys[0].SHA256 = strings.ToLower(second.Agents[0].APIKeys[0].SHA256)
	for _, check := range []struct {
		name      string
		got, want any
	}{
		{"upstreams", got.Upstreams, second.Upstreams},
		{"virtual servers", got.VirtualServers, second.VirtualServers},
		{"agents", got.Agents, second.Agents},
	} {
		if !reflect.DeepEqual(check.got, check.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", check.name, check.got, check.want)
		}
	}
	after := c.Upstream.Query().Where(upstream.Name("memory")).OnlyX(ctx)
	if !after.UpdatedAt.Equal(before.UpdatedAt) || after.UpdatedBy != "alice" {
		t.Errorf("unchanged upstream was rewritten: updated_at %v -> %v, updated_by %q", before.UpdatedAt, after.UpdatedAt, after.UpdatedBy)
	}
	everything := c.Upstream.Query().Where(upstream.Name("everything")).OnlyX(ctx)
	if everything.CreatedBy != "alice" || everything.UpdatedBy != "bob" {
		t.Errorf("everything: created_by %q updated_by %q, want alice and bob", everything.CreatedBy, everything.UpdatedBy)
	}
	if n := c.APIKey.Query().CountX(ctx); n != 2 {
		t.Errorf("%d stored keys, want 2 (one revoked, kept for the audit trail)", n)
	}

	// Re-listing the revoked key reinstates it.
	if _, err := ApplyDocument(ctx, c, first, ApplyOptions{Actor: "carol", Prune: true}); err != nil {
		t.Fatal(err)
	}
	got, err = ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.Agents[0].APIKeys); n != 2 {
		t.Errorf("after re-applying the first document: %d active keys, want 2", n)
	}
}

// TestApplyRejects checks that invalid documents and unresolved key sources
// change nothing and report their paths.
func TestApplyRejects(t *testing.T) {
	t.Parallel()
	c := openTest(t)
	ctx := context.Background()
	doc := readmeDoc(t)
	doc.Upstreams[0].URL = "127.0.0.1:9/mcp"
	doc.Agents[0].APIKeys = append(doc.Agents[0].APIKeys, config.APIKey{Env: "CI_BOT_KEY"})
	_, err := ApplyDocument(ctx, c, doc, ApplyOptions{Actor: "x"})
	if err == nil {
		t.Fatal("apply of an invalid document succeeded")
	}
	for _, want := range []string{"upstreams[0].url: missing scheme", "agents[0].api_keys[2]: env and file keys must be resolved"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := c.Upstream.Query().CountX(ctx); n != 0 {
		t.Errorf("%d upstreams stored after a rejected apply", n)
	}
}

// TestNamePatternMatchesConfig keeps the store's name rule in step with the
// YAML document's.
func TestNamePatternMatchesConfig(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "ops", "ci-bot", "A.b_c-9", "9lives", strings.Repeat("x", 128),
		"", "-a", "_a", ".a", "a b", "a/b", "é", strings.Repeat("x", 129)} {
		doc := "upstreams:\n  - {name: '" + name + "', transport: stdio, command: x}\n"
		_, cfgErr := config.Parse([]byte(doc))
		schemaErr := schematype.ValidateName(name)
		if (cfgErr == nil) != (schemaErr == nil) {
			t.Errorf("name %q: config says %v, store says %v", name, cfgErr, schemaErr)
		}
	}
}

// TestUpgradeFromEarlierSchema opens a database written by an earlier schema
// (made here by hand: an upstreams table without the description,
// connect_timeout_seconds and disabled columns, and no other tables) and
// checks that it migrates and keeps its rows.
func TestUpgradeFromEarlierSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"CREATE TABLE `upstreams` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `created_by` text NULL, `updated_by` text NULL, `name` text NOT NULL, `transport` text NOT NULL, `url` text NULL, `headers` json NULL, `command` text NULL, `args` json NULL, `env` json NULL, `dir` text NULL, `timeout_seconds` real NOT NULL DEFAULT 0)",
		"CREATE UNIQUE INDEX `upstreams_name_key` ON `upstreams` (`name`)",
		"INSERT INTO sqlite_sequence (name, seq) VALUES ('upstreams', 51539607552)",
		"INSERT INTO `upstreams` (`created_at`, `updated_at`, `created_by`, `name`, `transport`, `url`, `timeout_seconds`) VALUES ('2026-01-02 03:04:05+00:00', '2026-01-02 03:04:05+00:00', 'old', 'everything', 'streamable-http', 'http://127.0.0.1:18080/mcp', 30)",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	c, err := Open(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatalf("open old database: %v", err)
	}
	defer c.Close()
	ctx := context.Background()
	u, err := c.Upstream.Query().Where(upstream.Name("everything")).Only(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.TimeoutSeconds != 30 || u.Disabled || u.ConnectTimeoutSeconds != 0 || u.CreatedBy != "old" ||
		!u.CreatedAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("migrated row: %+v", u)
	}
	// The new columns and tables work.
	if err := c.Upstream.UpdateOne(u).SetDisabled(true).SetDescription("kept").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VirtualServer.Create().SetName("vs").Save(ctx); err != nil {
		t.Fatal(err)
	}
	doc, err := ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Upstreams) != 1 || !doc.Upstreams[0].Disabled || doc.Upstreams[0].Timeout.Std() != 30*time.Second {
		t.Errorf("exported %+v", doc.Upstreams)
	}
}

// TestUpgradeFromFixture opens testdata/schema-3e8cc63.db, a store that the
// schema of commit 3e8cc63 wrote (before the admin change log, the tool's
// title and access control; testdata/mkfixture made it, and says how), with
// rows in every table, plus two guardrail rules written here with the
// values that schema used and this one renames (stage input/output,
// detector secret, action warn). Open migrates a copy; every row must
// survive, old values must read as their new names, and the new tables and
// columns must work.
func TestUpgradeFromFixture(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/schema-3e8cc63.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range [][3]string{{"legacy-in", "input", "secret"}, {"legacy-out", "output", "pii"}} {
		if _, err := old.Exec(`INSERT INTO guardrail_rules (created_at, updated_at, name, stage, detector, action, priority, enabled)
			VALUES ('2026-01-02 03:04:05+00:00', '2026-01-02 03:04:05+00:00', ?, ?, ?, 'warn', 0, 1)`, row[0], row[1], row[2]); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	ctx := context.Background()
	c, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatalf("open the fixture: %v", err)
	}
	defer c.Close()

	for _, n := range []struct {
		table     string
		got, want int
	}{
		{"upstreams", c.Upstream.Query().CountX(ctx), 3},
		{"tools", c.Tool.Query().CountX(ctx), 1},
		{"virtual_servers", c.VirtualServer.Query().CountX(ctx), 2},
		{"selections", c.Selection.Query().CountX(ctx), 3},
		{"teams", c.Team.Query().CountX(ctx), 1},
		{"roles", c.Role.Query().CountX(ctx), 1},
		{"agents", c.Agent.Query().CountX(ctx), 1},
		{"api_keys", c.APIKey.Query().CountX(ctx), 2},
		{"grants", c.Grant.Query().CountX(ctx), 1},
		{"policy_rules", c.PolicyRule.Query().CountX(ctx), 1},
		{"guardrail_rules", c.GuardrailRule.Query().CountX(ctx), 3},
		{"rate_limits", c.RateLimit.Query().CountX(ctx), 0},
		{"settings", c.Setting.Query().CountX(ctx), 0},
		{"approval_rules", c.ApprovalRule.Query().CountX(ctx), 1},
		{"secret_bindings", c.SecretBinding.Query().CountX(ctx), 1},
		{"admin_tokens", c.AdminToken.Query().CountX(ctx), 1},
		{"admin_changes", c.AdminChange.Query().CountX(ctx), 0},
	} {
		if n.got != n.want {
			t.Errorf("%s: %d rows, want %d", n.table, n.got, n.want)
		}
	}
	// The declarative part still equals the document that wrote it, plus
	// the grant and guardrail rules and the secret binding, which the
	// document now expresses. The document lists no approval rules: its
	// grant names the store's.
	doc := readmeDoc(t)
	doc.Grants = []config.Grant{{
		Subject: config.Subject{Team: "platform"},
		Target:  config.Target{VirtualServer: "ops", Tools: []string{"say", "get_*"}},
		Effect:  config.EffectRequireApproval, Approval: "two-sre",
	}}
	doc.Guardrails = []config.Guardrail{
		{Name: "aws-keys", Scope: config.Scope{VirtualServer: "ops"}, Detector: config.DetectorRegex, Pattern: `AKIA[0-9A-Z]{16}`, Action: config.ActionRedact},
		{Name: "legacy-in", Direction: config.DirectionRequest, Detector: config.DetectorSecrets, Action: config.ActionFlag},
		{Name: "legacy-out", Direction: config.DirectionResponse, Detector: config.DetectorPII, Action: config.ActionFlag},
	}
	// The binding's lease_scope, a column added since, reads as its default.
	doc.SecretBindings = []config.SecretBinding{{
		Name: "everything-token", Upstream: "everything", Source: config.SecretSourceKV, Path: "secret/data/everything", Key: "token",
		Injection: config.InjectHeader, Target: "Authorization", Template: "Bearer {{.Value}}",
	}}
	doc.ApplyDefaults()
	plan, err := ApplyDocument(ctx, c, doc, ApplyOptions{Prune: true, DryRun: true})
	if err != nil || len(plan.Changes) != 0 {
		t.Errorf("the fixture differs from testdata/readme.yaml and its access rules: %v %v", plan, err)
	}
	exported, err := ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := exported.Validate(); err != nil {
		t.Errorf("the fixture exports an invalid document: %v", err)
	}
	// The unnamed grant is exported under its content name, which
	// applying matches with the stored (still unnamed) grant.
	if g := exported.Grants; len(g) != 1 || g[0].Name != GrantName(doc.Grants[0]) || g[0].Approval != "two-sre" {
		t.Errorf("exported grants %+v", g)
	}
	// The approval rule, which the admin API created, is exported; the
	// columns added since read as a rule that holds nothing by itself.
	if r := exported.ApprovalRules; len(r) != 1 || r[0].Name != "two-sre" || r[0].HoldsCalls() || r[0].When != "" || r[0].ReuseWindow != 0 ||
		len(r[0].ApproverGroups) == 0 || r[0].Quorum < 1 || r[0].Timeout <= 0 {
		t.Errorf("exported approval rules %+v", r)
	}
	if plan, err := ApplyDocument(ctx, c, exported, ApplyOptions{Prune: true}); err != nil || len(plan.Changes) != 0 {
		t.Errorf("applying the fixture's export: %v %v", plan, err)
	}
	if g := exported.Guardrails; len(g) != 3 || g[1].Direction != "request" || g[1].Detector != "secrets" || g[1].Action != "flag" || g[2].Direction != "response" {
		t.Errorf("exported guardrails (legacy values renamed) %+v", g)
	}
	if b := exported.SecretBindings; len(b) != 1 || !reflect.DeepEqual(b[0], doc.SecretBindings[0]) {
		t.Errorf("exported secret bindings %+v", b)
	}
	if exported.Pinning.Mode != config.PinningAuto || len(exported.Pins) != 1 || exported.Pins[0] != (config.Pin{Upstream: "everything", Tool: "echo"}) {
		t.Errorf("pinning %+v, pins %+v", exported.Pinning, exported.Pins)
	}
	// The rest kept its fields and edges.
	tl := c.Tool.Query().WithUpstream().OnlyX(ctx)
	if tl.Name != "echo" || tl.Edges.Upstream.Name != "everything" || !strings.Contains(string(tl.InputSchema), `"message"`) ||
		!tl.FirstSeen.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || tl.Title != "" || PinStatusOf(tl) != PinPending {
		t.Errorf("tool %+v", tl)
	}
	g := c.Grant.Query().WithApprovalRule().WithVirtualServer().OnlyX(ctx)
	if g.Edges.ApprovalRule.Name != "two-sre" || g.Edges.VirtualServer.Name != "ops" || g.Effect != "require_approval" || !slices.Equal(g.Tools, []string{"say", "get_*"}) {
		t.Errorf("grant %+v", g)
	}
	if s := c.SecretBinding.Query().OnlyX(ctx); s.Template != "Bearer {{.Value}}" || s.CreatedBy != "fixture" || s.LeaseScope != secretbinding.LeaseScopeCall {
		t.Errorf("secret binding %+v", s)
	}
	if tok := c.AdminToken.Query().OnlyX(ctx); tok.Name != "root" || !slices.Equal(tok.Roles, []string{"admin"}) || tok.TokenHash == "" {
		t.Errorf("admin token %+v", tok)
	}

	// The change log starts empty and records the first change.
	if r := revision(t, c); r != 0 {
		t.Errorf("revision of the upgraded store %d, want 0", r)
	}
	c.Tool.UpdateOne(tl).SetTitle("Echo").ExecX(ctx)
	log := changesOf(t, c, tl.ID)
	if len(log) != 1 || decode(t, log[0].Before)["title"] != "" || decode(t, log[0].After)["title"] != "Echo" || revision(t, c) != int64(log[0].ID) {
		t.Errorf("change log after the first change: %+v", log)
	}
	// New rows continue their type's ID range.
	u := c.Upstream.Create().SetName("new").SetTransport(schematype.TransportStdio).SetCommand("x").SaveX(ctx)
	if u.ID>>32 != tl.Edges.Upstream.ID>>32 || u.ID <= tl.Edges.Upstream.ID {
		t.Errorf("new upstream ID %d outside the range of %d", u.ID, tl.Edges.Upstream.ID)
	}
	c.Close()
	// Opening again finds the schema current.
	c2, err := Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	c2.Close()
}
