package schema

import (
	"encoding/json"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
)

// Tool is a tool discovered on an upstream. The gateway records what each
// upstream announces, so admins can grant and review tools by name, and
// pins the definition it approved (rug-pull defence): a tool whose current
// definition differs from the approved one is quarantined.
type Tool struct {
	ent.Schema
}

// Mixin of the Tool.
func (Tool) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Tool.
func (Tool) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").
			NotEmpty().
			MaxLen(256).
			Comment("Name of the tool as the upstream announces it.").
			Annotations(entgql.OrderField("NAME")),
		field.String("title").
			Optional().
			MaxLen(1024).
			Comment("Human-readable title the upstream announces, if any."),
		field.Text("description").
			Optional().
			Comment("Description the upstream announces."),
		field.JSON("input_schema", json.RawMessage{}).
			Optional().
			Comment("JSON Schema of the tool's arguments.").
			Annotations(entgql.Type("JSON")),
		field.JSON("output_schema", json.RawMessage{}).
			Optional().
			Comment("JSON Schema of the tool's structured result, if it declares one.").
			Annotations(entgql.Type("JSON")),
		field.JSON("annotations", json.RawMessage{}).
			Optional().
			Comment("MCP tool annotations (readOnlyHint, destructiveHint, ...).").
			Annotations(entgql.Type("JSON")),
		field.String("definition_hash").
			Optional().
			MaxLen(128).
			Comment("Hash of the tool's current definition (hex SHA-256 of its canonical JSON: name, title, description, schemas, annotations); a change means the upstream changed the tool."),
		field.Time("first_seen").
			Default(time.Now).
			Comment("When the tool was first discovered.").
			Annotations(entgql.OrderField("FIRST_SEEN")),
		field.Time("last_seen").
			Default(time.Now).
			Comment("When the tool was last announced by its upstream.").
			Annotations(entgql.OrderField("LAST_SEEN")),
		// Pinning: the definition an admin (or pinning mode auto) approved.
		// Only approveToolDefinition and the gateway's catalog recording
		// (store.RecordToolDefinitions) write these.
		field.String("approved_hash").
			Optional().
			Nillable().
			MaxLen(128).
			Comment("Definition hash of the approved definition; null while the tool awaits approval. The tool is pinned when it equals definitionHash, quarantined when it differs.").
			Annotations(noInput()),
		field.JSON("approved_definition", &tooldef.Definition{}).
			Optional().
			Comment("The approved definition (name, title, description, schemas, annotations).").
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Time("approved_at").
			Optional().
			Nillable().
			Comment("When the approved definition was approved.").
			Annotations(noInput()),
		field.String("approved_by").
			Optional().
			Nillable().
			MaxLen(256).
			Comment("Who approved it: an admin token (token:NAME), or auto when pinning mode auto pinned the first definition seen.").
			Annotations(noInput()),
	}
}

// Edges of the Tool.
func (Tool) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("upstream", Upstream.Type).
			Ref("tools").
			Unique().
			Required().
			Comment("Upstream that serves the tool."),
	}
}

// Indexes of the Tool: one row per (upstream, name).
func (Tool) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("name").Edges("upstream").Unique(),
	}
}

// Annotations of the Tool.
func (Tool) Annotations() []schema.Annotation {
	return gqlAnnotations("A tool discovered on an upstream.")
}
