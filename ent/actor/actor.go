// Package actor carries who is changing the configuration through a context,
// so that every write to the config store records it in created_by and
// updated_by without each caller setting those fields.
//
// The GraphQL admin API puts the admin token's name there; [store.ApplyDocument]
// puts its actor argument there. The audit mixin of the Ent schema reads it.
package actor

import "context"

type ctxKey struct{}

// NewContext returns ctx carrying name as the actor of the writes made with it.
// An empty name leaves created_by and updated_by unset.
func NewContext(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, ctxKey{}, name)
}

// FromContext returns the actor carried by ctx, or "" if there is none.
func FromContext(ctx context.Context) string {
	name, _ := ctx.Value(ctxKey{}).(string)
	return name
}
