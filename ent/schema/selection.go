package schema

import (
	"context"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// Selection picks features of one upstream into a virtual server
// (config.Selection). Include lists that are null mean "all", empty lists
// mean "none".
type Selection struct {
	ent.Schema
}

// Mixin of the Selection.
func (Selection) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Selection.
func (Selection) Fields() []ent.Field {
	return []ent.Field{
		field.Int("position").
			Default(0).
			Min(0).
			Comment("Order of the selection within its virtual server (ascending; ties by creation).").
			Annotations(entgql.OrderField("POSITION")),
		globsField("tools", "Tools to include."),
		globsField("exclude_tools", "Tools to leave out of those included."),
		globsField("resources", "Resource URIs to include."),
		globsField("exclude_resources", "Resource URIs to leave out of those included."),
		globsField("resource_templates", "Resource templates (URI templates) to include."),
		globsField("exclude_resource_templates", "Resource templates to leave out of those included."),
		globsField("prompts", "Prompts to include."),
		globsField("exclude_prompts", "Prompts to leave out of those included."),
		stringMapField("rename", "Tools exposed under another name: upstream name -> exposed name."),
		stringMapField("rename_prompts", "Prompts exposed under another name: upstream name -> exposed name."),
		stringMapField("descriptions", "Tool descriptions overridden, keyed by the name the virtual server exposes."),
	}
}

// Edges of the Selection.
func (Selection) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("virtual_server", VirtualServer.Type).
			Ref("selections").
			Unique().
			Required().
			Comment("Virtual server the selection belongs to."),
		edge.From("upstream", Upstream.Type).
			Ref("selections").
			Unique().
			Required().
			Comment("Upstream the selection takes features from."),
	}
}

// Indexes of the Selection.
func (Selection) Indexes() []ent.Index {
	return []ent.Index{index.Fields("position").Edges("virtual_server")}
}

// Hooks of the Selection.
func (Selection) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		// A rename of a tool the include list leaves out, or excludes, can
		// never take effect: say so now rather than at compile time.
		for _, pair := range [][3]string{{"rename", "tools", "exclude_tools"}, {"rename_prompts", "prompts", "exclude_prompts"}} {
			rv, ok, err := value(ctx, m, pair[0])
			if err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			rename, _ := rv.(map[string]string)
			for _, from := range sortedKeys(rename) {
				if rename[from] == "" {
					errs.Add(pair[0], "%s: new name is empty", from)
				}
			}
			incl, inclOK, err := value(ctx, m, pair[1])
			if err != nil {
				return err
			}
			excl, _, err := value(ctx, m, pair[2])
			if err != nil {
				return err
			}
			include, _ := incl.([]string)
			exclude, _ := excl.([]string)
			for _, from := range sortedKeys(rename) {
				if inclOK && include != nil && !matchAny(include, from) {
					errs.Add(pair[0], "renames %q, which %s does not select", from, pair[1])
				}
				if matchAny(exclude, from) {
					errs.Add(pair[0], "renames %q, which %s excludes", from, pair[2])
				}
			}
		}
		return nil
	})}
}

// Annotations of the Selection.
func (Selection) Annotations() []schema.Annotation {
	return gqlAnnotations("What a virtual server takes from one upstream: include/exclude lists, renames and description overrides.")
}
