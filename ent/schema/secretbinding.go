package schema

import (
	"context"
	"errors"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

var errEmptyGroups = errors.New("give at least one group")

// SecretBinding injects a secret from Vault into calls to an upstream, just
// in time. The store keeps where the secret lives, never its value.
type SecretBinding struct {
	ent.Schema
}

// Mixin of the SecretBinding.
func (SecretBinding) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the SecretBinding.
func (SecretBinding) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the secret binding."),
		descriptionField("secret binding"),
		globsField("tools", "Tools (upstream names) whose calls get the secret."),
		field.Enum("source").
			Values("kv", "dynamic").
			Comment("Where the secret comes from: a KV v2 secret, or dynamic credentials of a secrets engine role.").
			Annotations(entgql.OrderField("SOURCE")),
		field.String("path").
			NotEmpty().
			MaxLen(1024).
			Comment("Vault path: the KV secret's path, or the secrets engine mount for dynamic credentials."),
		field.String("key").
			Optional().
			MaxLen(256).
			Comment("Key within the secret's data; required for source kv."),
		field.Int("version").
			Optional().
			Min(0).
			Comment("KV version to read; 0 or unset means the latest."),
		field.String("role").
			Optional().
			MaxLen(256).
			Comment("Secrets engine role to request credentials of; required for source dynamic."),
		field.Enum("injection").
			Values("header", "query", "env", "argument").
			Comment("How the secret reaches the upstream: an HTTP header, a URL query parameter, an environment variable of a stdio process, or a tool argument."),
		field.String("target").
			NotEmpty().
			MaxLen(256).
			Comment("Name of the header, query parameter, environment variable or argument to set."),
		field.Text("template").
			Optional().
			MaxLen(1024).
			Comment("Go text/template producing the injected value from the secret ({{.Value}}), e.g. 'Bearer {{.Value}}'; empty injects the value as is."),
		field.Bool("per_principal").
			Default(false).
			Comment("Whether each agent gets its own secret (the path may then use {{.Agent}}), rather than one shared by all."),
	}
}

// Edges of the SecretBinding.
func (SecretBinding) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("upstream", Upstream.Type).
			Ref("secret_bindings").
			Unique().
			Required().
			Comment("Upstream whose calls get the secret."),
	}
}

// Hooks of the SecretBinding.
func (SecretBinding) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		source, err := stringValue(ctx, m, "source")
		if err != nil {
			return err
		}
		dataKey, err := stringValue(ctx, m, "key")
		if err != nil {
			return err
		}
		role, err := stringValue(ctx, m, "role")
		if err != nil {
			return err
		}
		switch source {
		case "kv":
			if dataKey == "" {
				errs.Add("key", "required for source kv")
			}
		case "dynamic":
			if role == "" {
				errs.Add("role", "required for source dynamic")
			}
		}
		return nil
	})}
}

// Annotations of the SecretBinding.
func (SecretBinding) Annotations() []schema.Annotation {
	return gqlAnnotations("Where a secret injected into calls to an upstream comes from, and how it is injected. Never its value.")
}
