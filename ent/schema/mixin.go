// Package schema is the Ent schema of Gatehouse's config store: the
// entities an admin manages through the GraphQL API and that `gatehouse
// apply` writes. Doc comments given with Comment become the descriptions of
// the GraphQL types and fields that entgql generates from it.
package schema

import (
	"context"
	"path"
	"sort"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"

	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
)

// AuditMixin gives every entity created_at/updated_at and
// created_by/updated_by. The actor comes from the context ([actor.NewContext]):
// the admin token's name for GraphQL writes, the caller's actor for
// store.ApplyDocument.
type AuditMixin struct {
	mixin.Schema
}

// Fields of the AuditMixin.
func (AuditMixin) Fields() []ent.Field {
	noInput := noInput()
	return []ent.Field{
		field.Time("created_at").
			Default(time.Now).
			Immutable().
			Comment("When the entity was created.").
			Annotations(entgql.OrderField("CREATED_AT"), noInput),
		field.Time("updated_at").
			Default(time.Now).
			UpdateDefault(time.Now).
			Comment("When the entity was last changed.").
			Annotations(entgql.OrderField("UPDATED_AT"), noInput),
		field.String("created_by").
			Optional().
			Immutable().
			Comment("Who created the entity: an admin token (token:NAME) or the actor of an applied document.").
			Annotations(noInput),
		field.String("updated_by").
			Optional().
			Comment("Who last changed the entity, in the same form as createdBy.").
			Annotations(noInput),
	}
}

// Hooks of the AuditMixin record the actor of the context.
func (AuditMixin) Hooks() []ent.Hook {
	return []ent.Hook{
		func(next ent.Mutator) ent.Mutator {
			return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
				if name := actor.FromContext(ctx); name != "" {
					if m.Op().Is(ent.OpCreate) {
						if err := m.SetField("created_by", name); err != nil {
							return nil, err
						}
					}
					if m.Op().Is(ent.OpCreate | ent.OpUpdate | ent.OpUpdateOne) {
						if err := m.SetField("updated_by", name); err != nil {
							return nil, err
						}
					}
				}
				// JSON objects of strings (headers, env, labels, renames)
				// cannot carry an ent validator: check their keys here.
				var errs schematype.FieldErrors
				for _, name := range m.Fields() {
					v, _ := m.Field(name)
					if sm, ok := v.(map[string]string); ok {
						if err := schematype.ValidateStringMap(sm); err != nil {
							errs.Add(name, "%v", err)
						}
					}
				}
				if err := errs.Err(); err != nil {
					return nil, err
				}
				return next.Mutate(ctx, m)
			})
		},
	}
}

// noInput keeps a field out of the GraphQL create and update inputs: it is
// written by the store, not by admins directly.
func noInput() entgql.Annotation {
	return entgql.Skip(entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput)
}

// nameField is the unique, validated name most entities carry.
func nameField(comment string) ent.Field {
	return field.String("name").
		Unique().
		Validate(schematype.ValidateName).
		Comment(comment).
		Annotations(entgql.OrderField("NAME"))
}

// descriptionField is a free-text description for admins.
func descriptionField(of string) ent.Field {
	return field.Text("description").
		Optional().
		MaxLen(4096).
		Comment("Free-text description of the " + of + " for admins.")
}

// globsField is a list of path.Match patterns where nil means "all" and an
// empty list means "none".
func globsField(name, comment string) ent.Field {
	return field.Strings(name).
		Optional().
		Validate(schematype.ValidateGlobs).
		Comment(comment + " Globs (path.Match); null means all, [] means none.")
}

// stringMapField is a JSON object of strings, e.g. HTTP headers.
func stringMapField(name, comment string) ent.Field {
	return field.JSON(name, map[string]string{}).
		Optional().
		Comment(comment).
		Annotations(entgql.Type("StringMap"))
}

// gqlAnnotations are the entgql annotations every entity carries: a Relay
// connection on Query, multi-field ordering, and create/update inputs.
func gqlAnnotations(comment string, queryField ...string) []schema.Annotation {
	return []schema.Annotation{
		schema.Comment(comment),
		entgql.QueryField(queryField...).Description(comment),
		entgql.RelayConnection(),
		entgql.MultiOrder(),
		entgql.Mutations(entgql.MutationCreate(), entgql.MutationUpdate()),
	}
}

// validationHook runs a cross-field check on create and update. check sees
// each field's value after the mutation (see [value]) and adds failures to
// errs; all of them are reported together.
func validationHook(check func(ctx context.Context, m ent.Mutation, errs *schematype.FieldErrors) error) ent.Hook {
	return func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			if m.Op().Is(ent.OpCreate | ent.OpUpdate | ent.OpUpdateOne) {
				var errs schematype.FieldErrors
				if err := check(ctx, m, &errs); err != nil {
					return nil, err
				}
				if err := errs.Err(); err != nil {
					return nil, err
				}
			}
			return next.Mutate(ctx, m)
		})
	}
}

// value returns what a field holds after mutation m: the new value if m sets
// it, else the stored one for a single-entity update. ok is false when the
// field is unset or cleared, and for bulk updates that do not set it (their
// rows are not loaded; checks are then skipped).
func value(ctx context.Context, m ent.Mutation, name string) (v ent.Value, ok bool, err error) {
	if v, ok := m.Field(name); ok {
		return v, true, nil
	}
	if m.FieldCleared(name) || !m.Op().Is(ent.OpUpdateOne) {
		return nil, false, nil
	}
	v, err = m.OldField(ctx, name)
	if err != nil {
		return nil, false, err
	}
	return v, v != nil, nil
}

// stringValue is [value] for string and string-typed enum fields; "" when unset.
func stringValue(ctx context.Context, m ent.Mutation, name string) (string, error) {
	v, ok, err := value(ctx, m, name)
	if err != nil || !ok {
		return "", err
	}
	return stringOf(v), nil
}

// stringOf returns the string form of a string or string-typed enum value.
func stringOf(v ent.Value) string {
	switch s := v.(type) {
	case string:
		return s
	case interface{ String() string }:
		return s.String()
	}
	return ""
}

// matchAny reports whether name matches any of the globs in patterns.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// sortedKeys returns the keys of m in order, so that errors come out stable.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
