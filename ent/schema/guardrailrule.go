package schema

import (
	"math"

	"context"
	"regexp"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// GuardrailRule inspects tool arguments (request), results (response) or
// both, and blocks, redacts, flags or asks for approval when its detector
// fires (config.Guardrail).
//
// Stores written before issue #4 used other words for some values: stage
// input/output (now direction request/response), detector secret (now
// secrets) and action warn (now flag). store.Open rewrites them in place;
// the column keeps its old name, stage. Detector cel has no counterpart in
// the declarative document: such rules stay readable, cannot be created,
// and make the exported document invalid until an admin changes them.
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
		field.Enum("direction").
			StorageKey("stage").
			Values("request", "response", "both").
			Default("both").
			Comment("What the rule inspects: tool arguments (request), results (response) or both."),
		field.Enum("detector").
			Values("secrets", "pii", "injection", "regex", "denylist", "size", "cel").
			Comment("How the rule detects: built-in secret or PII detectors, prompt-injection scoring, a regular expression, a list of words or phrases, or a size limit. (cel is a value of earlier versions that the gateway does not evaluate: change such rules.)").
			Annotations(entgql.OrderField("DETECTOR")),
		field.Strings("kinds").
			Optional().
			Comment("Narrows a secrets or pii detector to some kinds (e.g. aws_access_key, email); null or [] means all."),
		field.Text("pattern").
			Optional().
			MaxLen(8192).
			Comment("The regular expression (RE2) of a regex detector."),
		field.Strings("terms").
			Optional().
			Comment("Words or phrases of a denylist detector (matched ignoring case)."),
		field.Int64("max_bytes").
			Default(0).
			Min(0).
			Comment("Limit of a size detector, in bytes of the JSON-encoded arguments or result; required (positive) for it."),
		field.Float("threshold").
			Default(0).
			Range(0, 1).
			Comment("Score (0..1) from which an injection detector fires; 0 means the default, 0.5."),
		field.Enum("action").
			Values("block", "redact", "flag", "require_approval").
			Default("block").
			Comment("What happens when the detector fires: block the call, redact what was found, flag it (logged, call proceeds) or require a human's approval."),
		globsField("tools", "Tools (exposed names) the rule applies to."),
		field.Int("priority").
			Default(0).
			Range(math.MinInt32, math.MaxInt32). // GraphQL's Int
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

// Hooks of the GuardrailRule: the cross-field checks of the document's
// guardrails.
func (GuardrailRule) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		if v, ok := m.Field("detector"); ok && stringOf(v) == "cel" {
			errs.Add("detector", "cel is no longer supported: use regex or denylist, or a grant's when condition")
		}
		detector, err := stringValue(ctx, m, "detector")
		if err != nil {
			return err
		}
		action, err := stringValue(ctx, m, "action")
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
		maxBytes, _, err := value(ctx, m, "max_bytes")
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
		case "denylist":
			if l, _ := terms.([]string); len(l) == 0 {
				errs.Add("terms", "give at least one term for detector denylist")
			}
		case "size":
			if n, _ := maxBytes.(int64); n <= 0 {
				errs.Add("max_bytes", "required for detector size (a positive byte count)")
			}
			if action == "redact" {
				errs.Add("action", "a size detector cannot redact; use block or flag")
			}
		}
		return nil
	})}
}

// Annotations of the GuardrailRule.
func (GuardrailRule) Annotations() []schema.Annotation {
	return gqlAnnotations("A rule that inspects tool arguments or results and blocks, redacts, flags or requires approval.")
}
