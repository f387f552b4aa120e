package schema

import (
	"context"
	"regexp"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// GuardrailRule inspects tool arguments (input) or results (output) and
// blocks, redacts, warns or asks for approval when its detector fires.
type GuardrailRule struct {
	ent.Schema
}

// Mixin of the GuardrailRule.
func (GuardrailRule) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the GuardrailRule.
func (GuardrailRule) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the guardrail rule."),
		descriptionField("guardrail rule"),
		field.Enum("stage").
			Values("input", "output", "both").
			Default("both").
			Comment("What the rule inspects: tool arguments (input), results (output) or both."),
		field.Enum("detector").
			Values("regex", "pii", "secret", "denylist", "cel").
			Comment("How the rule detects: a regular expression, built-in PII or secret detectors, a list of words, or a CEL expression.").
			Annotations(entgql.OrderField("DETECTOR")),
		field.Text("pattern").
			Optional().
			MaxLen(8192).
			Comment("The regular expression (detector regex) or CEL expression (detector cel)."),
		field.Strings("terms").
			Optional().
			Comment("Words or phrases of a denylist detector; kinds of a pii detector (e.g. email, phone)."),
		field.Enum("action").
			Values("block", "redact", "warn", "require_approval").
			Default("block").
			Comment("What happens when the detector fires."),
		globsField("tools", "Tools (exposed names) the rule applies to."),
		field.Int("priority").
			Default(0).
			Comment("Evaluation order, highest first.").
			Annotations(entgql.OrderField("PRIORITY")),
		field.Bool("enabled").
			Default(true).
			Comment("A disabled rule is kept but not evaluated."),
	}
}

// Edges of the GuardrailRule.
func (GuardrailRule) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("virtual_server", VirtualServer.Type).
			Ref("guardrail_rules").
			Unique().
			Comment("Virtual server the rule is limited to; every virtual server when unset."),
	}
}

// Hooks of the GuardrailRule.
func (GuardrailRule) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		detector, err := stringValue(ctx, m, "detector")
		if err != nil {
			return err
		}
		pattern, err := stringValue(ctx, m, "pattern")
		if err != nil {
			return err
		}
		terms, _, err := value(ctx, m, "terms")
		if err != nil {
			return err
		}
		switch detector {
		case "regex":
			if pattern == "" {
				errs.Add("pattern", "required for detector regex")
			} else if _, err := regexp.Compile(pattern); err != nil {
				errs.Add("pattern", "bad regular expression: %v", err)
			}
		case "cel":
			if pattern == "" {
				errs.Add("pattern", "required for detector cel")
			}
		case "denylist":
			if l, _ := terms.([]string); len(l) == 0 {
				errs.Add("terms", "give at least one term for detector denylist")
			}
		}
		return nil
	})}
}

// Annotations of the GuardrailRule.
func (GuardrailRule) Annotations() []schema.Annotation {
	return gqlAnnotations("A rule that inspects tool arguments or results and blocks, redacts, warns or requires approval.")
}
