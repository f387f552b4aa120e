package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/agent"
	"github.com/gatehouse-dev/gatehouse/ent/tool"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/graph/model"
)

// discoverTools asks the gateway for what upstream serves now and records
// it. Asked alone in its operation, it runs outside the operation's
// transaction (see NewHandler): it asks the upstream first, then writes in
// a transaction of its own, so that a slow upstream holds no lock.
func (r *Resolver) discoverTools(ctx context.Context, name string) ([]*ent.Tool, error) {
	if r.Gateway == nil {
		return nil, ErrGatewayUnavailable
	}
	if _, err := r.ent(ctx).Upstream.Query().Where(upstream.Name(name)).OnlyID(ctx); ent.IsNotFound(err) {
		return nil, fieldError(ctx, "upstream", codeNotFound, "no upstream named %q", name)
	} else if err != nil {
		return nil, err
	}
	served, err := r.Gateway.ListUpstreamTools(ctx, name)
	switch {
	case errors.Is(err, ErrUnknownUpstream):
		return nil, fieldError(ctx, "upstream", codeNotFound, "the running gateway does not serve upstream %q (is it enabled, and has the change been applied?): %v", name, err)
	case err != nil:
		return nil, gatewayError(ctx, fmt.Sprintf("list the tools of upstream %q", name), err)
	}
	if ent.TxFromContext(ctx) != nil {
		return recordTools(ctx, r.ent(ctx), name, served)
	}
	tx, err := r.client.Tx(ctx)
	if err != nil {
		return nil, err
	}
	tools, err := recordTools(ctx, tx.Client(), name, served)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	for i, t := range tools {
		tools[i] = t.Unwrap() // their edges load outside the transaction
	}
	return tools, nil
}

// recordTools upserts the tools upstream serves, by (upstream, name), and
// returns them sorted by name.
func recordTools(ctx context.Context, c *ent.Client, name string, served []UpstreamTool) ([]*ent.Tool, error) {
	up, err := c.Upstream.Query().Where(upstream.Name(name)).Only(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := c.Tool.Query().Where(tool.HasUpstreamWith(upstream.ID(up.ID))).All(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*ent.Tool, len(stored))
	for _, t := range stored {
		byName[t.Name] = t
	}
	// PostgreSQL keeps microseconds: so do the returned tools.
	now := time.Now().Truncate(time.Microsecond)
	out := make([]*ent.Tool, 0, len(served))
	seen := map[string]bool{}
	for _, s := range served {
		if seen[s.Name] {
			continue // an upstream listing a name twice: the first wins
		}
		seen[s.Name] = true
		hash, err := definitionHash(s)
		if err != nil {
			return nil, fmt.Errorf("tool %q of upstream %q: %w", s.Name, name, err)
		}
		var t *ent.Tool
		if old, ok := byName[s.Name]; ok {
			u := old.Update().SetLastSeen(now)
			if old.DefinitionHash != hash || old.Title != s.Title || old.Description != s.Description {
				u.SetTitle(s.Title).SetDescription(s.Description).SetDefinitionHash(hash)
				setOrClear(s.InputSchema, u.SetInputSchema, u.ClearInputSchema)
				setOrClear(s.OutputSchema, u.SetOutputSchema, u.ClearOutputSchema)
				setOrClear(s.Annotations, u.SetAnnotations, u.ClearAnnotations)
			}
			t, err = u.Save(ctx)
		} else {
			cr := c.Tool.Create().SetUpstream(up).SetName(s.Name).SetTitle(s.Title).SetDescription(s.Description).
				SetDefinitionHash(hash).SetFirstSeen(now).SetLastSeen(now)
			if s.InputSchema != nil {
				cr.SetInputSchema(s.InputSchema)
			}
			if s.OutputSchema != nil {
				cr.SetOutputSchema(s.OutputSchema)
			}
			if s.Annotations != nil {
				cr.SetAnnotations(s.Annotations)
			}
			t, err = cr.Save(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("record tool %q of upstream %q: %w", s.Name, name, err)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func setOrClear[U any](v json.RawMessage, set func(json.RawMessage) U, clear func() U) {
	if v == nil {
		clear()
	} else {
		set(v)
	}
}

// definitionHash is the hex SHA-256 of the tool's definition as canonical
// JSON: an object of name, title, description, inputSchema, outputSchema
// and annotations, keys sorted at every level, numbers as written, no
// insignificant space. Any change the upstream makes to the tool changes it.
func definitionHash(t UpstreamTool) (string, error) {
	def := map[string]any{"name": t.Name, "title": t.Title, "description": t.Description}
	for k, raw := range map[string]json.RawMessage{"inputSchema": t.InputSchema, "outputSchema": t.OutputSchema, "annotations": t.Annotations} {
		if raw == nil {
			def[k] = nil
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("%s is not JSON: %w", k, err)
		}
		def[k] = v
	}
	// encoding/json sorts map keys and writes json.Number as is.
	b, err := json.Marshal(def)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// effectiveTools lists what virtual server vs exposes in the running
// gateway, with the discovered Tool behind each.
func (r *Resolver) effectiveTools(ctx context.Context, vs string, agentName *string) ([]*model.EffectiveTool, error) {
	if r.Gateway == nil {
		return nil, ErrGatewayUnavailable
	}
	c := r.ent(ctx)
	if agentName != nil {
		// TODO(#4): per-agent filtering by grants comes with access control;
		// until then an agent sees every exposed tool.
		if ok, err := c.Agent.Query().Where(agent.Name(*agentName)).Exist(ctx); err != nil {
			return nil, err
		} else if !ok {
			return nil, fieldError(ctx, "agent", codeNotFound, "no agent named %q", *agentName)
		}
	}
	exposed, err := r.Gateway.ExposedTools(ctx, vs)
	switch {
	case errors.Is(err, ErrUnknownVirtualServer):
		return nil, fieldError(ctx, "virtualServer", codeNotFound, "the running gateway does not serve virtual server %q: %v", vs, err)
	case err != nil:
		return nil, gatewayError(ctx, fmt.Sprintf("list the tools of virtual server %q", vs), err)
	}
	var ups []string
	for _, e := range exposed {
		ups = append(ups, e.Upstream)
	}
	discovered, err := c.Tool.Query().Where(tool.HasUpstreamWith(upstream.NameIn(ups...))).WithUpstream().All(ctx)
	if err != nil {
		return nil, err
	}
	type key struct{ upstream, tool string }
	byKey := make(map[key]*ent.Tool, len(discovered))
	for _, t := range discovered {
		byKey[key{t.Edges.Upstream.Name, t.Name}] = t
	}
	out := make([]*model.EffectiveTool, len(exposed))
	for i, e := range exposed {
		out[i] = &model.EffectiveTool{
			Name: e.Name, Upstream: e.Upstream, UpstreamTool: e.UpstreamTool, Description: e.Description,
			Tool: byKey[key{e.Upstream, e.UpstreamTool}],
		}
	}
	return out, nil
}

// gatewayError reports a failure of the running gateway to answer.
func gatewayError(ctx context.Context, doing string, err error) error {
	return &gqlerror.Error{
		Path:       graphql.GetPath(ctx),
		Message:    fmt.Sprintf("%s: %v", doing, err),
		Extensions: map[string]any{"code": codeUnavailable},
	}
}
