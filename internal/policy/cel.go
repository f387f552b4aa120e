package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Expression kinds accepted by [CheckExpression].
const (
	// ExprWhen is a grant's condition: a bool over principal, claims,
	// tool, args and request.
	ExprWhen = "when"
	// ExprClaim is a claim subject: a bool over claims and principal.
	ExprClaim = "claim"
)

const (
	// MaxExpressionLen is the longest expression accepted, in bytes (the
	// config validator enforces the same limit).
	MaxExpressionLen = 4096
	// CostLimit bounds the work of one evaluation in CEL cost units
	// (roughly one per visited value, plus string lengths for string
	// functions). Arguments are agent-controlled, so a comprehension over a
	// huge list must not stall the gateway; an evaluation that exceeds the
	// limit is an evaluation error (see the package documentation for how
	// errors decide). A check over every element of a 1,000-element list
	// costs about 6,000. cel-go's cost tracking itself grows with the
	// square of the steps taken inside a comprehension, so the limit is
	// kept low: the worst case measured is below 10 ms.
	CostLimit = 10_000
)

// Fields of the map variables, for the unknown-field check at compile time
// and for the package documentation.
var (
	principalFields = []string{"agent", "team", "roles", "labels", "method", "claims"}
	toolFields      = []string{"name", "upstream", "kind", "annotations"}
	requestFields   = []string{"time", "virtual_server", "source_ip"}
)

// envs holds the two CEL environments, built once per process: building
// one costs milliseconds, and both are safe for concurrent use.
var envs = sync.OnceValues(func() (map[string]*cel.Env, error) {
	mapDyn := cel.MapType(cel.StringType, cel.DynType)
	common := []cel.EnvOption{
		cel.Variable("principal", mapDyn),
		cel.Variable("claims", mapDyn),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		// Only extensions whose functions run in time linear in their
		// input: cel-go charges a function's cost after running it, so
		// sets.contains(args.a, args.b) over two 20,000-element lists
		// (seconds) or lists' distinct() would escape CostLimit. ext.Sets
		// and ext.Lists are left out for that reason.
		ext.Strings(),
		ext.Math(),
		ext.Network(),
		ext.Bindings(),
	}
	claim, err := cel.NewEnv(common...)
	if err != nil {
		return nil, err
	}
	when, err := claim.Extend(
		cel.Variable("tool", mapDyn),
		cel.Variable("args", mapDyn),
		cel.Variable("request", mapDyn),
	)
	if err != nil {
		return nil, err
	}
	return map[string]*cel.Env{ExprClaim: claim, ExprWhen: when}, nil
})

// CheckExpression compiles expr as [Compile] does for a grant's when
// (kind [ExprWhen]) or a claim subject (kind [ExprClaim]), so the config
// API can reject a bad expression with its position before storing it.
// The error reads like `1:6: undeclared reference to 'argz'`.
func CheckExpression(kind, expr string) error {
	_, err := compileExpr(kind, expr)
	return err
}

// program is one compiled expression.
type program struct {
	prg cel.Program
	// static is true when the value cannot depend on the call itself: it
	// references neither args nor request (other than
	// request.virtual_server). A list can then be filtered by evaluating it
	// exactly.
	static bool
}

// exprError is a compile error of an expression: CEL's messages with their
// line:column positions.
type exprError struct{ msgs []string }

func (e *exprError) Error() string { return strings.Join(e.msgs, "; ") }

func compileExpr(kind, expr string) (*program, error) {
	all, err := envs()
	if err != nil {
		return nil, fmt.Errorf("building CEL environment: %w", err)
	}
	env, ok := all[kind]
	if !ok {
		return nil, fmt.Errorf("unknown expression kind %q (want %q or %q)", kind, ExprWhen, ExprClaim)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("empty expression")
	}
	if len(expr) > MaxExpressionLen {
		return nil, fmt.Errorf("longer than %d characters", MaxExpressionLen)
	}
	checked, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		e := &exprError{}
		for _, ce := range iss.Errors() {
			// CEL's columns are 0-based; its own messages print them 1-based.
			msg := strings.TrimSuffix(ce.Message, " (in container '')")
			e.msgs = append(e.msgs, fmt.Sprintf("%d:%d: %s", ce.Location.Line(), ce.Location.Column()+1, msg))
		}
		return nil, e
	}
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("must be a bool expression, got %s", t)
	}
	native := checked.NativeRep()
	static, msgs := inspect(native)
	if len(msgs) > 0 {
		return nil, &exprError{msgs: msgs}
	}
	prg, err := env.Program(checked,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(CostLimit),
	)
	if err != nil {
		return nil, fmt.Errorf("building program: %w", err)
	}
	return &program{prg: prg, static: static}, nil
}

// inspect walks a checked expression: it reports whether the expression is
// static (see [program]) and rejects selections of fields that principal,
// tool and request never have ("principal.tem"), which would otherwise fail
// only at run time, and for a deny grant fail closed on every call.
func inspect(a *ast.AST) (static bool, msgs []string) {
	static = true
	known := map[string][]string{"principal": principalFields, "tool": toolFields, "request": requestFields}
	info := a.SourceInfo()
	for _, e := range ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.IdentKind)) {
		name := e.AsIdent()
		if name != "args" && known[name] == nil || shadowed(e, name) {
			continue
		}
		field, fieldID, selected := selectedField(e)
		if name == "args" {
			static = false
			continue
		}
		// request.virtual_server is the only part of request known for
		// certain when a list is filtered: the time and even the address
		// of the later call may differ.
		if name == "request" && !(selected && field == "virtual_server") {
			static = false
		}
		if selected && !slices.Contains(known[name], field) {
			loc := info.GetStartLocation(fieldID)
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s has no field '%s' (fields: %s)",
				loc.Line(), loc.Column()+1, name, field, strings.Join(known[name], ", ")))
		}
	}
	return static, msgs
}

// selectedField returns the field selected from ident e by its parent, as
// in "e.field", "has(e.field)" or "e.?field".
func selectedField(e ast.NavigableExpr) (field string, id int64, ok bool) {
	parent, ok := e.Parent()
	if !ok {
		return "", 0, false
	}
	switch parent.Kind() {
	case ast.SelectKind:
		return parent.AsSelect().FieldName(), parent.ID(), true
	case ast.CallKind:
		c := parent.AsCall()
		if args := c.Args(); c.FunctionName() == operators.OptSelect && len(args) == 2 &&
			args[0].ID() == e.ID() && args[1].Kind() == ast.LiteralKind {
			if s, isStr := args[1].AsLiteral().(types.String); isStr {
				return string(s), parent.ID(), true
			}
		}
	}
	return "", 0, false
}

// shadowed reports whether ident e named name refers to a comprehension
// variable (including cel.bind) rather than to the top-level variable.
func shadowed(e ast.NavigableExpr, name string) bool {
	for p, ok := e.Parent(); ok; p, ok = p.Parent() {
		if p.Kind() != ast.ComprehensionKind {
			continue
		}
		c := p.AsComprehension()
		if c.IterVar() == name || c.AccuVar() == name || c.HasIterVar2() && c.IterVar2() == name {
			return true
		}
	}
	return false
}

// eval runs p and returns its bool result; a non-bool result is an error.
func (p *program) eval(act *activation) (bool, error) {
	out, _, err := p.prg.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// activation resolves the CEL variables of one request lazily: a variable
// is built only when an expression reads it, and then once per request.
// Activations are pooled, so a decision that evaluates no expression
// allocates none of this, and one that does allocates little (see
// [objectVal]).
type activation struct {
	r *Request
	p *identity.Principal

	principal, tool, request, annotations objectVal
	claims, args                          ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

var activations = sync.Pool{New: func() any { return new(activation) }}

// getActivation returns an activation for r by p; r may be nil when only
// principal and claims can be read (claim subjects).
func getActivation(r *Request, p *identity.Principal) *activation {
	a := activations.Get().(*activation)
	a.r, a.p = r, p
	return a
}

func putActivation(a *activation) {
	if a != nil {
		*a = activation{}
		activations.Put(a)
	}
}

// Parent implements [interpreter.Activation].
func (a *activation) Parent() interpreter.Activation { return nil }

var adapter = types.DefaultTypeAdapter

// ResolveName implements [interpreter.Activation].
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "principal":
		a.principal = objectVal{kind: principalObject, a: a}
		return &a.principal, true
	case "claims":
		return a.claimsVal(), true
	}
	if a.r == nil {
		return nil, false
	}
	switch name {
	case "tool":
		a.tool = objectVal{kind: toolObject, a: a}
		return &a.tool, true
	case "request":
		a.request = objectVal{kind: requestObject, a: a}
		return &a.request, true
	case "args":
		if a.args == nil {
			a.args = emptyMapVal
			if a.r.Args != nil {
				a.args = types.NewStringInterfaceMap(adapter, a.r.Args)
			}
		}
		return a.args, true
	}
	return nil, false
}
