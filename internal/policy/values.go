package policy

import (
	"reflect"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The map variables principal, tool (and tool.annotations) and request
// are objectVals: CEL maps whose entries are read straight from the
// Principal and Request on lookup, instead of Go maps built for every
// decision. Field access, has(), "in", .? and size() work without building
// anything; iteration, equality and conversion build the full map once.

type objectKind uint8

const (
	principalObject objectKind = iota + 1
	toolObject
	annotationsObject
	requestObject
)

// objectVal is one map variable of one activation.
type objectVal struct {
	kind objectKind
	a    *activation
	full traits.Mapper // built on demand, see mapper
}

var (
	_ traits.Mapper = (*objectVal)(nil)

	annotationHints = []string{"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
)

// annotationDefault returns MCP's default for a hint annotation.
func annotationDefault(name string) (value, hint bool) {
	switch name {
	case "readOnlyHint", "idempotentHint":
		return false, true
	case "destructiveHint", "openWorldHint":
		return true, true
	}
	return false, false
}

// keys returns the keys of o.
func (o *objectVal) keys() []string {
	switch o.kind {
	case principalObject:
		return principalFields
	case toolObject:
		return toolFields
	case requestObject:
		return requestFields
	}
	keys := append([]string(nil), annotationHints...)
	for k := range o.a.r.Annotations {
		if _, hint := annotationDefault(k); !hint {
			keys = append(keys, k)
		}
	}
	return keys
}

// field returns the value of key name.
func (o *objectVal) field(name string) (ref.Val, bool) {
	a := o.a
	switch o.kind {
	case principalObject:
		p := a.p
		switch name {
		case "agent":
			return types.String(p.Agent), true
		case "team":
			return types.String(p.Team), true
		case "roles":
			return types.NewStringList(adapter, p.Roles), true
		case "labels":
			return types.NewStringStringMap(adapter, p.Labels), true
		case "method":
			return types.String(p.Method), true
		case "claims":
			return a.claimsVal(), true
		}
	case toolObject:
		switch name {
		case "name":
			return types.String(a.r.Name), true
		case "upstream":
			return types.String(a.r.Upstream), true
		case "kind":
			return types.String(a.r.Kind), true
		case "annotations":
			a.annotations = objectVal{kind: annotationsObject, a: a}
			return &a.annotations, true
		}
	case requestObject:
		switch name {
		case "time":
			return types.Timestamp{Time: a.now()}, true
		case "virtual_server":
			return types.String(a.r.VirtualServer), true
		case "source_ip":
			return types.String(a.r.SourceIP), true
		}
	case annotationsObject:
		def, hint := annotationDefault(name)
		v, ok := a.r.Annotations[name]
		if hint {
			if b, isBool := v.(bool); isBool {
				return types.Bool(b), true
			}
			return types.Bool(def), true // absent or malformed: MCP's default
		}
		if ok {
			return adapter.NativeToValue(v), true
		}
	}
	return nil, false
}

// mapper returns o as a plain CEL map.
func (o *objectVal) mapper() traits.Mapper {
	if o.full == nil {
		keys := o.keys()
		m := make(map[ref.Val]ref.Val, len(keys))
		for _, k := range keys {
			if v, ok := o.field(k); ok {
				if inner, isObj := v.(*objectVal); isObj {
					v = inner.mapper()
				}
				m[types.String(k)] = v
			}
		}
		o.full = types.NewRefValMap(adapter, m)
	}
	return o.full
}

// Find implements [traits.Mapper].
func (o *objectVal) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	return o.field(string(k))
}

// Get implements [traits.Indexer].
func (o *objectVal) Get(key ref.Val) ref.Val {
	if v, ok := o.Find(key); ok {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

// Contains implements [traits.Container].
func (o *objectVal) Contains(key ref.Val) ref.Val {
	_, ok := o.Find(key)
	return types.Bool(ok)
}

// Size implements [traits.Sizer].
func (o *objectVal) Size() ref.Val { return types.Int(len(o.keys())) }

// Iterator implements [traits.Iterable].
func (o *objectVal) Iterator() traits.Iterator { return o.mapper().Iterator() }

// ConvertToNative implements [ref.Val].
func (o *objectVal) ConvertToNative(t reflect.Type) (any, error) {
	return o.mapper().ConvertToNative(t)
}

// ConvertToType implements [ref.Val].
func (o *objectVal) ConvertToType(t ref.Type) ref.Val { return o.mapper().ConvertToType(t) }

// Equal implements [ref.Val].
func (o *objectVal) Equal(other ref.Val) ref.Val {
	if obj, ok := other.(*objectVal); ok {
		other = obj.mapper()
	}
	return o.mapper().Equal(other)
}

// Type implements [ref.Val].
func (o *objectVal) Type() ref.Type { return types.MapType }

// Value implements [ref.Val].
func (o *objectVal) Value() any { return o.mapper().Value() }

// now returns the request's time.
func (a *activation) now() time.Time {
	if a.r.Time.IsZero() {
		return time.Now()
	}
	return a.r.Time
}

var emptyMapVal = types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{})

// claimsVal returns the principal's claims, an empty map for none.
func (a *activation) claimsVal() ref.Val {
	if a.claims == nil {
		a.claims = emptyMapVal
		if a.p.Claims != nil {
			a.claims = types.NewStringInterfaceMap(adapter, a.p.Claims)
		}
	}
	return a.claims
}
