// Package graph is Gatehouse's GraphQL admin API over the config store:
// Relay connections with where-filters and ordering for every entity,
// node(id), create/update/delete mutations with field-level validation
// errors, rotateAgentKey, createAdminToken and validateConfig. [NewHandler]
// serves it over HTTP behind admin-token authentication.
//
// The schema is graph/ent.graphql (generated from ent/schema by entgql) plus
// the hand-written graph/gatehouse.graphql; gqlgen generates graph/generated
// and graph/model/models_gen.go from them (`go generate ./...`).
package graph

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/ent"
)

// Gateway is what the admin API needs from the running data path, for the
// operations that the store alone cannot answer (discoverTools and
// effectiveTools, added when the API is wired into `gatehouse serve`). Each
// such operation adds the method it needs here, or declares an optional
// interface and checks for it with a type assertion.
type Gateway interface {
	// DiscoverTools connects to the named upstream, lists the tools it
	// serves now and records them as Tool entities (first_seen, last_seen,
	// definition_hash).
	DiscoverTools(ctx context.Context, upstream string) error
}

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
