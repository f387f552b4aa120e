package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Errors of the admin queries below, for callers to tell "no such name"
// from "it exists but cannot answer".
var (
	ErrUnknownUpstream      = errors.New("unknown upstream")
	ErrUnknownVirtualServer = errors.New("unknown virtual server")
)

// UpstreamTools asks the named upstream for the tools it serves now, over
// its control session (not the cached catalog), so an admin sees exactly
// what the upstream answers at this moment; the catalog in force is
// refreshed with the answer, so agents see the same.
func (g *Gateway) UpstreamTools(ctx context.Context, name string) ([]*mcp.Tool, error) {
	u := g.upstream(name)
	if u == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownUpstream, name)
	}
	if _, err := u.controlConn(); err != nil {
		return nil, err
	}
	// The catalog in force is refreshed with the answer, as a
	// list_changed from the upstream would: what agents see follows.
	if err := u.refreshCatalog(ctx); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	return u.Catalog().Tools, nil
}

// ExposedTool is a tool as a virtual server exposes it to agents.
type ExposedTool struct {
	Name         string // as agents see it, after renames
	Upstream     string // the upstream that serves it
	UpstreamTool string // its name on the upstream
	Description  string // after description overrides
}

// ExposedTools lists the tools the named virtual server exposes in the
// running snapshot, in the order agents see them.
func (g *Gateway) ExposedTools(vs string) ([]ExposedTool, error) {
	v := g.Snapshot().VS[vs]
	if v == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownVirtualServer, vs)
	}
	out := make([]ExposedTool, 0, len(v.ToolDefs))
	for _, def := range v.ToolDefs {
		r := v.Tools[def.Name]
		if r == nil {
			continue
		}
		out = append(out, ExposedTool{Name: def.Name, Upstream: r.Upstream, UpstreamTool: r.Name, Description: def.Description})
	}
	return out, nil
}
