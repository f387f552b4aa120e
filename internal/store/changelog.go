package store

/*
The admin change log.

Every create, update and delete of a configuration entity writes one
AdminChange row per affected entity (who, what, the entity before and
after), in the transaction of the change, so that the log and the
configuration never disagree. A store-level hook ([changeLog]), installed
by [Open] on every entity client, does it:

  - A mutation already in a transaction (every GraphQL mutation, every
    [ApplyDocument]) logs through its transaction's client.
  - A mutation outside one (e.g. [CreateAdminToken] at bootstrap) gets a
    transaction of its own: the hook begins it on the database and puts it
    in the context, and the client's driver ([txRouter]) runs every
    statement issued with that context in it. (Bulk creates outside a
    transaction are not supported: ent runs their later hooks with the
    caller's context. Run them in a transaction.)

Snapshots are read in the transaction before and after the mutation, by ID
(bulk updates and deletes find theirs with the mutation's predicates), so a
bulk change logs one row per entity. Bookkeeping updates that only record
when a key or token was last used are not logged, nor are writes of the log
itself. What a virtual server or an agent owns (selections, grants,
guardrail rules, rate limits; API keys) is deleted through Ent before its
owner (cascade.go), so each gets a row of its own. Rows that the database
still deletes by cascade (the tools of a deleted upstream, discovered
rather than configured) are covered by the row of the entity whose deletion
caused them.

The revision of the configuration ([Revision]) is the largest AdminChange
ID. IDs grow, but a concurrent transaction could take an ID and commit after
a later one, which a poller of the maximum would miss. SQLite serializes
writers (every transaction begins IMMEDIATE); on PostgreSQL the hook takes a
transaction-scoped advisory lock before the first write of each logged
mutation, so config writers commit one at a time, in ID order. Admin writes
are rare: the serialization costs nothing that matters.
*/

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/ent/adminchange"
	"github.com/gatehouse-dev/gatehouse/ent/agent"
	"github.com/gatehouse-dev/gatehouse/ent/apikey"
	"github.com/gatehouse-dev/gatehouse/ent/approvalrule"
	"github.com/gatehouse-dev/gatehouse/ent/grant"
	"github.com/gatehouse-dev/gatehouse/ent/guardrailrule"
	"github.com/gatehouse-dev/gatehouse/ent/ratelimit"
	"github.com/gatehouse-dev/gatehouse/ent/role"
	"github.com/gatehouse-dev/gatehouse/ent/secretbinding"
	"github.com/gatehouse-dev/gatehouse/ent/selection"
	"github.com/gatehouse-dev/gatehouse/ent/team"
	"github.com/gatehouse-dev/gatehouse/ent/tool"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/ent/virtualserver"
)

// Revision returns the configuration's revision: the ID of the latest
// admin change log entry, 0 when there is none. Every committed change to
// the configuration increases it, whichever process or replica made it, so
// a gateway polls it to know when to reload. It is one indexed read.
func Revision(ctx context.Context, client *ent.Client) (int64, error) {
	id, err := client.AdminChange.Query().Order(ent.Desc(adminchange.FieldID)).FirstID(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read config revision: %w", err)
	}
	return int64(id), nil
}

// revisionLockKey is the PostgreSQL advisory lock that config writers hold
// until they commit ("gatehous" in ASCII).
const revisionLockKey int64 = 0x67617465686f7573

// loggedMutation is what the hook needs of a generated mutation beyond
// [ent.Mutation].
type loggedMutation interface {
	ent.Mutation
	Client() *ent.Client
	Tx() (*ent.Tx, error)
	IDs(ctx context.Context) ([]int, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// changeLog returns the hook that writes the admin change log (see the
// comment at the top of this file). db begins the transactions of
// mutations made outside one.
func changeLog(db *entsql.Driver) ent.Hook {
	return func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			if m.Type() == ent.TypeAdminChange || m.Type() == ent.TypeApproval || bookkeeping(m) {
				return next.Mutate(ctx, m)
			}
			lm, ok := m.(loggedMutation)
			if !ok {
				return nil, fmt.Errorf("change log: unexpected mutation %T", m)
			}
			if _, err := lm.Tx(); err == nil || routedTx(ctx) != nil {
				return record(ctx, lm, next, db.Dialect())
			}
			tx, err := db.Tx(ctx)
			if err != nil {
				return nil, fmt.Errorf("change log: begin: %w", err)
			}
			v, err := record(context.WithValue(ctx, routedTxKey{}, tx), lm, next, db.Dialect())
			if err != nil {
				_ = tx.Rollback()
				return nil, err
			}
			if err := tx.Commit(); err != nil {
				return nil, fmt.Errorf("change log: commit: %w", err)
			}
			return v, nil
		})
	}
}

// bookkeeping reports whether m only records the use of a key or token
// (last_used_at) or that an upstream still serves a tool (last_seen),
// keeping updated_at as it was: not an admin's change.
func bookkeeping(m ent.Mutation) bool {
	if !m.Op().Is(ent.OpUpdate|ent.OpUpdateOne) || len(m.ClearedFields()) > 0 || len(m.AddedFields()) > 0 ||
		len(m.AddedEdges()) > 0 || len(m.RemovedEdges()) > 0 || len(m.ClearedEdges()) > 0 {
		return false
	}
	used := false
	for _, f := range m.Fields() {
		switch f {
		case "last_used_at", "last_seen":
			used = true
		case "updated_at", "updated_by":
		default:
			return false
		}
	}
	return used
}

// record runs m through next and logs it, in m's transaction (or the one
// routed through ctx).
func record(ctx context.Context, m loggedMutation, next ent.Mutator, dialectName string) (ent.Value, error) {
	c := m.Client()
	if dialectName == dialect.Postgres {
		if _, err := m.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", revisionLockKey); err != nil {
			return nil, fmt.Errorf("change log: lock: %w", err)
		}
	}
	var op adminchange.Op
	switch {
	case m.Op().Is(ent.OpCreate):
		op = adminchange.OpCreate
	case m.Op().Is(ent.OpUpdate | ent.OpUpdateOne):
		op = adminchange.OpUpdate
	default:
		op = adminchange.OpDelete
	}
	var (
		ids    []int
		before = map[int]*snapshot{}
	)
	if op != adminchange.OpCreate {
		var err error
		if ids, err = m.IDs(ctx); err != nil {
			return nil, fmt.Errorf("change log: %w", err)
		}
		for _, id := range ids {
			s, err := takeSnapshot(ctx, c, m.Type(), id)
			switch {
			case ent.IsNotFound(err):
				// next reports it, if it matters.
			case err != nil:
				return nil, err
			default:
				before[id] = s
			}
		}
	}
	v, err := next.Mutate(ctx, m)
	if err != nil {
		return nil, err
	}
	if op == adminchange.OpCreate {
		id, ok := createdID(v)
		if !ok {
			return nil, fmt.Errorf("change log: cannot tell the ID of the new %s", m.Type())
		}
		ids = []int{id}
	}
	now := time.Now()
	who := actor.FromContext(ctx)
	rows := make([]*ent.AdminChangeCreate, 0, len(ids))
	for _, id := range ids {
		b := before[id]
		var a *snapshot
		if op != adminchange.OpDelete {
			if a, err = takeSnapshot(ctx, c, m.Type(), id); ent.IsNotFound(err) {
				continue // a bulk update's row that matched no more
			} else if err != nil {
				return nil, err
			}
		} else if b == nil {
			continue // deleted by someone else meanwhile
		}
		row := c.AdminChange.Create().
			SetAt(now).
			SetActor(who).
			SetOp(op).
			SetEntityType(m.Type()).
			SetEntityID(id)
		if b != nil {
			row.SetBefore(b.data).SetEntityName(b.name)
		}
		if a != nil {
			row.SetAfter(a.data).SetEntityName(a.name)
		}
		rows = append(rows, row)
	}
	if len(rows) > 0 {
		if err := c.AdminChange.CreateBulk(rows...).Exec(ctx); err != nil {
			return nil, fmt.Errorf("change log: write: %w", err)
		}
	}
	return v, nil
}

// createdID returns the ID of the entity a create returned.
func createdID(v ent.Value) (int, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	f := rv.Elem().FieldByName("ID")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return 0, false
	}
	return int(f.Int()), true
}

// snapshot is an entity as the change log shows it.
type snapshot struct {
	data json.RawMessage // its fields, and the IDs of the entities it refers to
	name string          // its name, if it has one
}

// takeSnapshot reads the entity of type typ with id. The result holds every
// field under its Ent name (secrets, which Ent keeps out of JSON, never) and,
// as NAME_id, the entity each of its unique edges leads to; an agent also
// lists its roles. Edges to the entity's own children (an upstream's tools,
// a virtual server's selections) are left out: the children log themselves.
func takeSnapshot(ctx context.Context, c *ent.Client, typ string, id int) (*snapshot, error) {
	var (
		v    any
		refs = map[string]any{}
		name string
		err  error
	)
	switch typ {
	case ent.TypeUpstream:
		v, err = c.Upstream.Get(ctx, id)
	case ent.TypeTool:
		var t *ent.Tool
		t, err = c.Tool.Query().Where(tool.ID(id)).
			WithUpstream(func(q *ent.UpstreamQuery) { q.Select(upstream.FieldID) }).Only(ctx)
		if err == nil {
			v, refs["upstream_id"] = t, edgeID(t.Edges.Upstream)
		}
	case ent.TypeVirtualServer:
		v, err = c.VirtualServer.Get(ctx, id)
	case ent.TypeSelection:
		var s *ent.Selection
		s, err = c.Selection.Query().Where(selection.ID(id)).
			WithVirtualServer(func(q *ent.VirtualServerQuery) { q.Select(virtualserver.FieldID, virtualserver.FieldName) }).
			WithUpstream(func(q *ent.UpstreamQuery) { q.Select(upstream.FieldID, upstream.FieldName) }).
			Only(ctx)
		if err == nil {
			v, refs["virtual_server_id"], refs["upstream_id"] = s, edgeID(s.Edges.VirtualServer), edgeID(s.Edges.Upstream)
			if s.Edges.VirtualServer != nil && s.Edges.Upstream != nil {
				name = s.Edges.VirtualServer.Name + "/" + s.Edges.Upstream.Name
			}
		}
	case ent.TypeTeam:
		v, err = c.Team.Get(ctx, id)
	case ent.TypeRole:
		v, err = c.Role.Query().Where(role.ID(id)).Only(ctx)
	case ent.TypeAgent:
		var a *ent.Agent
		a, err = c.Agent.Query().Where(agent.ID(id)).
			WithTeam(func(q *ent.TeamQuery) { q.Select(team.FieldID) }).
			WithRoles(func(q *ent.RoleQuery) { q.Select(role.FieldID).Order(ent.Asc(role.FieldID)) }).
			Only(ctx)
		if err == nil {
			roles := make([]int, len(a.Edges.Roles))
			for i, r := range a.Edges.Roles {
				roles[i] = r.ID
			}
			v, refs["team_id"], refs["role_ids"] = a, edgeID(a.Edges.Team), roles
		}
	case ent.TypeAPIKey:
		var k *ent.APIKey
		k, err = c.APIKey.Query().Where(apikey.ID(id)).
			WithAgent(func(q *ent.AgentQuery) { q.Select(agent.FieldID, agent.FieldName) }).Only(ctx)
		if err == nil {
			v, refs["agent_id"] = k, edgeID(k.Edges.Agent)
			name = k.KeyHash
			if len(name) > 8 {
				name = name[:8]
			}
			if k.Edges.Agent != nil {
				name = k.Edges.Agent.Name + "/" + name
			}
		}
	case ent.TypeGrant:
		var g *ent.Grant
		g, err = c.Grant.Query().Where(grant.ID(id)).
			WithVirtualServer(func(q *ent.VirtualServerQuery) { q.Select(virtualserver.FieldID) }).
			WithApprovalRule(func(q *ent.ApprovalRuleQuery) { q.Select(approvalrule.FieldID) }).
			Only(ctx)
		if err == nil {
			v, refs["virtual_server_id"], refs["approval_rule_id"] = g, edgeID(g.Edges.VirtualServer), edgeID(g.Edges.ApprovalRule)
		}
	case ent.TypePolicyRule:
		v, err = c.PolicyRule.Get(ctx, id)
	case ent.TypeGuardrailRule:
		var g *ent.GuardrailRule
		g, err = c.GuardrailRule.Query().Where(guardrailrule.ID(id)).
			WithVirtualServer(func(q *ent.VirtualServerQuery) { q.Select(virtualserver.FieldID) }).Only(ctx)
		if err == nil {
			v, refs["virtual_server_id"] = g, edgeID(g.Edges.VirtualServer)
		}
	case ent.TypeRateLimit:
		var l *ent.RateLimit
		l, err = c.RateLimit.Query().Where(ratelimit.ID(id)).
			WithVirtualServer(func(q *ent.VirtualServerQuery) { q.Select(virtualserver.FieldID) }).Only(ctx)
		if err == nil {
			v, refs["virtual_server_id"] = l, edgeID(l.Edges.VirtualServer)
		}
	case ent.TypeSetting:
		var s *ent.Setting
		if s, err = c.Setting.Get(ctx, id); err == nil {
			v, name = s, "settings"
		}
	case ent.TypeApprovalRule:
		v, err = c.ApprovalRule.Get(ctx, id)
	case ent.TypeSecretBinding:
		var s *ent.SecretBinding
		s, err = c.SecretBinding.Query().Where(secretbinding.ID(id)).
			WithUpstream(func(q *ent.UpstreamQuery) { q.Select(upstream.FieldID) }).Only(ctx)
		if err == nil {
			v, refs["upstream_id"] = s, edgeID(s.Edges.Upstream)
		}
	case ent.TypeAdminToken:
		v, err = c.AdminToken.Get(ctx, id)
	case ent.TypeWebhook:
		v, err = c.Webhook.Get(ctx, id) // the secret is Sensitive: not in the snapshot
	default:
		return nil, fmt.Errorf("change log: no snapshot for entity type %s", typ)
	}
	if err != nil {
		if ent.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("change log: read %s %d: %w", typ, id, err)
	}
	fields := entityFields(v)
	for k, r := range refs {
		fields[k] = r
	}
	if n, ok := fields["name"].(string); ok && name == "" {
		name = n
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("change log: encode %s %d: %w", typ, id, err)
	}
	return &snapshot{data: data, name: name}, nil
}

// edgeID is the ID of an edge's entity (a pointer to an Ent entity), or nil
// when the edge is unset.
func edgeID(e any) any {
	rv := reflect.ValueOf(e)
	if !rv.IsValid() || rv.IsNil() {
		return nil
	}
	return rv.Elem().FieldByName("ID").Interface()
}

// entityFields returns the fields of an Ent entity under their JSON names,
// zero values included. Ent tags sensitive fields json:"-": they are left
// out, as are the edges and everything unexported.
func entityFields(v any) map[string]any {
	rv := reflect.ValueOf(v).Elem()
	rt := rv.Type()
	out := make(map[string]any, rt.NumField())
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if !f.IsExported() || f.Name == "Edges" {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = rv.Field(i).Interface()
	}
	return out
}

// txRouter is the driver of the clients [Open] returns: statements issued
// with a context that carries a transaction of the change-log hook run in
// that transaction; the others go to the database as usual.
type txRouter struct {
	*entsql.Driver
}

type routedTxKey struct{}

// routedTx returns the transaction ctx routes statements to, or nil.
func routedTx(ctx context.Context) dialect.Tx {
	tx, _ := ctx.Value(routedTxKey{}).(dialect.Tx)
	return tx
}

// Exec implements [dialect.ExecQuerier].
func (d txRouter) Exec(ctx context.Context, query string, args, v any) error {
	if tx := routedTx(ctx); tx != nil {
		return tx.Exec(ctx, query, args, v)
	}
	return d.Driver.Exec(ctx, query, args, v)
}

// Query implements [dialect.ExecQuerier].
func (d txRouter) Query(ctx context.Context, query string, args, v any) error {
	if tx := routedTx(ctx); tx != nil {
		return tx.Query(ctx, query, args, v)
	}
	return d.Driver.Query(ctx, query, args, v)
}

// ExecContext runs a raw statement, as the generated ExecContext methods do.
func (d txRouter) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if tx, ok := routedTx(ctx).(entsql.ExecQuerier); ok {
		return tx.ExecContext(ctx, query, args...)
	}
	return d.Driver.ExecContext(ctx, query, args...)
}

// QueryContext runs a raw query, as the generated QueryContext methods do.
func (d txRouter) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if tx, ok := routedTx(ctx).(entsql.ExecQuerier); ok {
		return tx.QueryContext(ctx, query, args...)
	}
	return d.Driver.QueryContext(ctx, query, args...)
}

// Tx implements [dialect.Driver]. Inside a routed transaction, it returns
// that transaction, whose commit and rollback are left to its owner.
func (d txRouter) Tx(ctx context.Context) (dialect.Tx, error) {
	if tx := routedTx(ctx); tx != nil {
		return nestedTx{tx}, nil
	}
	return d.Driver.Tx(ctx)
}

// BeginTx is [txRouter.Tx] with options (ent's Client.BeginTx calls it).
func (d txRouter) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	if tx := routedTx(ctx); tx != nil {
		return nestedTx{tx}, nil
	}
	return d.Driver.BeginTx(ctx, opts)
}

var _ dialect.Driver = txRouter{}

// nestedTx is a routed transaction handed to code that would begin its own:
// the hook that began it commits or rolls it back.
type nestedTx struct{ dialect.Tx }

func (nestedTx) Commit() error   { return nil }
func (nestedTx) Rollback() error { return nil }
