package store

/*
Secret bindings in the store, to and from the declarative document.

A binding has a required, unique name, by which the document and the store
match it; it belongs to an upstream, which the document names and the store
links. The store holds where a secret lives (Vault path, key, role) and how
it is injected, never the secret.

Whether an upstream takes a binding's injection depends on both (header and
query need an HTTP upstream, env a stdio one: config.CheckInjection). The
document checks its own bindings against its own upstreams; the store also
checks every write of a binding against its upstream's stored transport
(bindingTransportHook, which Open installs), and an apply checks the
bindings it keeps without the document listing them against the
document's upstreams. An upstream whose transport an admin changes through
the API is checked by [CheckUpstreamTransport].

With ApplyOptions.Prune, the bindings the document lacks are deleted before
upstreams change; the document's bindings are written after its upstreams
are created and before the upstreams it drops are deleted, so that a
binding moving to another upstream is not deleted with its old one.
*/

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/hook"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/ent/secretbinding"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// secretBindingDoc needs b's upstream loaded.
func secretBindingDoc(b *ent.SecretBinding) config.SecretBinding {
	d := config.SecretBinding{
		Name:         b.Name,
		Description:  b.Description,
		Tools:        b.Tools,
		Source:       b.Source.String(),
		Path:         b.Path,
		Key:          b.Key,
		Version:      b.Version,
		Role:         b.Role,
		LeaseScope:   b.LeaseScope.String(),
		Injection:    b.Injection.String(),
		Target:       b.Target,
		Template:     b.Template,
		PerPrincipal: b.PerPrincipal,
	}
	if u := b.Edges.Upstream; u != nil {
		d.Upstream = u.Name
	}
	return d
}

// exportSecrets adds the store's secret bindings to doc, by name.
func exportSecrets(ctx context.Context, client *ent.Client, doc *config.Document) error {
	bs, err := client.SecretBinding.Query().WithUpstream().Order(ent.Asc(secretbinding.FieldName)).All(ctx)
	if err != nil {
		return fmt.Errorf("export secret bindings: %w", err)
	}
	for _, b := range bs {
		doc.SecretBindings = append(doc.SecretBindings, secretBindingDoc(b))
	}
	return nil
}

// loadSecretBindings returns the stored bindings by name, and checks those
// that the apply keeps although d does not list them (it does not prune)
// against the transports of d's upstreams.
func (a *applier) loadSecretBindings(ctx context.Context, d *config.Document) (map[string]*ent.SecretBinding, error) {
	all, err := a.c.SecretBinding.Query().WithUpstream().All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load secret bindings: %w", err)
	}
	byName := make(map[string]*ent.SecretBinding, len(all))
	for _, b := range all {
		byName[b.Name] = b
	}
	if a.prune {
		return byName, nil
	}
	listed := map[string]bool{}
	for _, b := range d.SecretBindings {
		listed[b.Name] = true
	}
	var bad []*config.FieldError
	for i, u := range d.Upstreams {
		for _, b := range all {
			if listed[b.Name] || b.Edges.Upstream == nil || b.Edges.Upstream.Name != u.Name {
				continue
			}
			if err := config.CheckInjection(b.Injection.String(), u.Transport); err != nil {
				bad = append(bad, &config.FieldError{
					Path:   fmt.Sprintf("upstreams[%d].transport", i),
					Reason: fmt.Sprintf("the stored secret binding %q does not fit: %v (list the binding, changed, under secret_bindings, or apply with prune to delete it)", b.Name, err),
				})
			}
		}
	}
	if len(bad) > 0 {
		return nil, &config.ValidationError{Fields: bad}
	}
	return byName, nil
}

// pruneSecretBindings deletes the stored bindings that d lacks.
func (a *applier) pruneSecretBindings(ctx context.Context, d *config.Document, stored map[string]*ent.SecretBinding) error {
	listed := map[string]bool{}
	for _, b := range d.SecretBindings {
		listed[b.Name] = true
	}
	for _, name := range sortedNames(stored) {
		if listed[name] {
			continue
		}
		if err := a.c.SecretBinding.DeleteOne(stored[name]).Exec(ctx); err != nil {
			return fmt.Errorf("delete secret binding %q: %w", name, err)
		}
		delete(stored, name)
		a.res.add("secret_binding", name, "deleted")
	}
	return nil
}

// secretBindings creates and updates the bindings of want; stored holds
// the stored ones by name, upstreams every upstream want names.
func (a *applier) secretBindings(ctx context.Context, want []config.SecretBinding, stored map[string]*ent.SecretBinding, upstreams map[string]*ent.Upstream) error {
	for _, w := range want {
		b, ok := stored[w.Name]
		if !ok {
			c := a.c.SecretBinding.Create()
			setSecretBinding(c.Mutation(), w, upstreams)
			if err := c.Exec(ctx); err != nil {
				return fmt.Errorf("create secret binding %q: %w", w.Name, err)
			}
			a.res.add("secret_binding", w.Name, "created")
			continue
		}
		diff := secretBindingDiff(secretBindingDoc(b), w)
		if len(diff) == 0 {
			continue
		}
		u := a.c.SecretBinding.UpdateOne(b)
		setSecretBinding(u.Mutation(), w, upstreams)
		if err := u.Exec(ctx); err != nil {
			return fmt.Errorf("update secret binding %q: %w", w.Name, err)
		}
		a.res.add("secret_binding", w.Name, "updated", diff...)
	}
	return nil
}

func setSecretBinding(m *ent.SecretBindingMutation, b config.SecretBinding, upstreams map[string]*ent.Upstream) {
	m.SetName(b.Name)
	m.SetDescription(b.Description)
	m.SetUpstreamID(upstreams[b.Upstream].ID)
	m.SetTools(b.Tools)
	m.SetSource(secretbinding.Source(b.Source))
	m.SetPath(b.Path)
	m.SetKey(b.Key)
	m.SetVersion(b.Version)
	m.SetRole(b.Role)
	m.SetLeaseScope(secretbinding.LeaseScope(b.LeaseScope))
	m.SetInjection(secretbinding.Injection(b.Injection))
	m.SetTarget(b.Target)
	m.SetTemplate(b.Template)
	m.SetPerPrincipal(b.PerPrincipal)
}

// secretBindingDiff names the document keys whose values differ between a
// and b, both with the document's defaults applied.
func secretBindingDiff(a, b config.SecretBinding) []string {
	x := config.Document{SecretBindings: []config.SecretBinding{a, b}}
	x.ApplyDefaults()
	a, b = x.SecretBindings[0], x.SecretBindings[1]
	var d diff
	d.add("description", a.Description != b.Description)
	d.add("upstream", a.Upstream != b.Upstream)
	d.add("tools", !equalGlobs(a.Tools, b.Tools))
	d.add("source", a.Source != b.Source)
	d.add("path", a.Path != b.Path)
	d.add("key", a.Key != b.Key)
	d.add("version", a.Version != b.Version)
	d.add("role", a.Role != b.Role)
	d.add("lease_scope", a.LeaseScope != b.LeaseScope)
	d.add("injection", a.Injection != b.Injection)
	d.add("target", a.Target != b.Target)
	d.add("template", a.Template != b.Template)
	d.add("per_principal", a.PerPrincipal != b.PerPrincipal)
	return d
}

// bindingTransportHook refuses a secret binding that its upstream's
// transport cannot take (config.CheckInjection), at the field injection.
// It checks creations, and updates that set the injection or the upstream.
var bindingTransportHook = hook.On(func(next ent.Mutator) ent.Mutator {
	return hook.SecretBindingFunc(func(ctx context.Context, m *ent.SecretBindingMutation) (ent.Value, error) {
		injection, setInjection := m.Injection()
		upID, setUpstream := m.UpstreamID()
		if m.Op().Is(ent.OpUpdateOne) && (setInjection || setUpstream) {
			id, _ := m.ID()
			old, err := m.Client().SecretBinding.Query().Where(secretbinding.ID(id)).
				WithUpstream(func(q *ent.UpstreamQuery) { q.Select(upstream.FieldID) }).Only(ctx)
			if err != nil {
				return nil, err
			}
			if !setInjection {
				injection = old.Injection
			}
			if !setUpstream && old.Edges.Upstream != nil {
				upID, setUpstream = old.Edges.Upstream.ID, true
			}
		}
		if injection != "" && setUpstream {
			up, err := m.Client().Upstream.Get(ctx, upID)
			if err != nil && !ent.IsNotFound(err) { // a missing upstream is reported by the insert
				return nil, err
			}
			if up != nil {
				if err := config.CheckInjection(injection.String(), up.Transport.String()); err != nil {
					var errs schematype.FieldErrors
					errs.Add("injection", "%v", err)
					return nil, errs.Err()
				}
			}
		}
		return next.Mutate(ctx, m)
	})
}, ent.OpCreate|ent.OpUpdateOne)

// CheckUpstreamTransport reports whether the stored upstream id could run
// over transport with its secret bindings: nil, or a
// schematype.FieldErrors at "transport" naming each binding whose
// injection the transport cannot take. The admin API calls it before it
// changes an upstream's transport; an apply checks the document instead.
func CheckUpstreamTransport(ctx context.Context, client *ent.Client, id int, transport string) error {
	bs, err := client.SecretBinding.Query().Where(secretbinding.HasUpstreamWith(upstream.ID(id))).
		Order(ent.Asc(secretbinding.FieldName)).All(ctx)
	if err != nil {
		return fmt.Errorf("load secret bindings: %w", err)
	}
	var errs schematype.FieldErrors
	for _, b := range bs {
		if err := config.CheckInjection(b.Injection.String(), transport); err != nil {
			errs.Add("transport", "secret binding %q: %v (change or delete the binding first)", b.Name, err)
		}
	}
	return errs.Err()
}
