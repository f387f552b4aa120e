package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
)

// Agent is an identity that calls virtual servers (config.Agent).
type Agent struct {
	ent.Schema
}

// Mixin of the Agent.
func (Agent) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Agent.
func (Agent) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the agent, as it appears in audit events."),
		descriptionField("agent"),
		stringMapField("labels", "Free-form labels of the agent, available to policy conditions."),
	}
}

// Edges of the Agent.
func (Agent) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("team", Team.Type).
			Ref("agents").
			Unique().
			Comment("Team the agent belongs to, if any."),
		edge.To("roles", Role.Type).
			Comment("Roles the agent holds."),
		edge.To("api_keys", APIKey.Type).
			Comment("API keys the agent authenticates with (hashes only).").
			Annotations(
				entsql.OnDelete(entsql.Cascade),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
	}
}

// Annotations of the Agent.
func (Agent) Annotations() []schema.Annotation {
	return gqlAnnotations("An identity that calls virtual servers, authenticated by API keys.")
}
