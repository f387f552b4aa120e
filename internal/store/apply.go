package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/ent/selection"
	"github.com/gatehouse-dev/gatehouse/ent/virtualserver"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Change is one entity that [ApplyDocument] created, updated, deleted or
// revoked (or, in a dry run, would).
type Change struct {
	// Kind is "upstream", "virtual_server", "agent", "team", "role",
	// "api_key", "approval_rule", "grant", "guardrail", "rate_limit",
	// "secret_binding" or "settings".
	Kind string
	Name string // the entity's name; for api_key "AGENT/HASH-PREFIX"
	Op   string // "created", "updated", "deleted" or "revoked"
	// Fields names what differs in an update, as document keys (url,
	// include, roles, expires, ...); nil for other ops.
	Fields []string
}

// String formats c as "kind name op", followed by the fields of an update
// in parentheses.
func (c Change) String() string {
	s := c.Kind + " " + c.Name + " " + c.Op
	if len(c.Fields) > 0 {
		s += " (" + strings.Join(c.Fields, ", ") + ")"
	}
	return s
}

// ApplyResult lists what [ApplyDocument] changed, in the order it did.
type ApplyResult struct {
	Changes []Change
}

func (r *ApplyResult) add(kind, name, op string, fields ...string) {
	r.Changes = append(r.Changes, Change{Kind: kind, Name: name, Op: op, Fields: fields})
}

// ApplyOptions configures [ApplyDocument]. The zero value applies the
// document without pruning and records no actor.
type ApplyOptions struct {
	// Actor is recorded as created_by, updated_by and the change log's
	// actor of what the apply writes, e.g. "token:ci" or "file:gatehouse.yaml".
	// Empty keeps the actor ctx carries, if any.
	Actor string
	// Prune deletes the upstreams, virtual servers, agents, approval
	// rules, grants, guardrails, rate limits and secret bindings that the
	// document lacks and revokes the agent keys it does not list; approval rules that the
	// document's grants name are kept (a document that lists no rules may
	// name rules of the store). False leaves what the document does not
	// mention alone.
	Prune bool
	// DryRun computes the changes and rolls them back: the result is the
	// plan, and the store is left as it was. False commits them.
	DryRun bool
}

// ApplyDocument makes the store hold doc, declaratively and in one
// transaction: upstreams, virtual servers (with their selections), agents,
// approval rules, grants, guardrails, rate limits and secret bindings are
// created or updated to equal doc's,
// and the pinning mode is set to doc's (auto when doc has none); with
// opts.Prune, the entities that doc lacks are deleted. Grants without a
// name are named by [GrantName] (see access.go). Teams and roles that agents name are created when
// missing (and never deleted: grants may name them). Entities that are
// already equal are not written, so their updated_at and updated_by keep
// saying when they last really changed, and an apply that changes nothing
// leaves the revision ([Revision]) alone.
//
// Agent keys must be given as sha256 entries: the caller resolves env and
// file sources into hashes first (identity.ResolveKeyHash). With opts.Prune,
// a stored key that doc no longer lists is revoked, not deleted, so the
// audit trail keeps it; a revoked key that doc lists again is reinstated.
//
// Deleting a virtual server deletes its grants, guardrail rules and rate
// limits; deleting an upstream deletes its discovered tools (with their
// approved definitions) and secret bindings. A grant's approval must name
// a rule of doc (config.Document.Validate checks it); a document that lists
// no approval rules, as documents from before rules were part of it, may
// name rules the store holds, and naming one it lacks is a validation error
// at the grant's path. Approval rules are written before the grants, so a
// grant may name a rule the same document creates. A secret binding that
// the store keeps without doc listing it (no prune) must fit the transport
// doc gives its upstream, else that is a validation error at the
// upstream's transport (see secrets.go).
//
// When client is a transaction's (ent.Tx.Client, or the client a GraphQL
// mutation runs with), the apply runs in that transaction and a dry run in
// a savepoint of it; else it begins its own.
//
// doc is validated first (with defaults applied to a copy); an invalid
// document changes nothing and returns its *config.ValidationError, whose
// paths point into doc. CEL expressions (grants' and approval rules' when,
// claim subjects) are not compiled here: the admin API checks them
// (graph.CheckExpression), the gateway when it compiles the snapshot.
// doc.Auth and doc.Pins are ignored: auth is a process setting, pins are
// written by [RecordToolDefinitions] and [ApproveToolDefinition].
func ApplyDocument(ctx context.Context, client *ent.Client, doc *config.Document, opts ApplyOptions) (res *ApplyResult, err error) {
	var ext config.Externals
	if !opts.Prune {
		// Merged into the store: the document may refer to what the
		// store has (a file of rate limits for a stored virtual server).
		if ext, err = externals(ctx, client); err != nil {
			return nil, err
		}
	}
	d, err := prepare(doc, ext)
	if err != nil {
		return nil, err
	}
	if opts.Actor != "" {
		ctx = actor.NewContext(ctx, opts.Actor)
	}
	a := &applier{prune: opts.Prune, res: new(ApplyResult)}
	tx, err := client.Tx(ctx)
	if errors.Is(err, ent.ErrTxStarted) {
		a.c = client
		if err := a.applyInTx(ctx, d, opts.DryRun); err != nil {
			return nil, fmt.Errorf("apply document: %w", err)
		}
		return a.res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("apply document: begin: %w", err)
	}
	defer func() {
		if err != nil || opts.DryRun {
			_ = tx.Rollback()
		}
	}()
	a.c = tx.Client()
	if err := a.apply(ctx, d); err != nil {
		return nil, fmt.Errorf("apply document: %w", err)
	}
	if opts.DryRun {
		return a.res, nil
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("apply document: commit: %w", err)
	}
	return a.res, nil
}

// applyInTx applies d with a.c, a transaction's client; a dry run rolls
// back to a savepoint afterwards, which also clears an error.
func (a *applier) applyInTx(ctx context.Context, d *config.Document, dryRun bool) error {
	if !dryRun {
		return a.apply(ctx, d)
	}
	return RolledBack(ctx, a.c, func() error { return a.apply(ctx, d) })
}

// RolledBack runs f on client, a transaction's client, inside a savepoint
// and rolls back what f wrote, whatever f returns: a dry run that sees its
// own writes. It returns f's error, or the savepoint's.
func RolledBack(ctx context.Context, client *ent.Client, f func() error) error {
	const sp = "gatehouse_dry_run"
	if _, err := client.ExecContext(ctx, "SAVEPOINT "+sp); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	err := f()
	if _, rerr := client.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+sp); rerr != nil {
		return errors.Join(err, fmt.Errorf("roll back dry run: %w", rerr))
	}
	if _, rerr := client.ExecContext(ctx, "RELEASE SAVEPOINT "+sp); rerr != nil {
		return errors.Join(err, fmt.Errorf("release savepoint: %w", rerr))
	}
	return err
}

// externals are the store's upstreams and virtual servers, which a
// document merged into it may refer to.
func externals(ctx context.Context, client *ent.Client) (config.Externals, error) {
	ext := config.Externals{Upstreams: map[string]string{}, VirtualServers: map[string]bool{}}
	ups, err := client.Upstream.Query().All(ctx)
	if err != nil {
		return ext, fmt.Errorf("apply document: load upstreams: %w", err)
	}
	for _, u := range ups {
		ext.Upstreams[u.Name] = string(u.Transport)
	}
	names, err := client.VirtualServer.Query().Select(virtualserver.FieldName).Strings(ctx)
	if err != nil {
		return ext, fmt.Errorf("apply document: load virtual servers: %w", err)
	}
	for _, n := range names {
		ext.VirtualServers[n] = true
	}
	return ext, nil
}

// prepare validates doc (merged into ext) and returns a copy with defaults
// applied and key hashes in lowercase.
func prepare(doc *config.Document, ext config.Externals) (*config.Document, error) {
	d := *doc
	d.Upstreams = slices.Clone(doc.Upstreams)
	d.Agents = slices.Clone(doc.Agents)
	d.Grants = slices.Clone(doc.Grants)
	d.Guardrails = slices.Clone(doc.Guardrails)
	d.RateLimits = slices.Clone(doc.RateLimits)
	d.ApprovalRules = slices.Clone(doc.ApprovalRules)
	d.SecretBindings = slices.Clone(doc.SecretBindings)
	d.ApplyDefaults()
	var bad []*config.FieldError
	for i := range d.Agents {
		d.Agents[i].APIKeys = slices.Clone(d.Agents[i].APIKeys)
		for j := range d.Agents[i].APIKeys {
			k := &d.Agents[i].APIKeys[j]
			if k.Env != "" || k.File != "" {
				bad = append(bad, &config.FieldError{
					Path:   fmt.Sprintf("agents[%d].api_keys[%d]", i, j),
					Reason: "env and file keys must be resolved into sha256 before they are stored",
				})
			}
			k.SHA256 = strings.ToLower(k.SHA256)
		}
	}
	if err := d.ValidateWith(ext); err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			ve.Fields = append(ve.Fields, bad...)
			return nil, ve
		}
		return nil, err
	}
	if len(bad) > 0 {
		return nil, &config.ValidationError{Fields: bad}
	}
	return &d, nil
}

type applier struct {
	c     *ent.Client
	prune bool
	res   *ApplyResult
}

func (a *applier) apply(ctx context.Context, d *config.Document) error {
	rules, err := a.checkAccessRefs(ctx, d)
	if err != nil {
		return err
	}
	bindings, err := a.loadSecretBindings(ctx, d)
	if err != nil {
		return err
	}
	grants, err := a.planGrants(ctx, d)
	if err != nil {
		return err
	}
	if a.prune {
		if err := a.pruneAccess(ctx, d, grants, rules); err != nil {
			return err
		}
		if err := a.pruneSecretBindings(ctx, d, bindings); err != nil {
			return err
		}
	}
	upstreams, err := a.upstreams(ctx, d.Upstreams)
	if err != nil {
		return err
	}
	vss, err := a.virtualServers(ctx, d.VirtualServers, upstreams)
	if err != nil {
		return err
	}
	if err := a.secretBindings(ctx, d.SecretBindings, bindings, upstreams); err != nil {
		return err
	}
	// Upstreams go last: selections and secret bindings that used them
	// are gone or moved by now.
	for _, name := range sortedNames(upstreams) {
		if u := upstreams[name]; a.prune && d.Upstream(name) == nil {
			if err := a.c.Upstream.DeleteOne(u).Exec(ctx); err != nil {
				return fmt.Errorf("delete upstream %q: %w", name, err)
			}
			a.res.add("upstream", name, "deleted")
		}
	}
	if err := a.agents(ctx, d.Agents); err != nil {
		return err
	}
	return a.access(ctx, d, grants, rules, vss)
}

// upstreams creates and updates doc's upstreams and returns every stored
// upstream by name, including those doc lacks (deleted later when pruning).
func (a *applier) upstreams(ctx context.Context, want []config.Upstream) (map[string]*ent.Upstream, error) {
	all, err := a.c.Upstream.Query().All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load upstreams: %w", err)
	}
	byName := map[string]*ent.Upstream{}
	for _, u := range all {
		byName[u.Name] = u
	}
	for _, w := range want {
		u, ok := byName[w.Name]
		switch {
		case !ok:
			c := a.c.Upstream.Create()
			setUpstream(c.Mutation(), w)
			if u, err = c.Save(ctx); err != nil {
				return nil, fmt.Errorf("create upstream %q: %w", w.Name, err)
			}
			a.res.add("upstream", w.Name, "created")
		default:
			// A stored zero timeout (an upstream created through the API
			// without one) means the default, which the document states.
			have := upstreamDoc(u)
			have.ApplyDefaults()
			diff := upstreamDiff(have, w)
			if len(diff) == 0 {
				break
			}
			up := a.c.Upstream.UpdateOne(u)
			setUpstream(up.Mutation(), w)
			if u, err = up.Save(ctx); err != nil {
				return nil, fmt.Errorf("update upstream %q: %w", w.Name, err)
			}
			a.res.add("upstream", w.Name, "updated", diff...)
		}
		byName[w.Name] = u
	}
	return byName, nil
}

func setUpstream(m *ent.UpstreamMutation, u config.Upstream) {
	m.SetName(u.Name)
	m.SetTransport(schematype.Transport(u.Transport))
	m.SetURL(u.URL)
	m.SetHeaders(u.Headers)
	m.SetCommand(u.Command)
	m.SetArgs(u.Args)
	m.SetEnv(u.Env)
	m.SetDir(u.Dir)
	m.SetTimeoutSeconds(seconds(u.Timeout))
	m.SetConnectTimeoutSeconds(seconds(u.ConnectTimeout))
	m.SetDisabled(u.Disabled)
	m.SetH2c(u.H2C)
}

// upstreamDiff names the document keys whose values differ between a and b.
func upstreamDiff(a, b config.Upstream) []string {
	var d diff
	d.add("transport", a.Transport != b.Transport)
	d.add("url", a.URL != b.URL)
	d.add("headers", !equalMap(a.Headers, b.Headers))
	d.add("command", a.Command != b.Command)
	d.add("args", !slices.Equal(a.Args, b.Args))
	d.add("env", !equalMap(a.Env, b.Env))
	d.add("dir", a.Dir != b.Dir)
	d.add("timeout", a.Timeout != b.Timeout)
	d.add("connect_timeout", a.ConnectTimeout != b.ConnectTimeout)
	d.add("disabled", a.Disabled != b.Disabled)
	d.add("h2c", a.H2C != b.H2C)
	return d
}

// diff collects the names of fields that differ.
type diff []string

func (d *diff) add(field string, differs bool) {
	if differs {
		*d = append(*d, field)
	}
}

// virtualServers creates, updates and (when pruning) deletes virtual
// servers, and returns doc's by name.
func (a *applier) virtualServers(ctx context.Context, want []config.VirtualServer, upstreams map[string]*ent.Upstream) (map[string]*ent.VirtualServer, error) {
	all, err := a.c.VirtualServer.Query().
		WithSelections(func(q *ent.SelectionQuery) {
			q.Order(ent.Asc(selection.FieldPosition), ent.Asc(selection.FieldID)).WithUpstream()
		}).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load virtual servers: %w", err)
	}
	byName := map[string]*ent.VirtualServer{}
	for _, vs := range all {
		byName[vs.Name] = vs
	}
	out := map[string]*ent.VirtualServer{}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.Name] = true
	}
	for _, vs := range all {
		if a.prune && !wanted[vs.Name] {
			if err := a.c.VirtualServer.DeleteOne(vs).Exec(ctx); err != nil {
				return nil, fmt.Errorf("delete virtual server %q: %w", vs.Name, err)
			}
			a.res.add("virtual_server", vs.Name, "deleted")
		}
	}
	for _, w := range want {
		vs, ok := byName[w.Name]
		var d diff
		if !ok {
			vs, err = a.c.VirtualServer.Create().
				SetName(w.Name).SetDescription(w.Description).SetAnonymous(w.Anonymous).
				Save(ctx)
			if err != nil {
				return nil, fmt.Errorf("create virtual server %q: %w", w.Name, err)
			}
			a.res.add("virtual_server", w.Name, "created")
		} else {
			d.add("description", vs.Description != w.Description)
			d.add("anonymous", vs.Anonymous != w.Anonymous)
		}
		selChanged, err := a.selections(ctx, vs, w, upstreams)
		if err != nil {
			return nil, fmt.Errorf("virtual server %q: %w", w.Name, err)
		}
		d.add("include", selChanged)
		if ok && len(d) > 0 {
			// Also when only selections changed: the server records it.
			if err := a.c.VirtualServer.UpdateOne(vs).
				SetDescription(w.Description).SetAnonymous(w.Anonymous).
				Exec(ctx); err != nil {
				return nil, fmt.Errorf("update virtual server %q: %w", w.Name, err)
			}
			a.res.add("virtual_server", w.Name, "updated", d...)
		}
		out[w.Name] = vs
	}
	return out, nil
}

// selections makes vs's selections equal to w.Include, position by
// position. vs's selections must be loaded (none for a new server).
func (a *applier) selections(ctx context.Context, vs *ent.VirtualServer, w config.VirtualServer, upstreams map[string]*ent.Upstream) (changed bool, err error) {
	have := vs.Edges.Selections
	for i, s := range w.Include {
		up := upstreams[s.Upstream]
		if i < len(have) {
			h := have[i]
			if h.Position == i && reflect.DeepEqual(normSelection(selectionDoc(h)), normSelection(s)) {
				continue
			}
			u := a.c.Selection.UpdateOne(h).SetUpstream(up)
			setSelection(u.Mutation(), i, s)
			if err := u.Exec(ctx); err != nil {
				return false, fmt.Errorf("update include[%d]: %w", i, err)
			}
		} else {
			c := a.c.Selection.Create().SetVirtualServer(vs).SetUpstream(up)
			setSelection(c.Mutation(), i, s)
			if err := c.Exec(ctx); err != nil {
				return false, fmt.Errorf("create include[%d]: %w", i, err)
			}
		}
		changed = true
	}
	if len(have) > len(w.Include) {
		var ids []int
		for _, h := range have[len(w.Include):] {
			ids = append(ids, h.ID)
		}
		if _, err := a.c.Selection.Delete().Where(selection.IDIn(ids...), selection.HasVirtualServerWith(virtualserver.ID(vs.ID))).Exec(ctx); err != nil {
			return false, fmt.Errorf("delete selections: %w", err)
		}
		changed = true
	}
	return changed, nil
}

func setSelection(m *ent.SelectionMutation, pos int, s config.Selection) {
	m.SetPosition(pos)
	m.SetTools(s.Tools)
	m.SetExcludeTools(s.ExcludeTools)
	m.SetResources(s.Resources)
	m.SetExcludeResources(s.ExcludeResources)
	m.SetResourceTemplates(s.ResourceTemplates)
	m.SetExcludeResourceTemplates(s.ExcludeResourceTemplates)
	m.SetPrompts(s.Prompts)
	m.SetExcludePrompts(s.ExcludePrompts)
	m.SetRename(s.Rename)
	m.SetRenamePrompts(s.RenamePrompts)
	m.SetDescriptions(s.Descriptions)
}

// normSelection makes empty and nil maps compare equal; lists keep the
// difference (nil means all, empty means none).
func normSelection(s config.Selection) config.Selection {
	for _, m := range []*map[string]string{&s.Rename, &s.RenamePrompts, &s.Descriptions} {
		if len(*m) == 0 {
			*m = nil
		}
	}
	return s
}

func equalMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (a *applier) agents(ctx context.Context, want []config.Agent) error {
	all, err := a.c.Agent.Query().WithTeam().WithRoles().All(ctx)
	if err != nil {
		return fmt.Errorf("load agents: %w", err)
	}
	byName := map[string]*ent.Agent{}
	for _, ag := range all {
		byName[ag.Name] = ag
	}
	wanted := map[string]*config.Agent{}
	for i := range want {
		wanted[want[i].Name] = &want[i]
	}
	for _, ag := range all {
		if a.prune && wanted[ag.Name] == nil {
			if err := a.c.Agent.DeleteOne(ag).Exec(ctx); err != nil {
				return fmt.Errorf("delete agent %q: %w", ag.Name, err)
			}
			a.res.add("agent", ag.Name, "deleted")
		}
	}

	teams, err := a.ensureTeams(ctx, want)
	if err != nil {
		return err
	}
	roles, err := a.ensureRoles(ctx, want)
	if err != nil {
		return err
	}

	agents := map[string]*ent.Agent{}
	for _, w := range want {
		ag, ok := byName[w.Name]
		var roleIDs []int
		for _, r := range w.Roles {
			roleIDs = append(roleIDs, roles[r].ID)
		}
		switch {
		case !ok:
			c := a.c.Agent.Create().SetName(w.Name).SetLabels(w.Labels).AddRoleIDs(roleIDs...)
			if w.Team != "" {
				c.SetTeam(teams[w.Team])
			}
			if ag, err = c.Save(ctx); err != nil {
				return fmt.Errorf("create agent %q: %w", w.Name, err)
			}
			a.res.add("agent", w.Name, "created")
		default:
			diff := agentDiff(agentDoc(ag), w)
			if len(diff) == 0 {
				break
			}
			u := a.c.Agent.UpdateOne(ag).SetLabels(w.Labels).ClearRoles().AddRoleIDs(roleIDs...)
			if w.Team != "" {
				u.SetTeam(teams[w.Team])
			} else {
				u.ClearTeam()
			}
			if ag, err = u.Save(ctx); err != nil {
				return fmt.Errorf("update agent %q: %w", w.Name, err)
			}
			a.res.add("agent", w.Name, "updated", diff...)
		}
		agents[w.Name] = ag
	}
	return a.keys(ctx, want, agents)
}

// agentDiff names the document keys, keys aside, that differ between what
// [agentDoc] built and w.
func agentDiff(have config.Agent, w config.Agent) []string {
	roles := slices.Clone(w.Roles)
	sort.Strings(roles)
	var d diff
	d.add("team", have.Team != w.Team)
	d.add("roles", !slices.Equal(have.Roles, slices.Compact(roles)))
	d.add("labels", !equalMap(have.Labels, w.Labels))
	return d
}

func (a *applier) ensureTeams(ctx context.Context, want []config.Agent) (map[string]*ent.Team, error) {
	all, err := a.c.Team.Query().All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load teams: %w", err)
	}
	m := map[string]*ent.Team{}
	for _, t := range all {
		m[t.Name] = t
	}
	for _, w := range want {
		if w.Team == "" || m[w.Team] != nil {
			continue
		}
		t, err := a.c.Team.Create().SetName(w.Team).Save(ctx)
		if err != nil {
			return nil, fmt.Errorf("create team %q: %w", w.Team, err)
		}
		m[w.Team] = t
		a.res.add("team", w.Team, "created")
	}
	return m, nil
}

func (a *applier) ensureRoles(ctx context.Context, want []config.Agent) (map[string]*ent.Role, error) {
	all, err := a.c.Role.Query().All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load roles: %w", err)
	}
	m := map[string]*ent.Role{}
	for _, r := range all {
		m[r.Name] = r
	}
	for _, w := range want {
		for _, name := range w.Roles {
			if m[name] != nil {
				continue
			}
			r, err := a.c.Role.Create().SetName(name).Save(ctx)
			if err != nil {
				return nil, fmt.Errorf("create role %q: %w", name, err)
			}
			m[name] = r
			a.res.add("role", name, "created")
		}
	}
	return m, nil
}

// keys makes doc's sha256 entries active keys of their agents and, when
// pruning, revokes the others.
func (a *applier) keys(ctx context.Context, want []config.Agent, agents map[string]*ent.Agent) error {
	type wantKey struct {
		agent   string
		expires *time.Time
	}
	wanted := map[string]wantKey{}
	var order []string
	for _, w := range want {
		for _, k := range w.APIKeys {
			if prev, dup := wanted[k.SHA256]; dup {
				return fmt.Errorf("key %s… is listed for agent %q and %q", k.SHA256[:8], prev.agent, w.Name)
			}
			wanted[k.SHA256] = wantKey{agent: w.Name, expires: k.Expires}
			order = append(order, k.SHA256)
		}
	}
	all, err := a.c.APIKey.Query().WithAgent().All(ctx)
	if err != nil {
		return fmt.Errorf("load api keys: %w", err)
	}
	have := map[string]*ent.APIKey{}
	for _, k := range all {
		owner := k.Edges.Agent.Name
		w, ok := wanted[k.KeyHash]
		switch {
		case ok && w.agent != owner:
			// A key moves to another agent: its owner is immutable, so
			// it is deleted here and created again below.
			if err := a.c.APIKey.DeleteOne(k).Exec(ctx); err != nil {
				return fmt.Errorf("delete api key of %q: %w", owner, err)
			}
			a.res.add("api_key", owner+"/"+k.KeyHash[:8], "deleted")
		case !ok && !k.Revoked && a.prune:
			if err := a.c.APIKey.UpdateOne(k).SetRevoked(true).Exec(ctx); err != nil {
				return fmt.Errorf("revoke api key of %q: %w", owner, err)
			}
			a.res.add("api_key", owner+"/"+k.KeyHash[:8], "revoked")
		case ok:
			have[k.KeyHash] = k
		}
	}
	for _, h := range order {
		w := wanted[h]
		name := w.agent + "/" + h[:8]
		k, ok := have[h]
		switch {
		case !ok:
			if err := a.c.APIKey.Create().
				SetKeyHash(h).
				SetAgent(agents[w.agent]).
				SetNillableExpiresAt(w.expires).
				Exec(ctx); err != nil {
				return fmt.Errorf("create api key of %q: %w", w.agent, err)
			}
			a.res.add("api_key", name, "created")
		case k.Revoked || !equalTime(k.ExpiresAt, w.expires):
			var d diff
			d.add("revoked", k.Revoked)
			d.add("expires", !equalTime(k.ExpiresAt, w.expires))
			u := a.c.APIKey.UpdateOne(k).SetRevoked(false)
			if w.expires != nil {
				u.SetExpiresAt(*w.expires)
			} else {
				u.ClearExpiresAt()
			}
			if err := u.Exec(ctx); err != nil {
				return fmt.Errorf("update api key of %q: %w", w.agent, err)
			}
			a.res.add("api_key", name, "updated", d...)
		}
	}
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
