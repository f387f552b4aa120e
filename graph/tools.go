package graph

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/tool"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
)

// discoverTools asks the gateway for what upstream serves now and records
// it as gateways record catalogs ([store.RecordToolDefinitions], with the
// stored pinning mode). Asked alone in its operation, it runs outside the
// operation's transaction (see NewHandler): it asks the upstream first,
// then writes in a transaction of its own, so that a slow upstream holds no
// lock.
func (r *Resolver) discoverTools(ctx context.Context, name string) ([]*ent.Tool, error) {
	if r.Gateway == nil {
		return nil, ErrGatewayUnavailable
	}
	c := r.ent(ctx)
	if _, err := c.Upstream.Query().Where(upstream.Name(name)).OnlyID(ctx); ent.IsNotFound(err) {
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
	defs := make([]tooldef.Definition, len(served))
	names := make([]string, len(served))
	for i, s := range served {
		defs[i] = tooldef.Definition{
			Name: s.Name, Title: s.Title, Description: s.Description,
			InputSchema: s.InputSchema, OutputSchema: s.OutputSchema, Annotations: s.Annotations,
		}
		names[i] = s.Name
	}
	mode, err := store.PinningMode(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := store.RecordToolDefinitions(ctx, c, name, defs, mode, time.Now()); err != nil {
		return nil, err
	}
	return c.Tool.Query().
		Where(tool.HasUpstreamWith(upstream.Name(name)), tool.NameIn(names...)).
		Order(ent.Asc(tool.FieldName)).
		All(ctx)
}

// effectiveTools lists what virtual server vs exposes in the running
// gateway, with the discovered Tool behind each.
func (r *Resolver) effectiveTools(ctx context.Context, vs string, agentName *string) ([]*model.EffectiveTool, error) {
	if r.Gateway == nil {
		return nil, ErrGatewayUnavailable
	}
	c := r.ent(ctx)
	if agentName != nil {
		if err := r.agentExists(ctx, *agentName); err != nil {
			return nil, err
		}
	}
	exposed, err := r.Gateway.ExposedTools(ctx, vs)
	switch {
	case errors.Is(err, ErrUnknownVirtualServer):
		return nil, fieldError(ctx, "virtualServer", codeNotFound, "the running gateway does not serve virtual server %q: %v", vs, err)
	case err != nil:
		return nil, gatewayError(ctx, fmt.Sprintf("list the tools of virtual server %q", vs), err)
	}
	if agentName != nil {
		// What the agent sees: the tools its grants let it list.
		visible := exposed[:0:0]
		for _, e := range exposed {
			x, err := r.Gateway.Explain(ctx, *agentName, vs, e.Name, nil)
			if err != nil {
				return nil, explainError(ctx, *agentName, vs, e.Name, err)
			}
			if x.Visible {
				visible = append(visible, e)
			}
		}
		exposed = visible
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
