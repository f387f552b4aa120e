package guard

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const testSchema = `{
	"type": "object",
	"properties": {
		"query": {"type": "string", "minLength": 1, "maxLength": 20},
		"count": {"type": "integer", "minimum": 1, "maximum": 100},
		"ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.25},
		"mode": {"enum": ["fast", "safe"]},
		"version": {"const": 2},
		"code": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"},
		"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3, "uniqueItems": true},
		"owner": {"$ref": "#/$defs/person"},
		"target": {"anyOf": [{"type": "string", "format": "uri"}, {"type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"]}]},
		"either": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
		"strict": {"type": "object", "properties": {"a": {"type": "boolean"}}, "additionalProperties": false},
		"meta": {"type": "object", "additionalProperties": {"type": "string"}},
		"nothing": false
	},
	"required": ["query"],
	"$defs": {
		"person": {"type": "object", "properties": {"name": {"type": "string"}, "emails": {"type": "array", "items": {"type": "string", "maxLength": 30}}}, "required": ["name"]}
	}
}`

func TestArgValidation(t *testing.T) {
	t.Parallel()
	v, err := CompileArgs(json.RawMessage(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args string
		want string // "" valid
	}{
		{`{"query": "x"}`, ""},
		{`{"query": "x", "count": 5, "ratio": 0.5, "mode": "safe", "version": 2, "code": "ABC-12", "tags": ["a", "b"], "owner": {"name": "n", "emails": ["a@b.c"]}, "target": {"host": "h"}, "either": 1.5, "strict": {"a": true}, "meta": {"k": "v"}}`, ""},
		{`{}`, "args.query: is required"},
		{`{"query": 3}`, "args.query: must be a string, got integer"},
		{`{"query": ""}`, "args.query: must be at least 1 characters long"},
		{`{"query": "` + strings.Repeat("é", 21) + `"}`, "args.query: must be at most 20 characters long"},
		{`{"query": "x", "count": 0}`, "args.count: must be >= 1"},
		{`{"query": "x", "count": 101}`, "args.count: must be <= 100"},
		{`{"query": "x", "count": 1.5}`, "args.count: must be an integer, got number"},
		{`{"query": "x", "ratio": 0}`, "args.ratio: must be > 0"},
		{`{"query": "x", "ratio": 1}`, "args.ratio: must be < 1"},
		{`{"query": "x", "ratio": 0.3}`, "args.ratio: must be a multiple of 0.25"},
		{`{"query": "x", "mode": "turbo"}`, `args.mode: must be one of "fast", "safe"`},
		{`{"query": "x", "version": 3}`, "args.version: must be 2"},
		{`{"query": "x", "code": "secret-AKIAIOSFODNN7EXAMPLE"}`, `args.code: must match the pattern ^[A-Z]{3}-\d+$`},
		{`{"query": "x", "tags": []}`, "args.tags: must have at least 1 items"},
		{`{"query": "x", "tags": ["a", "b", "c", "d"]}`, "args.tags: must have at most 3 items"},
		{`{"query": "x", "tags": ["a", "a"]}`, "args.tags: must have unique items (items 0 and 1 are equal)"},
		{`{"query": "x", "tags": ["a", 2]}`, "args.tags[1]: must be a string, got integer"},
		{`{"query": "x", "owner": {}}`, "args.owner.name: is required"},
		{`{"query": "x", "owner": {"name": "n", "emails": ["ok", "` + strings.Repeat("x", 31) + `"]}}`, "args.owner.emails[1]: must be at most 30 characters long"},
		{`{"query": "x", "target": {"port": 1}}`, "args.target.host: is required"},
		{`{"query": "x", "target": 5}`, "args.target: must match one of the allowed schemas (anyOf)"},
		{`{"query": "x", "either": 3}`, "args.either: must match exactly one of the allowed schemas (oneOf), matches 2"},
		{`{"query": "x", "strict": {"a": true, "b": 1}}`, "args.strict.b: is not an accepted property"},
		{`{"query": "x", "meta": {"k": 1}}`, "args.meta.k: must be a string, got integer"},
		{`{"query": "x", "nothing": 1}`, "args.nothing: is not allowed"},
		{`{"query": "x", "odd key": {"weird \"k\"": 1}}`, ""},
	}
	for _, tc := range tests {
		var args map[string]any
		if err := json.Unmarshal([]byte(tc.args), &args); err != nil {
			t.Fatal(err)
		}
		err := v.Validate(args)
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, ErrInvalidArguments) {
				t.Errorf("%s: error %v does not wrap ErrInvalidArguments", tc.args, err)
			}
			if strings.Contains(got, "AKIA") {
				t.Errorf("%s: error quotes the value: %s", tc.args, got)
			}
		}
		if got != tc.want {
			t.Errorf("Validate(%s)\n got %q\nwant %q", tc.args, got, tc.want)
		}
	}
	if err := v.Validate(nil); err == nil || err.Error() != "args.query: is required" {
		t.Errorf("nil args: %v", err)
	}
}

func TestCompileArgs(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "null", "  "} {
		v, err := CompileArgs(json.RawMessage(s))
		if err != nil || v.Validate(map[string]any{"x": 1.0}) != nil {
			t.Errorf("CompileArgs(%q) = %v", s, err)
		}
	}
	var nilV *ArgValidator
	if nilV.Validate(nil) != nil {
		t.Error("nil validator rejected")
	}
	for _, s := range []string{
		`{"type": "object",`,
		`{"$ref": "https://example.com/schema.json"}`,
		`{"type": "object", "properties": {"a": {"pattern": "("}}}`,
		`{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}`,
		`{"type": 5}`,
	} {
		if _, err := CompileArgs(json.RawMessage(s)); err == nil {
			t.Errorf("CompileArgs(%s) accepted", s)
		}
	}
	// Draft-07 schemas, common among MCP servers, work.
	v, err := CompileArgs(json.RawMessage(`{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {"n": {"type": "number"}, "list": {"type": "array", "items": [{"type": "string"}]}}, "definitions": {"x": {"type": "string"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(map[string]any{"n": "one"}); err == nil || err.Error() != "args.n: must be a number, got string" {
		t.Errorf("draft-07: %v", err)
	}
	if err := v.Validate(map[string]any{"list": []any{1.0}}); err == nil || err.Error() != "args.list[0]: must be a string, got integer" {
		t.Errorf("draft-07 items array: %v", err)
	}
}

// When the explaining walk cannot pin a failure down, the message names the
// keyword only.
func TestArgValidationFallback(t *testing.T) {
	t.Parallel()
	v, err := CompileArgs(json.RawMessage(`{"type": "object", "unevaluatedProperties": false, "properties": {"a": {"type": "string"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	err = v.Validate(map[string]any{"a": "x", "secretfield": "AKIAIOSFODNN7EXAMPLE"})
	if err == nil || err.Error() != "args.secretfield: is not an accepted property" {
		t.Errorf("unevaluatedProperties: %v", err)
	}
	// contains with minContains is not explained: the keyword is named.
	v, err = CompileArgs(json.RawMessage(`{"type": "object", "properties": {"l": {"type": "array", "contains": {"const": "AKIAIOSFODNN7EXAMPLE"}, "minContains": 2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	err = v.Validate(map[string]any{"l": []any{"AKIAIOSFODNN7EXAMPLE", "b"}})
	if err == nil || !strings.HasPrefix(err.Error(), "args: does not match the tool's input schema (") || strings.Count(err.Error(), "AKIA") > 0 {
		t.Errorf("fallback: %v", err)
	}
}

// The walk decides alone for schemas it fully implements: it must agree
// with jsonschema-go on every instance.
func TestWalkAgreesWithLibrary(t *testing.T) {
	t.Parallel()
	props := []string{
		`{"type":"integer"}`, `{"type":"number","minimum":-1.5,"exclusiveMaximum":1e3}`, `{"type":["string","null"]}`,
		`{"multipleOf":0.5}`, `{"enum":[1,"1",null,[1,{"a":true}],{"b":[]}]}`, `{"const":{"a":[1,2.0]}}`, `{"const":null}`,
		`{"minLength":2,"maxLength":3}`, `{"pattern":"^é+$"}`, `{"not":{"type":"string"}}`, `true`, `false`,
		`{"type":"array","items":{"type":"integer"},"uniqueItems":true,"minItems":1}`, `{"prefixItems":[{"type":"string"}],"items":false}`,
		`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`,
		`{"patternProperties":{"^x":{"type":"number"}},"additionalProperties":{"type":"boolean"},"propertyNames":{"maxLength":3}}`,
		`{"minProperties":1,"maxProperties":2}`, `{"anyOf":[{"type":"integer"},{"minLength":3}]}`, `{"oneOf":[{"type":"number"},{"type":"integer"}]}`,
		`{"allOf":[{"type":"number"},{"maximum":5}]}`, `{"if":{"type":"integer"},"then":{"minimum":0},"else":{"type":"string"}}`,
		`{"$ref":"#/$defs/d","maximum":2}`, `{"dependentRequired":{"a":["b"]}}`,
	}
	values := []string{
		`null`, `true`, `0`, `-0`, `1`, `1.0`, `1.5`, `2`, `3`, `-2`, `1e300`, `999.9999999`, `""`, `"a"`, `"ab"`, `"abcd"`, `"éé"`, `"1"`,
		`[]`, `[1]`, `[1,1.0]`, `[1,2]`, `["a"]`, `["a",1]`, `[1,{"a":true}]`, `{}`, `{"a":"x"}`, `{"a":1}`, `{"a":"x","b":1}`,
		`{"x1":1,"y":true}`, `{"xlong":1}`, `{"y":"s"}`, `{"b":[]}`, `{"a":[1,2]}`, `{"a":[1,2.5]}`,
	}
	for _, draft := range []string{"", `"$schema":"http://json-schema.org/draft-07/schema#",`} {
		for _, p := range props {
			schema := `{` + draft + `"type":"object","properties":{"v":` + p + `},"$defs":{"d":{"type":"integer"}}}`
			v, err := CompileArgs(json.RawMessage(schema))
			if err != nil {
				t.Fatalf("%s: %v", schema, err)
			}
			for _, val := range values {
				var args map[string]any
				if err := json.Unmarshal([]byte(`{"v":`+val+`}`), &args); err != nil {
					t.Fatal(err)
				}
				got := v.Validate(args)
				want := v.resolved.Validate(args)
				if (got == nil) != (want == nil) {
					t.Errorf("schema %s, value %s: walk %v, library %v (fast %v)", schema, val, got, want, v.fast)
				}
			}
		}
	}
}
