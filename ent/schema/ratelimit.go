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

// RateLimit is a token bucket over calls (config.RateLimit): requests per
// perSeconds, in bursts up to burst, counted per agent, team, tool or for
// everyone together. Buckets live in memory, per gateway replica.
type RateLimit struct {
	ent.Schema
}

// Mixin of the RateLimit.
func (RateLimit) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the RateLimit.
func (RateLimit) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the rate limit; errors and audit events name it."),
		descriptionField("rate limit"),
		field.Enum("subject_kind").
			Values("agent", "team", "role", "claim").
			Optional().
			Comment("Whom the limit applies to: an agent, a team or a role by name, or a claim expression; everyone when unset."),
		field.String("subject").
			Optional().
			MaxLen(4096).
			Comment("Agent, team or role name (agent \"*\" means every authenticated agent), or for subjectKind claim a CEL expression over `claims`; set together with subjectKind."),
		globsField("tools", "Tools (exposed names) whose calls the limit counts."),
		field.Enum("key").
			Values("agent", "team", "tool", "global").
			Default("agent").
			Comment("What one bucket counts: each agent its own (agent), each team, each tool, or all calls together (global).").
			Annotations(entgql.OrderField("KEY")),
		field.Int("requests").
			Positive().
			Comment("Calls allowed per perSeconds."),
		field.Float("per_seconds").
			Positive().
			Comment("The period of requests, in seconds."),
		field.Int("burst").
			Default(0).
			Min(0).
			Comment("Size of the bucket: how many calls may come at once; 0 means requests."),
	}
}

// Edges of the RateLimit.
func (RateLimit) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("virtual_server", VirtualServer.Type).
			Ref("rate_limits").
			Unique().
			Comment("Virtual server whose calls the limit counts; every virtual server when unset."),
	}
}

// Hooks of the RateLimit.
func (RateLimit) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		if err := checkSubject(ctx, m, errs); err != nil {
			return err
		}
		if !m.Op().Is(ent.OpCreate | ent.OpUpdateOne) {
			return nil
		}
		kind, err := stringValue(ctx, m, "subject_kind")
		if err != nil {
			return err
		}
		subject, err := stringValue(ctx, m, "subject")
		if err != nil {
			return err
		}
		switch {
		case kind != "" && subject == "":
			errs.Add("subject", "required with subjectKind")
		case kind == "" && subject != "":
			errs.Add("subject_kind", "required with subject")
		}
		return nil
	})}
}

// Annotations of the RateLimit.
func (RateLimit) Annotations() []schema.Annotation {
	return gqlAnnotations("A token-bucket rate limit on calls, per agent, team, tool or overall (kept in memory by each gateway replica).")
}
