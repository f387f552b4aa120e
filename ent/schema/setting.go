package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
)

// Setting holds the gateway-wide settings of the declarative document that
// are not lists of entities (pinning). The store keeps at most one row, with
// scope "global", created on the first change; without it every setting has
// its default. The admin API reads and writes it through the settings query
// and updateSettings, not entgql's generated CRUD.
type Setting struct {
	ent.Schema
}

// Mixin of the Setting.
func (Setting) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Setting.
func (Setting) Fields() []ent.Field {
	return []ent.Field{
		field.String("scope").
			NotEmpty().
			Unique().
			Immutable().
			Comment("Which settings the row holds; always global (the unique key that keeps one row)."),
		field.Enum("pinning_mode").
			Values("auto", "approve", "off").
			Default("auto").
			Comment("Tool-definition pinning: auto pins a tool's first definition, approve holds new tools until an admin approves them, off disables pinning."),
	}
}

// Annotations of the Setting.
func (Setting) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("Gateway-wide settings (pinning mode)."),
		entgql.Skip(entgql.SkipAll),
	}
}
