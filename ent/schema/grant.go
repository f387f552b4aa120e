package schema

import (
	"math"

	"context"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// Grant gives a subject access to features of a virtual server
// (config.Grant). The gateway denies by default: a principal sees and calls
// only what a grant allows.
type Grant struct {
	ent.Schema
}

// Mixin of the Grant.
func (Grant) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Grant.
func (Grant) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").
			Optional().
			Validate(schematype.ValidateName).
			Comment("Name of the grant in decisions, explanations and audit events; unique when set. Grants created without one are named after their content (grant-HASH).").
			Annotations(entgql.OrderField("NAME")),
		descriptionField("grant"),
		field.Enum("subject_kind").
			Values("agent", "team", "role", "claim").
			Comment("What subject names: an agent, a team or a role by name, or a claim expression over an identity provider's claims.").
			Annotations(entgql.OrderField("SUBJECT_KIND")),
		field.String("subject").
			NotEmpty().
			MaxLen(4096).
			Comment("Agent, team or role name (agent \"*\" means every authenticated agent); for subjectKind claim, a CEL expression over `claims`, e.g. 'claims.groups.exists(g, g == \"sre\")'.").
			Annotations(entgql.OrderField("SUBJECT")),
		targetField("tools", "Tools (exposed names) the grant covers."),
		targetField("resources", "Resource and resource template URIs the grant covers."),
		targetField("prompts", "Prompts (exposed names) the grant covers."),
		field.Enum("effect").
			Values("allow", "deny", "require_approval").
			Default("allow").
			Comment("What the grant decides: allow, deny (overrides allows) or require_approval (a human approves each call; outranks allow).").
			Annotations(entgql.OrderField("EFFECT")),
		field.Text("when").
			Optional().
			MaxLen(4096).
			Comment("Optional CEL condition over principal, tool, args and request; the grant applies only when it is true."),
		field.Int("priority").
			Default(0).
			Range(math.MinInt32, math.MaxInt32). // GraphQL's Int
			Comment("Order in which grants are listed and explained, highest first; it does not change decisions (deny wins over allow).").
			Annotations(entgql.OrderField("PRIORITY")),
	}
}

// targetField is a grant's list of globs over one kind of feature. Unlike
// the selection lists ([globsField]), null covers nothing, as in the
// declarative document.
func targetField(name, comment string) ent.Field {
	return field.Strings(name).
		Optional().
		Validate(schematype.ValidateGlobs).
		Comment(comment + " Globs (path.Match); null or [] covers nothing of this kind, [\"*\"] everything.")
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

// Indexes of the Grant: names are unique across virtual servers, as in the
// declarative document (several unnamed grants may exist).
func (Grant) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("name").Unique(),
	}
}

// Hooks of the Grant.
func (Grant) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		if err := checkSubject(ctx, m, errs); err != nil {
			return err
		}
		// A grant must cover something: at least one list given, as the
		// document requires. (Bulk updates load no rows: not checked.)
		if m.Op().Is(ent.OpCreate | ent.OpUpdateOne) {
			set := false
			for _, f := range []string{"tools", "resources", "prompts"} {
				v, ok, err := value(ctx, m, f)
				if err != nil {
					return err
				}
				if l, _ := v.([]string); ok && l != nil {
					set = true
				}
			}
			if !set {
				errs.Add("tools", "give at least one of tools, resources or prompts (e.g. [\"*\"])")
			}
		}
		return nil
	})}
}

// checkSubject checks that a subject (of a grant or rate limit) that names
// an agent, team or role is a valid name ("*" for every agent).
func checkSubject(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
	kind, err := stringValue(ctx, m, "subject_kind")
	if err != nil {
		return err
	}
	subject, err := stringValue(ctx, m, "subject")
	if err != nil {
		return err
	}
	if kind == "" || kind == "claim" || subject == "" || (kind == "agent" && subject == "*") {
		return nil
	}
	if err := schematype.ValidateName(subject); err != nil {
		errs.Add("subject", "%s name %v", kind, err)
	}
	return nil
}

// Annotations of the Grant.
func (Grant) Annotations() []schema.Annotation {
	return gqlAnnotations("Access of a subject (agent, team, role or claim expression) to tools, resources and prompts of a virtual server.")
}
