// Package graph is Gatehouse's GraphQL admin API over the config store:
// Relay connections with where-filters and ordering for every entity,
// node(id), create/update/delete mutations with field-level validation
// errors, rotateAgentKey, createAdminToken, validateConfig, the admin change
// log (adminChanges), declarative exportConfig/applyConfig, and
// discoverTools/effectiveTools over the running gateway ([Gateway]).
// [NewHandler] serves it over HTTP behind admin-token authentication, with
// a role check on every root field.
//
// The schema is graph/ent.graphql (generated from ent/schema by entgql) plus
// the hand-written graph/gatehouse.graphql; gqlgen generates graph/generated
// and graph/model/models_gen.go from them (`go generate ./...`).
package graph

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/gatehouse-dev/gatehouse/ent"
)

// UpstreamTool is a tool as an upstream serves it now.
type UpstreamTool struct {
	Name, Title, Description               string
	InputSchema, OutputSchema, Annotations json.RawMessage // nil when absent
}

// ExposedTool is a tool as a virtual server exposes it to agents.
type ExposedTool struct {
	Name         string // as agents see it (after rename)
	Upstream     string // upstream name
	UpstreamTool string // name on the upstream
	Description  string // after description override
}

// Gateway is what the admin API needs from the running data path, for the
// operations that the store alone cannot answer (discoverTools and
// effectiveTools).
type Gateway interface {
	// ListUpstreamTools lists the tools the named upstream serves now, asking it live.
	// An unknown upstream returns an error wrapping ErrUnknownUpstream; a down upstream a descriptive error.
	ListUpstreamTools(ctx context.Context, upstream string) ([]UpstreamTool, error)
	// ExposedTools lists the tools virtual server vs exposes in the running snapshot.
	// An unknown virtual server returns an error wrapping ErrUnknownVirtualServer.
	ExposedTools(ctx context.Context, vs string) ([]ExposedTool, error)
}

// Errors a [Gateway] wraps when it does not run the upstream or virtual
// server asked for.
var ErrUnknownUpstream, ErrUnknownVirtualServer = errors.New("unknown upstream"), errors.New("unknown virtual server")

// Resolver is the root resolver: it holds what every resolver depends on.
// [NewHandler] builds it; [NewResolver] builds one for other transports.
type Resolver struct {
	// Gateway is the running data path; nil in a store-only API (tests,
	// tools), where operations that need it answer UNAVAILABLE (see
	// [ErrGatewayUnavailable]).
	Gateway Gateway

	client *ent.Client
}

// NewResolver returns the root resolver over client; gw may be nil.
func NewResolver(client *ent.Client, gw Gateway) *Resolver {
	return &Resolver{client: client, Gateway: gw}
}

// ent returns the client to use in ctx: the transaction a mutation runs in
// (entgql.Transactioner puts it there), else the store's client.
func (r *Resolver) ent(ctx context.Context) *ent.Client {
	if c := ent.FromContext(ctx); c != nil {
		return c
	}
	return r.client
}
