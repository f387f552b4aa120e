package schema

import (
	"context"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// Grant gives a subject access to features of a virtual server. The gateway
// denies by default: a principal sees and calls only what a grant allows.
type Grant struct {
	ent.Schema
}

// Mixin of the Grant.
func (Grant) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Grant.
func (Grant) Fields() []ent.Field {
	return []ent.Field{
		descriptionField("grant"),
		field.Enum("subject_kind").
			Values("agent", "team", "role", "claim").
			Comment("What subject names: an agent, a team or a role by name, or a claim expression over an identity provider's claims.").
			Annotations(entgql.OrderField("SUBJECT_KIND")),
		field.String("subject").
			NotEmpty().
			MaxLen(4096).
			Comment("Agent, team or role name; for subjectKind claim, a CEL expression over `claims`, e.g. 'groups.exists(g, g == \"sre\")'.").
			Annotations(entgql.OrderField("SUBJECT")),
		globsField("tools", "Tools (exposed names) the grant covers."),
		globsField("resources", "Resource URIs the grant covers."),
		globsField("prompts", "Prompts (exposed names) the grant covers."),
		field.Enum("effect").
			Values("allow", "deny", "require_approval").
			Default("allow").
			Comment("What the grant decides: allow, deny (overrides allows) or require_approval (a human approves each call).").
			Annotations(entgql.OrderField("EFFECT")),
		field.Text("when").
			Optional().
			MaxLen(4096).
			Comment("Optional CEL condition over the request (principal, tool, arguments); the grant applies only when it is true."),
		field.Int("priority").
			Default(0).
			Comment("Evaluation order among grants of a virtual server, highest first.").
			Annotations(entgql.OrderField("PRIORITY")),
	}
}

// Edges of the Grant.
func (Grant) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("virtual_server", VirtualServer.Type).
			Ref("grants").
			Unique().
			Required().
			Comment("Virtual server whose features the grant covers."),
		edge.From("approval_rule", ApprovalRule.Type).
			Ref("grants").
			Unique().
			Comment("Approval rule that governs calls a require_approval grant matches; the default rule when unset."),
	}
}

// Hooks of the Grant.
func (Grant) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		kind, err := stringValue(ctx, m, "subject_kind")
		if err != nil {
			return err
		}
		subject, err := stringValue(ctx, m, "subject")
		if err != nil {
			return err
		}
		if kind != "" && kind != "claim" && subject != "" {
			if err := schematype.ValidateName(subject); err != nil {
				errs.Add("subject", "%s name %v", kind, err)
			}
		}
		return nil
	})}
}

// Annotations of the Grant.
func (Grant) Annotations() []schema.Annotation {
	return gqlAnnotations("Access of a subject (agent, team, role or claim expression) to tools, resources and prompts of a virtual server.")
}
