package schema

import (
	"math"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
)

// PolicyRule is a gateway-wide CEL rule evaluated for every call after grants:
// when its expression holds, its effect applies, whatever the grants say.
type PolicyRule struct {
	ent.Schema
}

// Mixin of the PolicyRule.
func (PolicyRule) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the PolicyRule.
func (PolicyRule) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the policy."),
		descriptionField("policy"),
		field.Text("expression").
			NotEmpty().
			MaxLen(8192).
			Comment("CEL expression over the request (principal, virtual server, tool, arguments, time); the effect applies when it is true."),
		field.Enum("effect").
			Values("deny", "require_approval").
			Default("deny").
			Comment("What happens to a call the expression matches.").
			Annotations(entgql.OrderField("EFFECT")),
		field.Int("priority").
			Default(0).
			Range(math.MinInt32, math.MaxInt32). // GraphQL's Int
			Comment("Evaluation order, highest first.").
			Annotations(entgql.OrderField("PRIORITY")),
		field.Bool("enabled").
			Default(true).
			Comment("A disabled policy is kept but not evaluated."),
	}
}

// Annotations of the PolicyRule. (Ent reserves the name Policy for privacy
// policies, hence PolicyRule.)
func (PolicyRule) Annotations() []schema.Annotation {
	return gqlAnnotations("A gateway-wide CEL rule that denies or requires approval for the calls it matches.")
}
