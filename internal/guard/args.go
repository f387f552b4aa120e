package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Argument validation.
//
// Whether arguments are valid is what github.com/google/jsonschema-go (JSON
// Schema 2020-12 and draft-07, the MCP SDK's own validator) says, so the
// gateway accepts exactly what a conforming server would. That library
// validates by reflection (about 10 µs and 150 allocations for a small
// object) and its errors name schema locations and quote the offending
// value, which may be a secret. So validation here is a walk over the
// instance and the schema that tracks the instance path and says what is
// wrong without quoting the value: `args.count: must be >= 1`.
//
// For schemas that use only the keywords the walk implements exactly (the
// large majority of tool schemas: types, enums, numeric and string bounds,
// patterns, properties, required, additionalProperties, items, prefixItems,
// allOf/anyOf/oneOf/not, if/then/else, local $ref), the walk alone decides.
// Other schemas are decided by the library, and the walk only explains a
// rejection; when it cannot pin the failure down, the message names the
// keyword. FuzzArgValidation checks that the two always agree.

// ErrInvalidArguments is wrapped by every error of [ArgValidator.Validate].
var ErrInvalidArguments = errors.New("invalid arguments")

// KindInvalidArguments is the kind of schema findings.
const KindInvalidArguments = "invalid_arguments"

// ValidationError says which argument failed validation and why. It never
// quotes the argument's value.
type ValidationError struct {
	// Path is the failing property as a JSON path: "args.items[2].name".
	Path string
	// Reason says what is wrong: "must be >= 1", "is required".
	Reason string
}

func (e *ValidationError) Error() string { return e.Path + ": " + e.Reason }

// Unwrap returns [ErrInvalidArguments].
func (e *ValidationError) Unwrap() error { return ErrInvalidArguments }

// Finding returns the finding recording this failure (detector schema,
// action block).
func (e *ValidationError) Finding() Finding {
	return Finding{Detector: DetectorSchema, Kind: KindInvalidArguments, Path: e.Path, Score: 1, Action: config.ActionBlock}
}

// ArgValidator validates a tool's arguments against its input schema. It
// is safe for concurrent use. A nil *ArgValidator accepts everything.
type ArgValidator struct {
	resolved *jsonschema.Resolved
	root     *jsonschema.Schema
	patterns map[*jsonschema.Schema]*regexp.Regexp
	// propPatterns are the compiled patternProperties names.
	propPatterns map[string]*regexp.Regexp
	// fast: the walk implements every keyword of the schema, so it
	// decides alone.
	fast   bool
	draft7 bool
}

// CompileArgs compiles a tool's inputSchema. An empty or null schema gives
// a validator that accepts everything. Remote references ($ref to another
// document) are not fetched: such a schema is an error.
func CompileArgs(inputSchema json.RawMessage) (_ *ArgValidator, err error) {
	// The schema comes from an upstream: a bug it triggers in the
	// validator must not take the gateway down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compiling input schema: %v", r)
		}
	}()
	if t := bytes.TrimSpace(inputSchema); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return &ArgValidator{}, nil
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(inputSchema, &s); err != nil {
		return nil, fmt.Errorf("parsing input schema: %w", err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("resolving input schema: %w", err)
	}
	a := &ArgValidator{resolved: rs, root: &s, patterns: map[*jsonschema.Schema]*regexp.Regexp{}, propPatterns: map[string]*regexp.Regexp{}}
	visitSchemas(&s, 0, func(sub *jsonschema.Schema) {
		if sub.Pattern != "" {
			if re, err := regexp.Compile(sub.Pattern); err == nil {
				a.patterns[sub] = re
			}
		}
		for pat := range sub.PatternProperties {
			if re, err := regexp.Compile(pat); err == nil {
				a.propPatterns[pat] = re
			}
		}
	})
	// A schema the library cannot validate with ($schema of another draft)
	// fails here rather than on every call.
	if err := rs.Validate(map[string]any{}); err != nil && strings.HasPrefix(err.Error(), "cannot validate version") {
		return nil, fmt.Errorf("input schema: %w", err)
	}
	a.draft7 = strings.Contains(s.Schema, "draft-07")
	a.fast = a.walkable(&s, true, 0)
	return a, nil
}

// walkable reports whether the walk implements every keyword under s.
func (a *ArgValidator) walkable(s *jsonschema.Schema, root bool, depth int) bool {
	if s == nil {
		return true
	}
	if depth > 64 || s.ID != "" && !root || s.Anchor != "" || s.DynamicAnchor != "" || s.DynamicRef != "" || s.Vocabulary != nil ||
		s.DependencySchemas != nil || s.DependencyStrings != nil || s.DependentSchemas != nil ||
		s.ItemsArray != nil || s.AdditionalItems != nil || s.Contains != nil || s.MinContains != nil || s.MaxContains != nil ||
		s.UnevaluatedItems != nil || s.UnevaluatedProperties != nil || s.ContentSchema != nil {
		return false
	}
	if a.draft7 && (s.PrefixItems != nil || s.DependentRequired != nil) {
		return false // 2020-12 keywords a draft-07 validator ignores
	}
	if s.Pattern != "" && a.patterns[s] == nil {
		return false
	}
	for pat := range s.PatternProperties {
		if a.propPatterns[pat] == nil {
			return false
		}
	}
	if s.Ref != "" && a.ref(s.Ref) == nil {
		return false
	}
	for _, m := range []map[string]*jsonschema.Schema{s.Defs, s.Definitions, s.Properties, s.PatternProperties} {
		for _, c := range m {
			if !a.walkable(c, false, depth+1) {
				return false
			}
		}
	}
	for _, l := range [][]*jsonschema.Schema{s.PrefixItems, s.AllOf, s.AnyOf, s.OneOf} {
		for _, c := range l {
			if !a.walkable(c, false, depth+1) {
				return false
			}
		}
	}
	for _, c := range []*jsonschema.Schema{s.Items, s.AdditionalProperties, s.PropertyNames, s.Not, s.If, s.Then, s.Else} {
		if !a.walkable(c, false, depth+1) {
			return false
		}
	}
	return true
}

// Validate checks args (decoded with encoding/json: float64 numbers) against
// the schema. Missing arguments (nil) are validated as an empty object. The
// error is a *[ValidationError] wrapping [ErrInvalidArguments].
func (a *ArgValidator) Validate(args map[string]any) (err error) {
	if a == nil || a.resolved == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			// Fail closed: the call is not forwarded.
			err = &ValidationError{Path: "args", Reason: "could not be checked against the tool's input schema"}
		}
	}()
	var inst any = args
	if args == nil {
		inst = map[string]any{}
	}
	if a.fast {
		if e, complete := a.walk(inst, false); complete {
			if e == nil {
				return nil
			}
			if e, _ := a.walk(inst, true); e != nil {
				return e
			}
		}
	}
	err = a.resolved.Validate(inst)
	if err == nil {
		return nil
	}
	if e, complete := a.walk(inst, true); e != nil && complete {
		return e
	}
	reason := "does not match the tool's input schema"
	if k := failingKeyword(err.Error()); k != "" {
		reason += " (" + k + ")"
	}
	return &ValidationError{Path: "args", Reason: reason}
}

// failingKeyword extracts the keyword from a jsonschema-go error
// ("validating root: validating /properties/x: anyOf: ...").
func failingKeyword(msg string) string {
	for part := range strings.SplitSeq(msg, ": ") {
		if strings.HasPrefix(part, "validating ") {
			continue
		}
		k := part
		if i := strings.IndexAny(k, " :[\n"); i >= 0 {
			k = k[:i]
		}
		for i := 0; i < len(k); i++ {
			if !isAlpha(k[i]) && k[i] != '$' {
				return ""
			}
		}
		return k
	}
	return ""
}

func (a *ArgValidator) fail(p []seg, format string, args ...any) *ValidationError {
	return &ValidationError{Path: renderPath("args", p), Reason: fmt.Sprintf(format, args...)}
}

// explainer is the state of one explaining walk.
type explainer struct {
	*ArgValidator
	steps int
	// incomplete: the walk gave up (too deep, too many steps), so its
	// answer decides nothing.
	incomplete bool
	// sorted visits object properties in name order, so the failure
	// reported is always the same one; validating needs no order.
	sorted bool
	// buf backs the path: each level appends to its parent's slice, and
	// siblings reuse the slot.
	buf [16]seg
}

func (a *ArgValidator) walk(inst any, sorted bool) (*ValidationError, bool) {
	ex := explainer{ArgValidator: a, sorted: sorted}
	e := ex.explain(a.root, inst, ex.buf[:0], 0)
	return e, !ex.incomplete
}

// maxExplainSteps bounds the walk: nested anyOf/oneOf make it exponential
// in a hostile schema.
const maxExplainSteps = 10000

// explain finds why inst fails s; nil if it finds nothing.
func (a *explainer) explain(s *jsonschema.Schema, inst any, p []seg, depth int) *ValidationError {
	a.steps++
	if s == nil {
		return nil
	}
	if depth > 64 || a.steps > maxExplainSteps {
		a.incomplete = true
		return nil
	}
	if isFalseSchema(s) {
		return a.fail(p, "is not allowed")
	}
	if s.Ref != "" {
		t := a.ref(s.Ref)
		if t == nil {
			a.incomplete = true
		} else if e := a.explain(t, inst, p, depth+1); e != nil {
			return e
		}
		if a.draft7 {
			return nil // draft-07 ignores the siblings of $ref
		}
	}
	got := jsonTypeName(inst)
	if s.Type != "" && !typeMatches(s.Type, got) {
		return a.fail(p, "must be %s, got %s", article(s.Type), got)
	}
	if len(s.Types) > 0 && !slices.ContainsFunc(s.Types, func(t string) bool { return typeMatches(t, got) }) {
		return a.fail(p, "must be one of the types %s, got %s", strings.Join(s.Types, ", "), got)
	}
	if s.Enum != nil && !slices.ContainsFunc(s.Enum, func(e any) bool { return jsonEqual(e, inst) }) {
		return a.fail(p, "must be one of %s", listValues(s.Enum))
	}
	if s.Const != nil && !jsonEqual(*s.Const, inst) {
		return a.fail(p, "must be %s", shortValue(*s.Const))
	}
	switch x := inst.(type) {
	case string:
		n := utf8.RuneCountInString(x)
		if s.MinLength != nil && n < *s.MinLength {
			return a.fail(p, "must be at least %d characters long", *s.MinLength)
		}
		if s.MaxLength != nil && n > *s.MaxLength {
			return a.fail(p, "must be at most %d characters long", *s.MaxLength)
		}
		if re := a.patterns[s]; re != nil && !re.MatchString(x) {
			return a.fail(p, "must match the pattern %s", s.Pattern)
		}
	case []any:
		if e := a.explainArray(s, x, p, depth); e != nil {
			return e
		}
	case map[string]any:
		if e := a.explainObject(s, x, p, depth); e != nil {
			return e
		}
	default:
		if f, ok := toFloat(inst); ok {
			if e := a.explainNumber(s, f, p); e != nil {
				return e
			}
		}
	}
	for _, sub := range s.AllOf {
		if e := a.explain(sub, inst, p, depth+1); e != nil {
			return e
		}
	}
	if len(s.AnyOf) > 0 {
		if e := a.explainAlternatives(s.AnyOf, inst, p, depth, "anyOf"); e != nil {
			return e
		}
	}
	if len(s.OneOf) > 0 {
		if e := a.explainAlternatives(s.OneOf, inst, p, depth, "oneOf"); e != nil {
			return e
		}
		n := 0
		for _, sub := range s.OneOf {
			if a.explain(sub, inst, p, depth+1) == nil {
				n++
			}
		}
		if n > 1 {
			return a.fail(p, "must match exactly one of the allowed schemas (oneOf), matches %d", n)
		}
	}
	if s.Not != nil && a.explain(s.Not, inst, p, depth+1) == nil {
		return a.fail(p, "must not match the excluded schema (not)")
	}
	if s.If != nil {
		if a.explain(s.If, inst, p, depth+1) == nil {
			if e := a.explain(s.Then, inst, p, depth+1); e != nil {
				return e
			}
		} else if e := a.explain(s.Else, inst, p, depth+1); e != nil {
			return e
		}
	}
	return nil
}

// explainAlternatives reports anyOf/oneOf failures: the most specific
// branch error if every branch fails deeper than here, else a summary.
func (a *explainer) explainAlternatives(alts []*jsonschema.Schema, inst any, p []seg, depth int, kw string) *ValidationError {
	var best *ValidationError
	for _, sub := range alts {
		e := a.explain(sub, inst, p, depth+1)
		if e == nil {
			return nil
		}
		if best == nil || len(e.Path) > len(best.Path) {
			best = e
		}
	}
	here := renderPath("args", p)
	if best != nil && len(best.Path) > len(here) {
		return best
	}
	return a.fail(p, "must match one of the allowed schemas (%s)", kw)
}

func (a *explainer) explainNumber(s *jsonschema.Schema, f float64, p []seg) *ValidationError {
	switch {
	case s.Minimum != nil && f < *s.Minimum:
		return a.fail(p, "must be >= %s", fmtNum(*s.Minimum))
	case s.Maximum != nil && f > *s.Maximum:
		return a.fail(p, "must be <= %s", fmtNum(*s.Maximum))
	case s.ExclusiveMinimum != nil && f <= *s.ExclusiveMinimum:
		return a.fail(p, "must be > %s", fmtNum(*s.ExclusiveMinimum))
	case s.ExclusiveMaximum != nil && f >= *s.ExclusiveMaximum:
		return a.fail(p, "must be < %s", fmtNum(*s.ExclusiveMaximum))
	case s.MultipleOf != nil && *s.MultipleOf != 0:
		if _, frac := math.Modf(f / *s.MultipleOf); frac != 0 {
			return a.fail(p, "must be a multiple of %s", fmtNum(*s.MultipleOf))
		}
	}
	return nil
}

func (a *explainer) explainArray(s *jsonschema.Schema, x []any, p []seg, depth int) *ValidationError {
	if s.MinItems != nil && len(x) < *s.MinItems {
		return a.fail(p, "must have at least %d items", *s.MinItems)
	}
	if s.MaxItems != nil && len(x) > *s.MaxItems {
		return a.fail(p, "must have at most %d items", *s.MaxItems)
	}
	prefix := s.PrefixItems
	if prefix == nil {
		prefix = s.ItemsArray
	}
	for i, e := range x {
		var sub *jsonschema.Schema
		switch {
		case i < len(prefix):
			sub = prefix[i]
		case s.Items != nil:
			sub = s.Items
		case s.AdditionalItems != nil && s.ItemsArray != nil:
			sub = s.AdditionalItems
		}
		if e := a.explain(sub, e, append(p, seg{idx: i}), depth+1); e != nil {
			return e
		}
	}
	if s.UniqueItems {
		for i := range x {
			for j := i + 1; j < len(x); j++ {
				if jsonEqual(x[i], x[j]) {
					return a.fail(p, "must have unique items (items %d and %d are equal)", i, j)
				}
			}
		}
	}
	if s.Contains != nil && s.MinContains == nil {
		ok := false
		for _, e := range x {
			if a.explain(s.Contains, e, p, depth+1) == nil {
				ok = true
				break
			}
		}
		if !ok {
			return a.fail(p, "must contain an item matching the schema (contains)")
		}
	}
	return nil
}

func (a *explainer) explainObject(s *jsonschema.Schema, x map[string]any, p []seg, depth int) *ValidationError {
	for _, r := range s.Required {
		if _, ok := x[r]; !ok {
			return a.fail(append(p, seg{key: r, idx: -1}), "is required")
		}
	}
	for k, deps := range s.DependentRequired {
		if _, ok := x[k]; !ok {
			continue
		}
		for _, d := range deps {
			if _, ok := x[d]; !ok {
				return a.fail(append(p, seg{key: d, idx: -1}), "is required when %s is given", k)
			}
		}
	}
	if s.MinProperties != nil && len(x) < *s.MinProperties {
		return a.fail(p, "must have at least %d properties", *s.MinProperties)
	}
	if s.MaxProperties != nil && len(x) > *s.MaxProperties {
		return a.fail(p, "must have at most %d properties", *s.MaxProperties)
	}
	if !a.sorted {
		for k, v := range x {
			if e := a.explainProperty(s, k, v, p, depth); e != nil {
				return e
			}
		}
		return nil
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if e := a.explainProperty(s, k, x[k], p, depth); e != nil {
			return e
		}
	}
	return nil
}

func (a *explainer) explainProperty(s *jsonschema.Schema, k string, v any, p []seg, depth int) *ValidationError {
	q := append(p, seg{key: k, idx: -1})
	matched := false
	if sub, ok := s.Properties[k]; ok {
		matched = true
		if e := a.explain(sub, v, q, depth+1); e != nil {
			return e
		}
	}
	for pat, sub := range s.PatternProperties {
		if re := a.propPatterns[pat]; re != nil && re.MatchString(k) {
			matched = true
			if e := a.explain(sub, v, q, depth+1); e != nil {
				return e
			}
		}
	}
	if !matched && s.AdditionalProperties != nil {
		if isFalseSchema(s.AdditionalProperties) {
			return a.fail(q, "is not an accepted property")
		}
		if e := a.explain(s.AdditionalProperties, v, q, depth+1); e != nil {
			return e
		}
	}
	if s.PropertyNames != nil && a.explain(s.PropertyNames, k, q, depth+1) != nil {
		return a.fail(q, "is not an accepted property name")
	}
	if !matched && s.AdditionalProperties == nil && s.UnevaluatedProperties != nil && !a.evaluates(s, k, 0) {
		if isFalseSchema(s.UnevaluatedProperties) {
			return a.fail(q, "is not an accepted property")
		}
		if e := a.explain(s.UnevaluatedProperties, v, q, depth+1); e != nil {
			return e
		}
	}
	return nil
}

// evaluates reports whether s or its in-place subschemas (allOf, anyOf,
// oneOf, $ref, then/else) declare property k: an approximation of
// unevaluatedProperties, used only to explain a failure.
func (a *explainer) evaluates(s *jsonschema.Schema, k string, depth int) bool {
	if s == nil || depth > 16 {
		return false
	}
	if _, ok := s.Properties[k]; ok {
		return true
	}
	for pat := range s.PatternProperties {
		if re := a.propPatterns[pat]; re != nil && re.MatchString(k) {
			return true
		}
	}
	if s.AdditionalProperties != nil && depth > 0 {
		return true
	}
	subs := slices.Concat(s.AllOf, s.AnyOf, s.OneOf, []*jsonschema.Schema{s.Then, s.Else})
	if s.Ref != "" {
		subs = append(subs, a.ref(s.Ref))
	}
	for _, sub := range subs {
		if a.evaluates(sub, k, depth+1) {
			return true
		}
	}
	return false
}

// visitSchemas calls f for s and every schema under it.
func visitSchemas(s *jsonschema.Schema, depth int, f func(*jsonschema.Schema)) {
	if s == nil || depth > 128 {
		return
	}
	f(s)
	for _, m := range []map[string]*jsonschema.Schema{s.Defs, s.Definitions, s.Properties, s.PatternProperties, s.DependentSchemas, s.DependencySchemas} {
		for _, c := range m {
			visitSchemas(c, depth+1, f)
		}
	}
	for _, l := range [][]*jsonschema.Schema{s.PrefixItems, s.ItemsArray, s.AllOf, s.AnyOf, s.OneOf} {
		for _, c := range l {
			visitSchemas(c, depth+1, f)
		}
	}
	for _, c := range []*jsonschema.Schema{s.Items, s.AdditionalItems, s.Contains, s.UnevaluatedItems, s.AdditionalProperties, s.PropertyNames, s.UnevaluatedProperties, s.Not, s.If, s.Then, s.Else, s.ContentSchema} {
		visitSchemas(c, depth+1, f)
	}
}

// ref resolves local references: "#", "#/$defs/name", "#/definitions/name".
func (a *ArgValidator) ref(ref string) *jsonschema.Schema {
	switch {
	case ref == "#":
		return a.root
	case strings.HasPrefix(ref, "#/$defs/"):
		return a.root.Defs[unescapePointer(ref[len("#/$defs/"):])]
	case strings.HasPrefix(ref, "#/definitions/"):
		return a.root.Definitions[unescapePointer(ref[len("#/definitions/"):])]
	}
	return nil
}

func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

func isFalseSchema(s *jsonschema.Schema) bool {
	return s.Not != nil && reflect.DeepEqual(*s.Not, jsonschema.Schema{}) && reflect.DeepEqual(*s, jsonschema.Schema{Not: s.Not})
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	if f, ok := toFloat(v); ok {
		if f == math.Trunc(f) && !math.IsInf(f, 0) {
			return "integer"
		}
		return "number"
	}
	return "unknown"
}

func typeMatches(want, got string) bool {
	return want == got || want == "number" && got == "integer"
}

func article(t string) string {
	switch t {
	case "integer", "array", "object":
		return "an " + t
	case "null":
		return "null"
	}
	return "a " + t
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// jsonEqual compares decoded JSON values, numbers by value.
func jsonEqual(x, y any) bool {
	if fx, ok := toFloat(x); ok {
		fy, ok := toFloat(y)
		return ok && fx == fy
	}
	switch a := x.(type) {
	case []any:
		b, ok := y.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := y.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	}
	return x == y
}

// listValues formats schema values (never argument values) for a message.
func listValues(vs []any) string {
	var parts []string
	for i, v := range vs {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("… (%d more)", len(vs)-10))
			break
		}
		parts = append(parts, shortValue(v))
	}
	return strings.Join(parts, ", ")
}

func shortValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	if len(b) > 64 {
		return string(b[:61]) + "..."
	}
	return string(b)
}
