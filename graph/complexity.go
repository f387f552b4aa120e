package graph

import (
	"context"
	"reflect"
	"strings"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"

	"github.com/gatehouse-dev/gatehouse/graph/generated"
)

// nominalPage is the page size a connection queried without first or last
// is assumed to return when its complexity is computed.
const nominalPage = 10

// connectionComplexity weighs a Relay connection by how many nodes it may
// return: gqlgen's default counts every field once, whatever first says.
func connectionComplexity(child int, first, last *int) int {
	n := nominalPage
	if first != nil {
		n = *first
	}
	if last != nil && *last > n {
		n = *last
	}
	if n < 1 {
		n = 1
	}
	return 1 + child*n
}

var (
	intType    = reflect.TypeFor[int]()
	intPtrType = reflect.TypeFor[*int]()
	cursorType = reflect.TypeFor[*entgql.Cursor[int]]()
)

// weighConnections sets [connectionComplexity] as the complexity of every
// connection field of the schema: the generated complexity functions whose
// arguments are (childComplexity, after, first, before, last, ...), which
// is the shape of every entgql connection, on Query and on edges alike.
func weighConnections(c *generated.ComplexityRoot) {
	root := reflect.ValueOf(c).Elem()
	for i := 0; i < root.NumField(); i++ {
		obj := root.Field(i)
		if obj.Kind() != reflect.Struct {
			continue
		}
		for j := 0; j < obj.NumField(); j++ {
			f := obj.Field(j)
			t := f.Type()
			if t.Kind() != reflect.Func || t.NumIn() < 5 || t.In(0) != intType ||
				t.In(1) != cursorType || t.In(2) != intPtrType || t.In(3) != cursorType || t.In(4) != intPtrType {
				continue
			}
			f.Set(reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
				first, _ := args[2].Interface().(*int)
				last, _ := args[4].Interface().(*int)
				return []reflect.Value{reflect.ValueOf(connectionComplexity(int(args[0].Int()), first, last))}
			}))
		}
	}
}

// boundPages is a field middleware for Relay connections (fields of a
// *Connection type with first and last arguments): one queried without
// first or last gets first: max, and first or last above max is an error.
// The store is never asked for more than max nodes of one page.
func boundPages(max int) graphql.FieldMiddleware {
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || fc.Field.Definition == nil || !strings.HasSuffix(fc.Field.Definition.Type.Name(), "Connection") {
			return next(ctx)
		}
		first, okFirst := fc.Args["first"].(*int)
		last, okLast := fc.Args["last"].(*int)
		if !okFirst || !okLast {
			return next(ctx) // auditEvents pages by first alone, within its own bounds
		}
		for _, a := range []struct {
			name string
			n    *int
		}{{"first", first}, {"last", last}} {
			if a.n != nil && *a.n > max {
				return nil, fieldError(ctx, a.name, codeInvalid, "%s must be at most %d: fetch more pages with after: pageInfo.endCursor (or before: pageInfo.startCursor with last)", a.name, max)
			}
		}
		if first == nil && last == nil {
			n := max
			fc.Args["first"] = &n
		}
		return next(ctx)
	}
}
