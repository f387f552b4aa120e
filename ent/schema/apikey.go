package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// APIKey is one key of an agent. Only its SHA-256 and a short prefix are
// stored; the plaintext is shown once, by rotateAgentKey, and never again.
type APIKey struct {
	ent.Schema
}

// Mixin of the APIKey.
func (APIKey) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the APIKey.
func (APIKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("key_hash").
			Unique().
			Immutable().
			Validate(schematype.ValidateSHA256).
			Comment("Hex SHA-256 of the key (64 lowercase digits), e.g. from `gatehouse keygen`."),
		field.String("prefix").
			Optional().
			Immutable().
			MaxLen(16).
			Comment("First characters of the key, to recognize it in logs; empty for keys imported as a hash."),
		field.Time("expires_at").
			Optional().
			Nillable().
			Comment("When the key stops working; null means never.").
			Annotations(entgql.OrderField("EXPIRES_AT")),
		field.Time("last_used_at").
			Optional().
			Nillable().
			Comment("When the key last authenticated a request.").
			Annotations(
				entgql.OrderField("LAST_USED_AT"),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		field.Bool("revoked").
			Default(false).
			Comment("A revoked key no longer authenticates; it is kept for the audit trail."),
	}
}

// Edges of the APIKey.
func (APIKey) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("agent", Agent.Type).
			Ref("api_keys").
			Unique().
			Required().
			Immutable().
			Comment("Agent the key belongs to."),
	}
}

// Annotations of the APIKey.
func (APIKey) Annotations() []schema.Annotation {
	return gqlAnnotations("An API key of an agent, stored as its SHA-256 and prefix only.", "apiKeys")
}
