package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// AdminToken authenticates callers of the admin API. Only its SHA-256 and a
// short prefix are stored; the plaintext is shown once, at creation.
type AdminToken struct {
	ent.Schema
}

// Mixin of the AdminToken.
func (AdminToken) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the AdminToken.
func (AdminToken) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the token; writes made with it are recorded as token:NAME."),
		field.String("token_hash").
			Unique().
			Immutable().
			Sensitive().
			Validate(schematype.ValidateSHA256).
			Comment("Hex SHA-256 of the token.").
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("prefix").
			Immutable().
			MaxLen(16).
			Comment("First characters of the token, to recognize it.").
			Annotations(entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput)),
		field.Strings("roles").
			Validate(schematype.ValidateAdminRoles).
			Comment("What the token may do: admin (everything), approver (decide approvals), auditor (read audit), viewer (read configuration)."),
		field.Strings("groups").
			Optional().
			Validate(schematype.ValidateNames).
			Comment("Approver groups the holder belongs to (the teams or roles approval rules name); an approver decides calls held for one of them."),
		field.String("team").
			Optional().
			Comment("The holder's own team: with an approval rule's allowSameTeam false, the holder cannot decide calls of agents of this team."),
		field.Time("expires_at").
			Optional().
			Nillable().
			Comment("When the token stops working; null means never.").
			Annotations(entgql.OrderField("EXPIRES_AT")),
		field.Time("last_used_at").
			Optional().
			Nillable().
			Comment("When the token last authenticated a request (updated at most once a minute).").
			Annotations(
				entgql.OrderField("LAST_USED_AT"),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
	}
}

// Annotations of the AdminToken.
func (AdminToken) Annotations() []schema.Annotation {
	return gqlAnnotations("A bearer token for the admin API, stored as its SHA-256 and prefix only.")
}
