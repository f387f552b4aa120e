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

// ApprovalRule says who approves calls that need approval, how many must,
// and what happens when nobody answers in time.
type ApprovalRule struct {
	ent.Schema
}

// Mixin of the ApprovalRule.
func (ApprovalRule) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the ApprovalRule.
func (ApprovalRule) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the approval rule."),
		descriptionField("approval rule"),
		field.Strings("approver_groups").
			Validate(func(groups []string) error {
				if len(groups) == 0 {
					return errEmptyGroups
				}
				return schematype.ValidateNames(groups)
			}).
			Comment("Groups (teams or roles) whose members may approve; at least one."),
		field.Int("quorum").
			Default(1).
			Min(1).
			Comment("How many distinct approvers must approve; at least 1."),
		field.Bool("allow_same_team").
			Default(false).
			Comment("Whether a member of the calling agent's own team may approve."),
		field.Float("timeout_seconds").
			Default(3600).
			Positive().
			Comment("How long to wait for approvals, in seconds."),
		field.Enum("on_timeout").
			Values("deny", "escalate").
			Default("deny").
			Comment("What happens when the timeout passes without a quorum: deny the call, or escalate to escalateTo."),
		field.Strings("escalate_to").
			Optional().
			Validate(schematype.ValidateNames).
			Comment("Groups asked next when onTimeout is escalate; required then."),
		globsField("virtual_servers", "Virtual servers whose calls this rule holds for approval by itself, after the grants allowed them. With tools, when a call matches both (and when holds), it needs approval even if no grant names this rule."),
		globsField("tools", "Tools (exposed names) this rule holds for approval by itself; see virtualServers. A rule with neither virtualServers nor tools applies only through grants that name it."),
		field.String("when").
			Optional().
			MaxLen(4096).
			Comment("CEL condition over principal, call and args (like a grant's when) that must hold for the rule to hold a call by itself; empty means always, e.g. args.path.startsWith(\"secrets/\")."),
		field.Float("reuse_window_seconds").
			Default(0).
			Min(0).
			Comment("For how many seconds an approval covers identical calls by the same agent; 0 means every call is approved on its own."),
	}
}

// Edges of the ApprovalRule.
func (ApprovalRule) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("grants", Grant.Type).
			Comment("Grants whose approvals this rule governs.").
			Annotations(entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput)),
	}
}

// Hooks of the ApprovalRule.
func (ApprovalRule) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		onTimeout, err := stringValue(ctx, m, "on_timeout")
		if err != nil {
			return err
		}
		to, _, err := value(ctx, m, "escalate_to")
		if err != nil {
			return err
		}
		if l, _ := to.([]string); onTimeout == "escalate" && len(l) == 0 {
			errs.Add("escalate_to", "required when onTimeout is escalate")
		}
		return nil
	})}
}

// Annotations of the ApprovalRule.
func (ApprovalRule) Annotations() []schema.Annotation {
	return gqlAnnotations("Who approves calls that need approval, how many must, and what happens on timeout.")
}
