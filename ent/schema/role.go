package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
)

// Role is a named set of permissions that grants give to the agents holding it.
type Role struct {
	ent.Schema
}

// Mixin of the Role.
func (Role) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Role.
func (Role) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the role."),
		descriptionField("role"),
	}
}

// Edges of the Role.
func (Role) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("agents", Agent.Type).
			Ref("roles").
			Comment("Agents that hold the role."),
	}
}

// Annotations of the Role.
func (Role) Annotations() []schema.Annotation {
	return gqlAnnotations("A role that agents hold and that grants can name.")
}
