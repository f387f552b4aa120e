package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// Webhook notifies an approver group of calls waiting for it: an HMAC-signed
// JSON POST when a call is held for the group, or escalated to it.
type Webhook struct {
	ent.Schema
}

// Mixin of the Webhook.
func (Webhook) Mixin() []ent.Mixin { return []ent.Mixin{AuditMixin{}} }

// Fields of the Webhook.
func (Webhook) Fields() []ent.Field {
	return []ent.Field{
		nameField("Unique name of the webhook."),
		descriptionField("webhook"),
		field.String("group").
			Validate(schematype.ValidateName).
			Comment("Approver group (team or role named in approval rules) the webhook notifies.").
			Annotations(entgql.OrderField("GROUP")),
		field.String("url").
			Validate(schematype.ValidateWebhookURL).
			Comment("http(s) URL that receives the POST."),
		field.String("secret").
			Sensitive().
			Validate(func(s string) error {
				if len(s) < 16 {
					return fmt.Errorf("must be at least 16 characters, got %d", len(s))
				}
				return nil
			}).
			Comment("Key of the HMAC-SHA256 signature (X-Gatehouse-Signature); at least 16 characters. Write-only: never shown.").
			Annotations(entgql.Skip(entgql.SkipType, entgql.SkipWhereInput, entgql.SkipOrderField)),
		field.Bool("enabled").
			Default(true).
			Comment("Whether deliveries are made."),
	}
}

// Annotations of the Webhook.
func (Webhook) Annotations() []schema.Annotation {
	return gqlAnnotations("A webhook that tells an approver group about calls waiting for it (HMAC-signed JSON POST).")
}
