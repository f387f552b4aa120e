package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
)

// Team groups agents; grants and approval rules can name a team.
type Team struct {
	ent.Schema
}

// Mixin of the Team.
func (Team) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Team.
func (Team) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the team."),
		descriptionField("team"),
	}
}

// Edges of the Team.
func (Team) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("agents", Agent.Type).
			Comment("Agents that belong to the team."),
	}
}

// Annotations of the Team.
func (Team) Annotations() []schema.Annotation {
	return gqlAnnotations("A group of agents that grants and approval rules can name.")
}
