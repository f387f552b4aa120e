package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// Upstream is one MCP server behind the gateway (config.Upstream).
type Upstream struct {
	ent.Schema
}

// Mixin of the Upstream.
func (Upstream) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// maxTimeoutSeconds bounds an upstream's timeouts: a day. (Larger values
// overflowed the durations they become.)
const maxTimeoutSeconds = 86400

// Fields of the Upstream.
func (Upstream) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the upstream; virtual servers select it by this name."),
		descriptionField("upstream"),
		field.Enum("transport").
			GoType(schematype.Transport("")).
			Comment("How the gateway talks to the upstream: streamable_http (YAML streamable-http), sse or stdio.").
			Annotations(entgql.OrderField("TRANSPORT"), entgql.Skip(entgql.SkipEnumField)),
		field.String("url").
			Optional().
			MaxLen(2048).
			Comment("Endpoint of an HTTP upstream (streamable_http or sse), e.g. http://127.0.0.1:18080/mcp. A mutation that leaves it without an http or https scheme and a host is refused."),
		stringMapField("headers", "HTTP headers sent with every request to an HTTP upstream. Not for credentials: readable by every reader of the configuration (viewer and auditor included) and kept in the change log; a credential belongs in a SecretBinding, fetched from Vault per call."),
		field.String("command").
			Optional().
			MaxLen(4096).
			Comment("Executable of a stdio upstream."),
		field.Strings("args").
			Optional().
			Comment("Arguments of a stdio upstream's command."),
		stringMapField("env", "Environment variables of a stdio upstream's process, besides the few it inherits. Not for credentials, as headers."),
		field.String("dir").
			Optional().
			MaxLen(4096).
			Comment("Working directory of a stdio upstream's process."),
		field.Float("timeout_seconds").
			Default(0).
			Range(0, maxTimeoutSeconds).
			Comment("Bound on one forwarded request, in seconds, at most a day (86400); 0 means the gateway default (60).").
			Annotations(entgql.OrderField("TIMEOUT_SECONDS")),
		field.Float("connect_timeout_seconds").
			Default(0).
			Range(0, maxTimeoutSeconds).
			Comment("Bound on connecting and initializing, in seconds, at most a day (86400); 0 means the gateway default (10)."),
		field.Bool("disabled").
			Default(false).
			Comment("Takes the upstream out of service without deleting it."),
		field.Bool("h2c").
			Default(false).
			Comment("Speak cleartext HTTP/2 with prior knowledge (h2c) to an http:// upstream: all agent sessions share one connection instead of holding one or two each. Only for servers that accept h2c; https upstreams negotiate HTTP/2 by ALPN without it."),
	}
}

// Edges of the Upstream.
func (Upstream) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("tools", Tool.Type).
			Comment("Tools discovered on the upstream.").
			Annotations(
				entsql.OnDelete(entsql.Cascade),
				entgql.RelayConnection(),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
		edge.To("selections", Selection.Type).
			Comment("Selections of virtual servers that include the upstream; an upstream in use cannot be deleted.").
			Annotations(entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput)),
		edge.To("secret_bindings", SecretBinding.Type).
			Comment("Secret bindings: secrets injected into requests to the upstream. Deleted with it.").
			Annotations(
				entsql.OnDelete(entsql.Cascade),
				entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
			),
	}
}

// Annotations of the Upstream.
func (Upstream) Annotations() []schema.Annotation {
	return gqlAnnotations("An MCP server behind the gateway, reached over streamable HTTP, legacy SSE or a local stdio process.")
}
