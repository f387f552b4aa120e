package schema

import (
	"encoding/json"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AdminChange is one entry of the admin change log: who created, updated or
// deleted which configuration entity, with the entity before and after.
// The store writes it (internal/store's change-log hook), in the
// transaction of the change itself; nothing updates or deletes it, and the
// GraphQL API only reads it. Its largest ID is the configuration's
// revision (store.Revision).
type AdminChange struct {
	ent.Schema
}

// Fields of the AdminChange.
func (AdminChange) Fields() []ent.Field {
	return []ent.Field{
		field.Time("at").
			Default(time.Now).
			Immutable().
			Comment("When the change was made.").
			Annotations(entgql.OrderField("AT")),
		field.String("actor").
			Optional().
			Immutable().
			Comment("Who made the change: an admin token (token:NAME) or the actor of an applied document; empty for writes the gateway makes on its own.").
			Annotations(entgql.OrderField("ACTOR")),
		field.Enum("op").
			Values("create", "update", "delete").
			Immutable().
			Comment("What happened to the entity.").
			Annotations(entgql.OrderField("OP")),
		field.String("entity_type").
			NotEmpty().
			Immutable().
			Comment("Type of the entity, as in the GraphQL schema, e.g. Upstream.").
			Annotations(entgql.OrderField("ENTITY_TYPE")),
		field.Int("entity_id").
			Immutable().
			Comment("ID of the entity; node(id) finds it while it exists.").
			// An ID like any other: global IDs exceed GraphQL's 32-bit Int.
			Annotations(entgql.OrderField("ENTITY_ID"), entgql.Type("ID")),
		field.String("entity_name").
			Optional().
			Immutable().
			Comment("Name of the entity when it has one; for an API key AGENT/HASH-PREFIX, for a selection VIRTUAL-SERVER/UPSTREAM.").
			Annotations(entgql.OrderField("ENTITY_NAME")),
		field.JSON("before", json.RawMessage{}).
			Optional().
			Immutable().
			Comment("The entity before the change, as a JSON object of its fields (snake_case) and the IDs of the entities it refers to; null for a create. Secrets (token hashes) never appear.").
			Annotations(entgql.Type("JSON")),
		field.JSON("after", json.RawMessage{}).
			Optional().
			Immutable().
			Comment("The entity after the change, in the form of before; null for a delete.").
			Annotations(entgql.Type("JSON")),
	}
}

// Indexes of the AdminChange: the history of one entity, and of one type.
func (AdminChange) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("entity_type", "entity_id"),
		index.Fields("at"),
	}
}

// Annotations of the AdminChange: a read-only Relay connection.
func (AdminChange) Annotations() []schema.Annotation {
	const comment = "An entry of the admin change log: who created, updated or deleted which configuration entity, with its state before and after. Readable by the admin and auditor roles."
	return []schema.Annotation{
		schema.Comment(comment),
		entgql.QueryField().Description(comment),
		entgql.RelayConnection(),
		entgql.MultiOrder(),
	}
}
