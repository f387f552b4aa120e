package graph

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// updateUpstream updates an upstream after checking that a new transport
// still takes the injections of its secret bindings (header and query
// need HTTP, env stdio); the store checks bindings as they are written.
func (r *Resolver) updateUpstream(ctx context.Context, id int, input ent.UpdateUpstreamInput) (*ent.Upstream, error) {
	c := r.ent(ctx)
	if input.Transport != nil {
		if err := store.CheckUpstreamTransport(ctx, c, id, input.Transport.String()); err != nil {
			return nil, err
		}
	}
	return c.Upstream.UpdateOneID(id).SetInput(input).Save(ctx)
}
