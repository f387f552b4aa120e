//go:build ignore

// entc.go generates the Ent client from ./schema and, through entgql, the
// GraphQL schema graph/ent.graphql that gqlgen then compiles (see
// graph/generate.go). `go generate ./...` runs it from the repository root
// (go run -C ..), so that the paths below match the ones gqlgen.yml lists.
package main

import (
	"fmt"
	"log"
	"slices"
	"strings"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
	"github.com/vektah/gqlparser/v2/ast"
)

func main() {
	ex, err := entgql.NewExtension(
		entgql.WithTemplates(templates()...),
		entgql.WithConfigPath("gqlgen.yml"),
		entgql.WithSchemaGenerator(),
		entgql.WithSchemaPath("graph/ent.graphql"),
		entgql.WithWhereInputs(true),
		entgql.WithRelaySpec(true),
		entgql.WithSchemaHook(describe),
	)
	if err != nil {
		log.Fatalf("creating entgql extension: %v", err)
	}
	err = entc.Generate("./ent/schema", &gen.Config{
		Features: []gen.Feature{
			// Node IDs are unique across types (each type owns a range of
			// 2^32), so node(id) finds the type from the id alone.
			gen.FeatureGlobalID,
			// ExecContext on clients, transactions and mutations: the
			// store runs SAVEPOINTs (dry runs inside a GraphQL
			// transaction) and PostgreSQL advisory locks (the change log
			// keeps revisions in commit order) through them.
			gen.FeatureExecQuery,
		},
	}, entc.Extensions(ex))
	if err != nil {
		log.Fatalf("running ent codegen: %v", err)
	}
}

// templates are entgql's, with ent/template/mutation_input.tmpl in place
// of its mutation input template: entgql v0.7.0's Update<T>Input.Mutate
// passes the Set list to Append<Field> (appendTools: ["x"] appended tools,
// usually nothing), fixed in the copy.
func templates() []*gen.Template {
	ts := slices.DeleteFunc(slices.Clone(entgql.AllTemplates), func(t *gen.Template) bool { return t == entgql.MutationInputTemplate })
	return append(ts, gen.MustParse(gen.NewTemplate("template/mutation_input.tmpl").
		Funcs(entgql.TemplateFuncs).
		ParseFiles("ent/template/mutation_input.tmpl")))
}

// describe gives every element of the generated GraphQL schema a
// description: object types take their schema comment, fields (also in
// inputs and filters) their field's or edge's comment, and the elements
// entgql leaves bare (where-predicates, clear/append/add/remove inputs,
// order fields, enum values, IDs) a sentence derived from what they act on.
// graph/schema_test.go checks that nothing is left without one.
func describe(g *gen.Graph, s *ast.Schema) error {
	if q := s.Types["Query"]; q != nil && q.Description == "" {
		q.Description = "Reads the configuration: every entity as a Relay connection with where-filters and ordering, and any entity by its ID. Reading the configuration needs the admin, viewer or auditor role; the admin change log (adminChanges) the admin or auditor role."
	}
	for _, n := range g.Nodes {
		fields := map[string]string{"id": "the ID"}
		comments := map[string]string{"id": "The ID of the object, unique across all types: node(id) finds it."}
		for _, f := range n.Fields {
			fields[camel(f.Name)] = camel(f.Name)
			comments[camel(f.Name)] = f.Comment()
		}
		edges := map[string]string{}
		for _, e := range n.Edges {
			edges[camel(e.Name)] = e.Comment()
		}
		if t := s.Types[n.Name]; t != nil {
			if c, ok := n.Annotations["Comment"].(map[string]any); ok && t.Description == "" {
				t.Description, _ = c["Text"].(string)
			}
			for _, f := range t.Fields {
				setDefault(&f.Description, comments[f.Name])
				setDefault(&f.Description, edges[f.Name])
			}
		}
		for _, name := range []string{"Create" + n.Name + "Input", "Update" + n.Name + "Input"} {
			t := s.Types[name]
			if t == nil {
				continue
			}
			for _, f := range t.Fields {
				setDefault(&f.Description, inputDescription(f.Name, comments, edges))
			}
		}
		if t := s.Types[n.Name+"WhereInput"]; t != nil {
			for _, f := range t.Fields {
				setDefault(&f.Description, whereDescription(f.Name, fields, edges))
			}
		}
		if t := s.Types[n.Name+"OrderField"]; t != nil {
			for _, v := range t.EnumValues {
				setDefault(&v.Description, "Orders by "+strings.ToLower(strings.ReplaceAll(v.Name, "_", " "))+".")
			}
		}
		for _, f := range n.Fields {
			if t := s.Types[n.Name+pascal(f.Name)]; f.IsEnum() && t != nil && t.Kind == ast.Enum {
				for _, v := range t.EnumValues {
					setDefault(&v.Description, "The value "+v.Name+" of "+camel(f.Name)+": see that field.")
				}
			}
		}
	}
	return nil
}

func setDefault(desc *string, text string) {
	if *desc == "" {
		*desc = text
	}
}

func inputDescription(name string, comments, edges map[string]string) string {
	if c, ok := comments[name]; ok {
		return c
	}
	for _, p := range []struct{ prefix, suffix, format string }{
		{"clear", "", "Clears %s."},
		{"append", "", "Appends values to the list %s."},
		{"add", "IDs", "Adds entities, by ID, to the edge %s."},
		{"remove", "IDs", "Removes entities, by ID, from the edge %s."},
		{"", "IDs", "IDs of the entities of the edge %s."},
		{"", "ID", "ID of the entity of the edge %s."},
	} {
		if !strings.HasPrefix(name, p.prefix) || !strings.HasSuffix(name, p.suffix) {
			continue
		}
		target := lowerFirst(strings.TrimSuffix(strings.TrimPrefix(name, p.prefix), p.suffix))
		if c, ok := edges[target]; ok {
			return fmt.Sprintf(p.format, target) + " " + c
		}
		if c, ok := edges[target+"s"]; ok && p.suffix == "IDs" {
			return fmt.Sprintf(p.format, target+"s") + " " + c
		}
		if target+"s" != name {
			if _, ok := comments[target]; ok {
				return fmt.Sprintf(p.format, target)
			}
		}
		if c, ok := edges[target+"s"]; ok && p.prefix == "clear" {
			return fmt.Sprintf(p.format, target+"s") + " " + c
		}
	}
	return ""
}

var predicates = []struct{ suffix, phrase string }{
	{"ContainsFold", "contains the value, ignoring case"},
	{"EqualFold", "equals the value, ignoring case"},
	{"HasPrefix", "starts with the value"},
	{"HasSuffix", "ends with the value"},
	{"Contains", "contains the value"},
	{"NotNil", "is not null"},
	{"IsNil", "is null"},
	{"NotIn", "is none of the values"},
	{"NEQ", "differs from the value"},
	{"GTE", "is greater than or equal to the value"},
	{"LTE", "is less than or equal to the value"},
	{"GT", "is greater than the value"},
	{"LT", "is less than the value"},
	{"In", "is one of the values"},
}

func whereDescription(name string, fields, edges map[string]string) string {
	switch name {
	case "not":
		return "Matches what the filter does not match."
	case "and":
		return "Matches what all of these filters match."
	case "or":
		return "Matches what at least one of these filters matches."
	}
	if base, ok := fields[name]; ok {
		return "Matches when " + base + " equals the value."
	}
	for _, p := range predicates {
		if base, ok := fields[strings.TrimSuffix(name, p.suffix)]; ok && strings.HasSuffix(name, p.suffix) {
			return "Matches when " + base + " " + p.phrase + "."
		}
	}
	if strings.HasPrefix(name, "has") {
		edge := lowerFirst(strings.TrimSuffix(strings.TrimPrefix(name, "has"), "With"))
		if _, ok := edges[edge]; ok {
			if strings.HasSuffix(name, "With") {
				return "Matches when the edge " + edge + " leads to an entity matching all these filters."
			}
			return "Matches when the edge " + edge + " leads to at least one entity."
		}
	}
	return ""
}

// camel converts an Ent name to the GraphQL one, as entgql does:
// "escalate_to" -> "escalateTo", "api_keys" -> "apiKeys".
func camel(s string) string { return lowerFirst(pascal(s)) }

func pascal(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		switch p {
		case "id":
			parts[i] = "ID"
		case "url":
			parts[i] = "URL"
		case "api":
			parts[i] = "API"
		default:
			if p != "" {
				parts[i] = strings.ToUpper(p[:1]) + p[1:]
			}
		}
	}
	return strings.Join(parts, "")
}

func lowerFirst(s string) string {
	switch {
	case strings.HasPrefix(s, "API"):
		return "api" + s[3:]
	case strings.HasPrefix(s, "URL"):
		return "url" + s[3:]
	case s == "":
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
