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
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

var errEmptyGroups = errors.New("give at least one group")

// SecretBinding injects a secret from Vault into requests to an upstream,
// just in time. The store keeps where the secret lives, never its value.
type SecretBinding struct {
	ent.Schema
}

// Mixin of the SecretBinding.
func (SecretBinding) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the SecretBinding. Their names are the YAML document's keys
// (internal/config.SecretBinding), whose Check the validation hook runs.
func (SecretBinding) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the secret binding."),
		descriptionField("secret binding"),
		globsField("tools", "Tools whose calls get the secret, by the upstream's own tool names (not the names a virtual server exposes); null means every request to the upstream, its handshake and listings included."),
		field.Enum("source").
			Values("kv", "dynamic").
			Comment("Where the secret comes from: a KV v2 secret (kv), or credentials that a secrets engine role issues with a lease (dynamic).").
			Annotations(entgql.OrderField("SOURCE")),
		field.String("path").
			NotEmpty().
			MaxLen(1024).
			Comment("Vault path. For kv, the secret's path including its mount (secret/github); for dynamic, the secrets engine mount (database), whose credentials are read from {path}/creds/{role}. With perPrincipal, a Go template over the calling agent: {{.agent}} and {{.team}}, e.g. secret/agents/{{.agent}}/github."),
		field.String("key").
			Optional().
			MaxLen(256).
			Comment("Field of the secret's data that the template sees as {{.Value}}; required for source kv."),
		field.Int("version").
			Optional().
			Min(0).
			Comment("KV version to read, source kv only; 0 or unset means the latest."),
		field.String("role").
			Optional().
			MaxLen(256).
			Comment("Secrets engine role whose credentials are requested ({path}/creds/{role}); required for source dynamic, and only for it."),
		field.Enum("lease_scope").
			Values("call", "session").
			Default("call").
			Comment("Dynamic secrets: call leases a credential per call and revokes it when the call ends; session leases one per agent session, revoked when the session ends."),
		field.Enum("injection").
			Values("header", "query", "env", "argument").
			Comment("How the secret reaches the upstream: an HTTP header or a URL query parameter (HTTP upstreams), an environment variable of the process (stdio upstreams), or a tool argument that the agent never sees (either)."),
		field.String("target").
			NotEmpty().
			MaxLen(256).
			Comment("Name of the header (a valid header name), query parameter, environment variable ([A-Za-z_][A-Za-z0-9_]*) or argument to set."),
		field.Text("template").
			Optional().
			MaxLen(1024).
			Comment("Go text/template rendering the injected value from the secret's fields: {{.Value}} is the field that key names, others go by name (e.g. postgresql://{{.username}}:{{.password}}@db/app). Empty injects {{.Value}} as is."),
		field.Bool("per_principal").
			Default(false).
			Comment("Whether each agent gets its own secret: the path is then rendered for the calling agent ({{.agent}}, {{.team}}), and requests without an agent (discovery) do not get the secret."),
	}
}

// Edges of the SecretBinding.
func (SecretBinding) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("upstream", Upstream.Type).
			Ref("secret_bindings").
			Unique().
			Required().
			Comment("Upstream whose requests get the secret."),
	}
}

// Hooks of the SecretBinding: the checks of config.SecretBinding.Check on
// the binding as the mutation leaves it. That its upstream's transport
// takes the injection is checked by the store (internal/store), which can
// query the upstream. Bulk updates, whose rows are not loaded, are not
// checked.
func (SecretBinding) Hooks() []ent.Hook {
	return []ent.Hook{validationHook(func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error {
		if m.Op().Is(ent.OpUpdate) {
			return nil
		}
		var b config.SecretBinding
		for name, p := range map[string]*string{
			"source": &b.Source, "path": &b.Path, "key": &b.Key, "role": &b.Role, "lease_scope": &b.LeaseScope,
			"injection": &b.Injection, "target": &b.Target, "template": &b.Template,
		} {
			v, err := stringValue(ctx, m, name)
			if err != nil {
				return err
			}
			*p = v
		}
		if v, ok, err := value(ctx, m, "version"); err != nil {
			return err
		} else if ok {
			b.Version, _ = v.(int)
		}
		if v, ok, err := value(ctx, m, "per_principal"); err != nil {
			return err
		} else if ok {
			b.PerPrincipal, _ = v.(bool)
		}
		for _, e := range b.Check() {
			errs.Add(e.Path, "%s", e.Reason)
		}
		return nil
	})}
}

// Annotations of the SecretBinding.
func (SecretBinding) Annotations() []schema.Annotation {
	return gqlAnnotations("Where a secret injected into requests to an upstream comes from (Vault), and how it is injected; never its value.")
}
