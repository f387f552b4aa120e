package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
)

// VirtualServer is a curated MCP server composed from upstreams, served to
// agents at /mcp/{name} (config.VirtualServer).
type VirtualServer struct {
	ent.Schema
}

// Mixin of the VirtualServer.
func (VirtualServer) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the VirtualServer.
func (VirtualServer) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the virtual server; agents connect to /mcp/{name}."),
		descriptionField("virtual server"),
		field.Bool("anonymous").
			Default(false).
			Comment("Allows unauthenticated agents. Off by default."),
	}
}

// Edges of the VirtualServer.
func (VirtualServer) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("selections", Selection.Type).
			Comment("What the virtual server takes from each upstream, in order of position.").
			Annotations(
				entsql.OnDelete(entsql.Cascade),
				// Exposed by a hand-written resolver that orders by position.
				entgql.Skip(entgql.SkipType, entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		edge.To("grants", Grant.Type).
			Comment("Grants that target the virtual server; they are deleted with it.").
			Annotations(
				entsql.OnDelete(entsql.Cascade),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		edge.To("guardrail_rules", GuardrailRule.Type).
			Comment("Guardrail rules limited to the virtual server; they are deleted with it.").
			Annotations(
				entsql.OnDelete(entsql.Cascade),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		edge.To("rate_limits", RateLimit.Type).
			Comment("Rate limits limited to the virtual server; they are deleted with it.").
			Annotations(
				entsql.OnDelete(entsql.Cascade),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
	}
}

// Annotations of the VirtualServer.
func (VirtualServer) Annotations() []schema.Annotation {
	return gqlAnnotations("A curated MCP server composed from upstreams, served to agents at /mcp/{name}.")
}
