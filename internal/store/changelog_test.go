package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/ent/adminchange"
	"github.com/gatehouse-dev/gatehouse/ent/agent"
	"github.com/gatehouse-dev/gatehouse/ent/apikey"
	"github.com/gatehouse-dev/gatehouse/ent/approvalrule"
	"github.com/gatehouse-dev/gatehouse/ent/grant"
	"github.com/gatehouse-dev/gatehouse/ent/guardrailrule"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/ent/secretbinding"
	"github.com/gatehouse-dev/gatehouse/ent/setting"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

// eachBackend runs f on a fresh SQLite store and, when
// GATEHOUSE_TEST_POSTGRES_URL is set, on a fresh PostgreSQL database.
func eachBackend(t *testing.T, f func(t *testing.T, c *ent.Client)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, openTest(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		c, err := Open(context.Background(), storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		f(t, c)
	})
}

func revision(t *testing.T, c *ent.Client) int64 {
	t.Helper()
	r, err := Revision(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// changesOf returns the change log of one entity, oldest first.
func changesOf(t *testing.T, c *ent.Client, id int) []*ent.AdminChange {
	t.Helper()
	return c.AdminChange.Query().Where(adminchange.EntityID(id)).Order(ent.Asc(adminchange.FieldID)).AllX(context.Background())
}

func decode(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	if raw == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("snapshot %s: %v", raw, err)
	}
	return m
}

// TestChangeLogEveryEntity creates, updates and deletes one entity of every
// type (outside a transaction: the hook makes one) and checks the three
// entries: op, type, ID, name, actor, snapshots before and after, and that
// the revision grows with each.
func TestChangeLogEveryEntity(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := actor.NewContext(context.Background(), "tester")
		up := c.Upstream.Create().SetName("up").SetTransport(schematype.TransportStdio).SetCommand("x").SaveX(ctx)
		vs := c.VirtualServer.Create().SetName("vs").SaveX(ctx)
		ag := c.Agent.Create().SetName("ag").SaveX(ctx)
		hash := identity.HashKey("gh_test")

		type entity struct {
			typ, name      string
			create         func() (int, error)
			update         func(id int) error
			delete         func(id int) error
			field, old, nu string // a field the update changes: old -> nu (JSON text)
			ref            string // a reference the snapshots carry
		}
		for _, e := range []entity{
			{typ: "Upstream", name: "u2",
				create: func() (int, error) {
					v, err := c.Upstream.Create().SetName("u2").SetTransport(schematype.TransportSSE).SetURL("http://a/sse").Save(ctx)
					return id(v, err)
				},
				update: func(id int) error { return c.Upstream.UpdateOneID(id).SetURL("http://b/sse").Exec(ctx) },
				delete: func(id int) error { return c.Upstream.DeleteOneID(id).Exec(ctx) },
				field:  "url", old: `"http://a/sse"`, nu: `"http://b/sse"`},
			{typ: "Tool", name: "echo",
				create: func() (int, error) {
					v, err := c.Tool.Create().SetName("echo").SetUpstream(up).SetInputSchema(json.RawMessage(`{"type":"object"}`)).Save(ctx)
					return id(v, err)
				},
				update: func(id int) error { return c.Tool.UpdateOneID(id).SetDescription("Echo.").Exec(ctx) },
				delete: func(id int) error { return c.Tool.DeleteOneID(id).Exec(ctx) },
				field:  "description", old: `""`, nu: `"Echo."`, ref: "upstream_id"},
			{typ: "VirtualServer", name: "vs2",
				create: func() (int, error) { return id(c.VirtualServer.Create().SetName("vs2").Save(ctx)) },
				update: func(id int) error { return c.VirtualServer.UpdateOneID(id).SetAnonymous(true).Exec(ctx) },
				delete: func(id int) error { return c.VirtualServer.DeleteOneID(id).Exec(ctx) },
				field:  "anonymous", old: `false`, nu: `true`},
			{typ: "Selection", name: "vs/up",
				create: func() (int, error) {
					return id(c.Selection.Create().SetVirtualServer(vs).SetUpstream(up).SetTools([]string{"a"}).Save(ctx))
				},
				update: func(id int) error { return c.Selection.UpdateOneID(id).SetTools([]string{"a", "b"}).Exec(ctx) },
				delete: func(id int) error { return c.Selection.DeleteOneID(id).Exec(ctx) },
				field:  "tools", old: `["a"]`, nu: `["a","b"]`, ref: "virtual_server_id"},
			{typ: "Team", name: "t",
				create: func() (int, error) { return id(c.Team.Create().SetName("t").Save(ctx)) },
				update: func(id int) error { return c.Team.UpdateOneID(id).SetDescription("d").Exec(ctx) },
				delete: func(id int) error { return c.Team.DeleteOneID(id).Exec(ctx) },
				field:  "description", old: `""`, nu: `"d"`},
			{typ: "Role", name: "r",
				create: func() (int, error) { return id(c.Role.Create().SetName("r").Save(ctx)) },
				update: func(id int) error { return c.Role.UpdateOneID(id).SetDescription("d").Exec(ctx) },
				delete: func(id int) error { return c.Role.DeleteOneID(id).Exec(ctx) },
				field:  "description", old: `""`, nu: `"d"`},
			{typ: "Agent", name: "a2",
				create: func() (int, error) { return id(c.Agent.Create().SetName("a2").Save(ctx)) },
				update: func(id int) error {
					return c.Agent.UpdateOneID(id).SetLabels(map[string]string{"env": "prod"}).Exec(ctx)
				},
				delete: func(id int) error { return c.Agent.DeleteOneID(id).Exec(ctx) },
				field:  "labels", old: `null`, nu: `{"env":"prod"}`, ref: "role_ids"},
			{typ: "APIKey", name: "ag/" + hash[:8],
				create: func() (int, error) { return id(c.APIKey.Create().SetAgent(ag).SetKeyHash(hash).Save(ctx)) },
				update: func(id int) error { return c.APIKey.UpdateOneID(id).SetRevoked(true).Exec(ctx) },
				delete: func(id int) error { return c.APIKey.DeleteOneID(id).Exec(ctx) },
				field:  "revoked", old: `false`, nu: `true`, ref: "agent_id"},
			{typ: "Grant",
				create: func() (int, error) {
					return id(c.Grant.Create().SetVirtualServer(vs).SetSubjectKind(grant.SubjectKindAgent).SetSubject("ag").SetTools([]string{"*"}).Save(ctx))
				},
				update: func(id int) error { return c.Grant.UpdateOneID(id).SetPriority(5).Exec(ctx) },
				delete: func(id int) error { return c.Grant.DeleteOneID(id).Exec(ctx) },
				field:  "priority", old: `0`, nu: `5`, ref: "approval_rule_id"},
			{typ: "PolicyRule", name: "p",
				create: func() (int, error) { return id(c.PolicyRule.Create().SetName("p").SetExpression("true").Save(ctx)) },
				update: func(id int) error { return c.PolicyRule.UpdateOneID(id).SetEnabled(false).Exec(ctx) },
				delete: func(id int) error { return c.PolicyRule.DeleteOneID(id).Exec(ctx) },
				field:  "enabled", old: `true`, nu: `false`},
			{typ: "GuardrailRule", name: "g",
				create: func() (int, error) {
					return id(c.GuardrailRule.Create().SetName("g").SetDetector(guardrailrule.DetectorPii).SetVirtualServer(vs).Save(ctx))
				},
				update: func(id int) error {
					return c.GuardrailRule.UpdateOneID(id).SetAction(guardrailrule.ActionFlag).Exec(ctx)
				},
				delete: func(id int) error { return c.GuardrailRule.DeleteOneID(id).Exec(ctx) },
				field:  "action", old: `"block"`, nu: `"flag"`, ref: "virtual_server_id"},
			{typ: "RateLimit", name: "rl",
				create: func() (int, error) {
					return id(c.RateLimit.Create().SetName("rl").SetRequests(10).SetPerSeconds(60).SetVirtualServer(vs).Save(ctx))
				},
				update: func(id int) error { return c.RateLimit.UpdateOneID(id).SetRequests(20).Exec(ctx) },
				delete: func(id int) error { return c.RateLimit.DeleteOneID(id).Exec(ctx) },
				field:  "requests", old: `10`, nu: `20`, ref: "virtual_server_id"},
			{typ: "Setting", name: "settings",
				create: func() (int, error) {
					return id(c.Setting.Create().SetScope("global").SetPinningMode(setting.PinningModeApprove).Save(ctx))
				},
				update: func(id int) error { return c.Setting.UpdateOneID(id).SetPinningMode(setting.PinningModeOff).Exec(ctx) },
				delete: func(id int) error { return c.Setting.DeleteOneID(id).Exec(ctx) },
				field:  "pinning_mode", old: `"approve"`, nu: `"off"`},
			{typ: "ApprovalRule", name: "ar",
				create: func() (int, error) {
					return id(c.ApprovalRule.Create().SetName("ar").SetApproverGroups([]string{"sre"}).Save(ctx))
				},
				update: func(id int) error {
					return c.ApprovalRule.UpdateOneID(id).SetOnTimeout(approvalrule.OnTimeoutEscalate).SetEscalateTo([]string{"ops"}).Exec(ctx)
				},
				delete: func(id int) error { return c.ApprovalRule.DeleteOneID(id).Exec(ctx) },
				field:  "on_timeout", old: `"deny"`, nu: `"escalate"`},
			{typ: "SecretBinding", name: "sb",
				create: func() (int, error) {
					return id(c.SecretBinding.Create().SetName("sb").SetUpstream(up).SetSource(secretbinding.SourceDynamic).
						SetRole("r").SetKey("pw").SetPath("database").SetInjection(secretbinding.InjectionEnv).SetTarget("DB_PASSWORD").Save(ctx))
				},
				update: func(id int) error { return c.SecretBinding.UpdateOneID(id).SetTarget("PGPASSWORD").Exec(ctx) },
				delete: func(id int) error { return c.SecretBinding.DeleteOneID(id).Exec(ctx) },
				field:  "target", old: `"DB_PASSWORD"`, nu: `"PGPASSWORD"`, ref: "upstream_id"},
			{typ: "AdminToken", name: "tok",
				create: func() (int, error) {
					_, tok, err := CreateAdminToken(ctx, c, "tok", []string{"viewer"}, nil)
					return id(tok, err)
				},
				update: func(id int) error {
					return c.AdminToken.UpdateOneID(id).SetRoles([]string{"viewer", "auditor"}).Exec(ctx)
				},
				delete: func(id int) error { return c.AdminToken.DeleteOneID(id).Exec(ctx) },
				field:  "roles", old: `["viewer"]`, nu: `["viewer","auditor"]`},
		} {
			rev := revision(t, c)
			eid, err := e.create()
			if err != nil {
				t.Fatalf("%s: create: %v", e.typ, err)
			}
			afterCreate := revision(t, c)
			if err := e.update(eid); err != nil {
				t.Fatalf("%s: update: %v", e.typ, err)
			}
			afterUpdate := revision(t, c)
			if err := e.delete(eid); err != nil {
				t.Fatalf("%s: delete: %v", e.typ, err)
			}
			afterDelete := revision(t, c)
			if !(rev < afterCreate && afterCreate < afterUpdate && afterUpdate < afterDelete) {
				t.Errorf("%s: revisions %d, %d, %d, %d do not grow", e.typ, rev, afterCreate, afterUpdate, afterDelete)
			}
			log := changesOf(t, c, eid)
			if len(log) != 3 {
				t.Fatalf("%s: %d change log entries, want 3: %+v", e.typ, len(log), log)
			}
			if int64(log[2].ID) != afterDelete {
				t.Errorf("%s: revision %d, latest entry %d", e.typ, afterDelete, log[2].ID)
			}
			for i, op := range []adminchange.Op{adminchange.OpCreate, adminchange.OpUpdate, adminchange.OpDelete} {
				l := log[i]
				if l.Op != op || l.EntityType != e.typ || l.EntityName != e.name || l.Actor != "tester" || l.At.IsZero() {
					t.Errorf("%s: entry %d: %s %s %q by %q at %v", e.typ, i, l.Op, l.EntityType, l.EntityName, l.Actor, l.At)
				}
				for _, raw := range []json.RawMessage{l.Before, l.After} {
					if strings.Contains(string(raw), "token_hash") || strings.Contains(string(raw), "password") {
						t.Errorf("%s: snapshot holds a secret: %s", e.typ, raw)
					}
				}
			}
			created, updBefore, updAfter, deleted := decode(t, log[0].After), decode(t, log[1].Before), decode(t, log[1].After), decode(t, log[2].Before)
			if log[0].Before != nil || log[2].After != nil {
				t.Errorf("%s: create has before %s, delete has after %s", e.typ, log[0].Before, log[2].After)
			}
			if got := jsonText(updBefore[e.field]); got != e.old {
				t.Errorf("%s: before update %s = %s, want %s", e.typ, e.field, got, e.old)
			}
			if got := jsonText(updAfter[e.field]); got != e.nu {
				t.Errorf("%s: after update %s = %s, want %s", e.typ, e.field, got, e.nu)
			}
			if got := jsonText(deleted[e.field]); got != e.nu {
				t.Errorf("%s: deleted %s = %s, want %s", e.typ, e.field, got, e.nu)
			}
			if created["id"] != float64(eid) || created["created_by"] != "tester" {
				t.Errorf("%s: created snapshot %v", e.typ, created)
			}
			if _, ok := created[e.ref]; e.ref != "" && !ok {
				t.Errorf("%s: snapshot lacks %s: %v", e.typ, e.ref, created)
			}
		}
	})
}

// id returns the ID of the entity a create returned.
func id(v any, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, ok := createdID(v)
	if !ok {
		return 0, fmt.Errorf("no ID in %T", v)
	}
	return n, nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestChangeLogBulkAndTransactions checks one entry per entity of bulk
// updates and deletes, that entries commit and roll back with their
// transaction, and that use bookkeeping and failed writes log nothing.
func TestChangeLogBulkAndTransactions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := context.Background()
		ag := c.Agent.Create().SetName("ag").SaveX(ctx)
		var keys []int
		for i := range 3 {
			k := c.APIKey.Create().SetAgent(ag).SetKeyHash(identity.HashKey(fmt.Sprint("gh_", i))).SaveX(ctx)
			keys = append(keys, k.ID)
		}
		byAgent := apikey.HasAgentWith(agent.ID(ag.ID))

		n := c.APIKey.Update().Where(byAgent, apikey.Revoked(false)).SetRevoked(true).SaveX(ctx)
		if n != 3 {
			t.Fatalf("revoked %d keys", n)
		}
		for _, k := range keys {
			log := changesOf(t, c, k)
			if len(log) != 2 || log[1].Op != adminchange.OpUpdate || decode(t, log[1].After)["revoked"] != true || decode(t, log[1].Before)["revoked"] != false {
				t.Errorf("key %d after a bulk update: %+v", k, log)
			}
		}
		rev := revision(t, c)
		if n := c.APIKey.Update().Where(byAgent, apikey.Revoked(false)).SetRevoked(true).SaveX(ctx); n != 0 || revision(t, c) != rev {
			t.Errorf("an update of no rows: %d rows, revision %d -> %d", n, rev, revision(t, c))
		}

		// Bookkeeping of use is not a change.
		token, tok, err := CreateAdminToken(ctx, c, "root", []string{"admin"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rev = revision(t, c)
		if _, err := AuthenticateAdminToken(ctx, c, token, time.Now()); err != nil {
			t.Fatal(err)
		}
		c.APIKey.UpdateOneID(keys[0]).SetLastUsedAt(time.Now()).ExecX(ctx)
		if got := revision(t, c); got != rev {
			t.Errorf("recording use changed the revision %d -> %d", rev, got)
		}
		if used := c.AdminToken.GetX(ctx, tok.ID); used.LastUsedAt == nil {
			t.Error("authentication did not record last_used_at")
		}

		if n := c.APIKey.Delete().Where(byAgent).ExecX(ctx); n != 3 {
			t.Fatalf("deleted %d keys", n)
		}
		for _, k := range keys {
			if log := changesOf(t, c, k); len(log) != 3 || log[2].Op != adminchange.OpDelete || log[2].EntityName != "ag/"+identity.HashKey("gh_0")[:8] && k == keys[0] {
				t.Errorf("key %d after a bulk delete: %+v", k, log)
			}
		}

		// Entries belong to their transaction.
		rev = revision(t, c)
		tx, err := c.Tx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		team := tx.Team.Create().SetName("rolled-back").SaveX(ctx)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if got := revision(t, c); got != rev || len(changesOf(t, c, team.ID)) != 0 {
			t.Errorf("a rolled-back create left revision %d (was %d) and %d entries", got, rev, len(changesOf(t, c, team.ID)))
		}
		tx, err = c.Tx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		team = tx.Team.Create().SetName("committed").SaveX(ctx)
		inTx, err := Revision(ctx, tx.Client())
		if err != nil {
			t.Fatal(err)
		}
		if got := revision(t, c); got != rev || inTx <= rev {
			t.Errorf("before commit: revision %d outside (want %d), %d inside (want more)", got, rev, inTx)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := revision(t, c); got != inTx || len(changesOf(t, c, team.ID)) != 1 {
			t.Errorf("after commit: revision %d, want %d", got, inTx)
		}

		// Failed writes log nothing: a validation error, and a constraint
		// violation in the database (outside a transaction: the hook's own
		// transaction rolls back).
		rev = revision(t, c)
		if err := c.Team.Create().SetName("a b").Exec(ctx); err == nil {
			t.Error("invalid name accepted")
		}
		if err := c.Team.Create().SetName("committed").Exec(ctx); err == nil {
			t.Error("duplicate name accepted")
		}
		if got := revision(t, c); got != rev {
			t.Errorf("failed writes moved the revision %d -> %d", rev, got)
		}
		if n := c.Team.Query().CountX(ctx); n != 1 {
			t.Errorf("%d teams", n)
		}
	})
}

// TestRevisionCommitOrder runs concurrent writers while polling the
// revision: a change must never become visible below a revision already
// seen, or a poller would miss it. (PostgreSQL hands out IDs at insert
// time; the change log's advisory lock makes them commit in order.)
func TestRevisionCommitOrder(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := context.Background()
		type seen struct {
			rev   int64
			below int // entries at or below rev
		}
		var (
			wg      sync.WaitGroup
			done    = make(chan struct{})
			stopped = make(chan struct{})
			samples []seen
		)
		go func() {
			defer close(done)
			for {
				rev, err := Revision(ctx, c)
				if err != nil {
					t.Error(err)
					return
				}
				n := c.AdminChange.Query().Where(adminchange.IDLTE(int(rev))).CountX(ctx)
				samples = append(samples, seen{rev, n})
				select {
				case <-stopped:
					return
				default:
				}
			}
		}()
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					err := withTx(ctx, c, func(tx *ent.Tx) error {
						if err := tx.Team.Create().SetName(fmt.Sprintf("w%d-%d", w, i)).Exec(ctx); err != nil {
							return err
						}
						time.Sleep(time.Millisecond) // widen the window between insert and commit
						return nil
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stopped)
		<-done
		for _, s := range samples {
			if n := c.AdminChange.Query().Where(adminchange.IDLTE(int(s.rev))).CountX(ctx); n != s.below {
				t.Fatalf("revision %d showed %d entries, later %d: a change committed below a seen revision", s.rev, s.below, n)
			}
		}
		if len(samples) < 2 {
			t.Logf("only %d samples", len(samples))
		}
	})
}

func withTx(ctx context.Context, c *ent.Client, f func(*ent.Tx) error) error {
	tx, err := c.Tx(ctx)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func changeStrings(res *ApplyResult) []string {
	var s []string
	for _, ch := range res.Changes {
		s = append(s, ch.String())
	}
	slices.Sort(s)
	return s
}

// TestApplyOptions checks that an apply without Prune leaves what the
// document does not mention alone, that Prune deletes it, that a dry run
// returns the plan and changes nothing (in its own transaction and in a
// savepoint of the caller's), and that applied changes reach the change log
// with the actor.
func TestApplyOptions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := context.Background()
		if _, err := ApplyDocument(ctx, c, readmeDoc(t), ApplyOptions{Actor: "seed"}); err != nil {
			t.Fatal(err)
		}
		rev := revision(t, c)
		if n := c.AdminChange.Query().Where(adminchange.Actor("seed")).CountX(ctx); n < 10 {
			t.Errorf("%d change log entries by seed", n)
		}

		// The document drops the legacy upstream, the conformance server
		// and a key, and changes a URL.
		doc := readmeDoc(t)
		doc.Upstreams = doc.Upstreams[:2]
		doc.Upstreams[0].URL = "http://127.0.0.1:18081/mcp"
		doc.VirtualServers = doc.VirtualServers[1:]
		doc.Agents[0].APIKeys = doc.Agents[0].APIKeys[1:]
		before, err := ExportDocument(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		pruned := []string{
			"api_key ci-bot/9f86d081 revoked",
			"upstream everything updated (url)",
			"upstream legacy deleted",
			"virtual_server conformance deleted",
		}
		res, err := ApplyDocument(ctx, c, doc, ApplyOptions{Actor: "dry", Prune: true, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := changeStrings(res); !slices.Equal(got, pruned) {
			t.Errorf("dry run plan:\ngot  %q\nwant %q", got, pruned)
		}
		after, err := ExportDocument(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if revision(t, c) != rev || len(after.Upstreams) != len(before.Upstreams) || after.Upstreams[0].URL != before.Upstreams[0].URL {
			t.Errorf("the dry run changed the store: revision %d -> %d", rev, revision(t, c))
		}

		// Without Prune, only the URL changes.
		res, err = ApplyDocument(ctx, c, doc, ApplyOptions{Actor: "merge"})
		if err != nil {
			t.Fatal(err)
		}
		if got := changeStrings(res); !slices.Equal(got, []string{"upstream everything updated (url)"}) {
			t.Errorf("apply without prune: %q", got)
		}
		if n := c.Upstream.Query().CountX(ctx); n != 3 {
			t.Errorf("%d upstreams after an apply without prune, want 3", n)
		}
		if l := c.AdminChange.Query().Where(adminchange.Actor("merge")).AllX(ctx); len(l) != 1 || l[0].EntityName != "everything" || l[0].Op != adminchange.OpUpdate {
			t.Errorf("change log of the merge: %+v", l)
		}

		// A dry run inside the caller's transaction rolls back to a
		// savepoint: the caller's own writes stay, and it can commit.
		tx, err := c.Tx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tx.Team.Create().SetName("kept").ExecX(ctx)
		res, err = ApplyDocument(ctx, tx.Client(), doc, ApplyOptions{Prune: true, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := changeStrings(res); len(got) != 3 {
			t.Errorf("dry run in a transaction: %q", got)
		}
		// An invalid one inside the transaction leaves it usable too.
		bad := readmeDoc(t)
		bad.Upstreams[0].Transport = "carrier-pigeon"
		if _, err := ApplyDocument(ctx, tx.Client(), bad, ApplyOptions{DryRun: true}); err == nil {
			t.Error("invalid document accepted")
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if c.Team.Query().CountX(ctx) != 2 || c.Upstream.Query().CountX(ctx) != 3 {
			t.Errorf("after the transaction: %d teams, %d upstreams", c.Team.Query().CountX(ctx), c.Upstream.Query().CountX(ctx))
		}

		// A database error inside a dry run (PostgreSQL refuses NUL in
		// text; SQLite takes it) leaves the caller's transaction usable.
		tx, err = c.Tx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nul := readmeDoc(t)
		nul.VirtualServers[0].Description = "a\x00b"
		_, err = ApplyDocument(ctx, tx.Client(), nul, ApplyOptions{DryRun: true})
		t.Logf("dry run with NUL in a description: %v", err)
		tx.Team.Create().SetName("after-error").ExecX(ctx)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}

		// With Prune, what the document lacks goes.
		res, err = ApplyDocument(ctx, c, doc, ApplyOptions{Actor: "prune", Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := changeStrings(res); !slices.Equal(got, []string{pruned[0], pruned[2], pruned[3]}) {
			t.Errorf("apply with prune: %q", got)
		}
		if n := c.Upstream.Query().CountX(ctx); n != 2 {
			t.Errorf("%d upstreams after prune, want 2", n)
		}
	})
}

// TestChangeLogOwnedDeletes: deleting a virtual server deletes its
// selections, grants, guardrail rules and rate limits, and deleting an
// agent its API keys; each gets its own delete entry, before the owner's,
// in the owner's transaction.
func TestChangeLogOwnedDeletes(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := actor.NewContext(context.Background(), "tester")
		up := c.Upstream.Create().SetName("up").SetTransport(schematype.TransportStdio).SetCommand("x").SaveX(ctx)
		vs := c.VirtualServer.Create().SetName("vs").SaveX(ctx)
		other := c.VirtualServer.Create().SetName("other").SaveX(ctx)
		ag := c.Agent.Create().SetName("ag").SaveX(ctx)
		owned := []int{
			c.Selection.Create().SetVirtualServer(vs).SetUpstream(up).SaveX(ctx).ID,
			c.Grant.Create().SetVirtualServer(vs).SetSubjectKind(grant.SubjectKindAgent).SetSubject("ag").SetTools([]string{"*"}).SaveX(ctx).ID,
			c.GuardrailRule.Create().SetName("g").SetDetector(guardrailrule.DetectorPii).SetVirtualServer(vs).SaveX(ctx).ID,
			c.RateLimit.Create().SetName("rl").SetRequests(10).SetPerSeconds(60).SetVirtualServer(vs).SaveX(ctx).ID,
		}
		kept := c.Grant.Create().SetVirtualServer(other).SetSubjectKind(grant.SubjectKindAgent).SetSubject("ag").SetTools([]string{"*"}).SaveX(ctx)
		key := c.APIKey.Create().SetAgent(ag).SetKeyHash(identity.HashKey("gh_owned")).SaveX(ctx)

		c.VirtualServer.DeleteOneID(vs.ID).ExecX(ctx)
		c.Agent.DeleteOneID(ag.ID).ExecX(ctx)
		for owner, ids := range map[int][]int{vs.ID: owned, ag.ID: {key.ID}} {
			ownerLog := changesOf(t, c, owner)
			last := ownerLog[len(ownerLog)-1]
			if last.Op != adminchange.OpDelete {
				t.Fatalf("owner %d: last entry %+v", owner, last)
			}
			for _, id := range ids {
				log := changesOf(t, c, id)
				if len(log) != 2 || log[1].Op != adminchange.OpDelete || log[1].Actor != "tester" || log[1].ID > last.ID || decode(t, log[1].Before) == nil {
					t.Errorf("entity %d owned by %d: %+v (owner's delete is entry %d)", id, owner, log, last.ID)
				}
			}
		}
		if n := c.Grant.Query().CountX(ctx); n != 1 || len(changesOf(t, c, kept.ID)) != 1 {
			t.Errorf("%d grants left, want the other virtual server's; its log %+v", n, changesOf(t, c, kept.ID))
		}
	})
}
