package graph

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/graph/generated"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Defaults of [HandlerOptions].
const (
	// DefaultComplexityLimit lets a page of DefaultMaxPage nodes with
	// about 20 fields each through, and stops nested connections from
	// multiplying (1,000 upstreams × 1,000 tools each).
	DefaultComplexityLimit = 25000
	DefaultDepthLimit      = 15
	DefaultMaxPage         = 1000
	DefaultMaxBodyBytes    = 1 << 20
	DefaultTokenLimit      = 5000
)

// HandlerOptions configures [NewHandler]. A nil *HandlerOptions means all
// defaults.
type HandlerOptions struct {
	// Gateway is the running data path, for operations that need it. Nil
	// means they answer UNAVAILABLE.
	Gateway Gateway
	// Approvals is the approval service, for approveCall and denyCall. Nil
	// means they answer UNAVAILABLE.
	Approvals Approvals
	// Audit is the audit trail's read side, for auditEvents, auditStats,
	// auditVerify and [NewAuditHandler]; usually an *[audit.API]. Nil
	// (also a nil *audit.API) means the audit trail is off: they answer
	// UNAVAILABLE (HTTP 503) with [ErrAuditOff].
	Audit AuditAPI
	// Authenticate, when set, signs in bearer tokens that are not admin
	// tokens (OIDC JWTs): it returns the principal, nil when the token is
	// not for it (then it is checked as an admin token), or an error that
	// answers 401 (safe to show: it never contains the token).
	Authenticate func(r *http.Request) (*Principal, error)
	// DisableIntrospection turns off __schema and __type queries. The zero
	// value leaves introspection on.
	DisableIntrospection bool
	// DisablePlayground answers browser GET requests with 405 instead of the
	// built-in query page. The zero value serves the page.
	DisablePlayground bool
	// ComplexityLimit bounds the complexity of one operation: one per
	// field, a connection's selections counted once per node it may return
	// (first or last, else 10). Zero
	// means [DefaultComplexityLimit]; negative means no limit.
	ComplexityLimit int
	// DepthLimit bounds how deeply selections nest (introspection fields
	// not counted). Zero means [DefaultDepthLimit]; negative means no limit.
	DepthLimit int
	// MaxPage bounds the nodes one page of a connection returns: a
	// connection queried without first or last returns its first MaxPage
	// (pageInfo.hasNextPage says whether more follow), and first or last
	// above it is an error. The complexity limit still counts such a
	// connection as 10 nodes, so that a query for a whole short list
	// passes. Zero means [DefaultMaxPage]; negative means no limit.
	MaxPage int
	// MaxBodyBytes bounds a request body. Zero means [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// TokenLimit bounds the lexical tokens of one query document, before it
	// is validated: validation's overlapping-fields check takes time
	// quadratic in the fields of a selection set (4,000 copies of one field
	// took 1.8 s, 200,000 ran for minutes), which the depth and complexity
	// limits do not bound since they apply after it. The largest queries
	// clients send (GraphiQL's introspection, the console's) are under 700
	// tokens; variables do not count. Zero means [DefaultTokenLimit];
	// negative means no limit.
	TokenLimit int
	// Logger receives authentication failures. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock used for token expiry. Nil means time.Now.
	Now func() time.Time
}

func (o *HandlerOptions) withDefaults() HandlerOptions {
	var r HandlerOptions
	if o != nil {
		r = *o
	}
	if r.ComplexityLimit == 0 {
		r.ComplexityLimit = DefaultComplexityLimit
	}
	if r.DepthLimit == 0 {
		r.DepthLimit = DefaultDepthLimit
	}
	if r.MaxBodyBytes == 0 {
		r.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if r.MaxPage == 0 {
		r.MaxPage = DefaultMaxPage
	}
	if r.TokenLimit == 0 {
		r.TokenLimit = DefaultTokenLimit
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if a, ok := r.Audit.(*audit.API); ok && a == nil {
		r.Audit = nil
	}
	return r
}

// Principal is the admin behind a request: the admin token it authenticated
// with. Writes it makes are recorded as [Principal.Actor].
type Principal struct {
	// TokenID is the admin token's ID; 0 for a principal signed in
	// otherwise ([HandlerOptions].Authenticate, e.g. OIDC).
	TokenID int
	// Name is the token's name, or for other principals their full
	// identity (e.g. oidc:corp:alice).
	Name  string
	Roles []string
	// Groups and Team are the approver groups and own team of a principal
	// without a token (a token's are read from the store when needed).
	Groups []string
	Team   string
}

// HasRole reports whether p carries role.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// Actor is how p's writes (and decisions) appear: "token:NAME" for an
// admin token, the full name (oidc:PROVIDER:SUBJECT) otherwise.
func (p *Principal) Actor() string {
	if p.TokenID == 0 {
		return p.Name
	}
	return "token:" + p.Name
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, as the admin of the writes made
// with it.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	ctx = context.WithValue(ctx, principalKey{}, p)
	return actor.NewContext(ctx, p.Actor())
}

// PrincipalFromContext returns the admin principal in ctx, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

//go:embed playground.html
var playgroundPage []byte

// NewHandler returns the admin API over client as an HTTP handler, to mount
// at any path (e.g. /admin/graphql):
//
//   - POST: a GraphQL request (JSON body). It needs "Authorization: Bearer
//     <admin token>": without a valid one, 401. Mutations need the admin
//     role, reading the configuration the admin, viewer or auditor role, the
//     change log and the audit trail the admin or auditor role (a FORBIDDEN
//     error otherwise; see roles.go). A mutation operation runs in one
//     transaction; every operation is bounded in depth and complexity.
//   - GET from a browser (Accept: text/html): a small self-contained query
//     page that posts to the same URL. It loads nothing from elsewhere.
//
// Store the first admin token with [store.CreateAdminToken]. The auditors'
// SQL and export endpoints are a handler of their own: [NewAuditHandler].
func NewHandler(client *ent.Client, opts *HandlerOptions) http.Handler {
	o := opts.withDefaults()
	res := NewResolver(client, o.Gateway)
	res.Approvals = o.Approvals
	res.Audit = o.Audit
	cfg := generated.Config{Resolvers: res}
	weighConnections(&cfg.Complexity)
	srv := handler.New(generated.NewExecutableSchema(cfg))
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](256))
	if o.TokenLimit > 0 {
		srv.SetParserTokenLimit(o.TokenLimit)
	}
	if !o.DisableIntrospection {
		srv.Use(extension.Introspection{})
	}
	if o.ComplexityLimit > 0 {
		srv.Use(extension.FixedComplexityLimit(o.ComplexityLimit))
	}
	if o.DepthLimit > 0 {
		srv.Use(depthLimit{max: o.DepthLimit})
	}
	srv.AroundOperations(requireAdminForMutations)
	srv.AroundRootFields(checkRootField)
	// discoverTools alone runs outside the operation's transaction, so that
	// asking the upstream does not hold the store's write lock (SQLite);
	// it writes in a transaction of its own.
	srv.Use(transactioner{entgql.Transactioner{TxOpener: client, SkipTxFunc: onlyFields(append([]string{"discoverTools"}, decisionFields...)...)}})
	srv.Use(configGuard{client: client, gateway: o.Gateway})
	if o.MaxPage > 0 {
		srv.AroundFields(boundPages(o.MaxPage))
	}
	srv.AroundFields(func(ctx context.Context, next graphql.Resolver) (any, error) {
		res, err := next(ctx)
		return res, expandFieldErrors(err)
	})
	srv.SetErrorPresenter(presentError)
	return &adminHandler{authenticator: authenticator{client: client, opts: o}, gql: srv}
}

type adminHandler struct {
	authenticator
	gql http.Handler
}

func (h *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		if !h.opts.DisablePlayground && strings.Contains(r.Header.Get("Accept"), "text/html") {
			servePlayground(w, r)
			return
		}
		fallthrough
	default:
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "send GraphQL requests with POST")
		return
	}
	p := h.principal(w, r)
	if p == nil {
		return
	}
	// The body is checked here: gqlgen answers a malformed one with
	// "internal system error" (and writes its status twice).
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "BAD_REQUEST", fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "reading the request body: "+err.Error())
		return
	case !json.Valid(body):
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", `the request body is not JSON: send {"query": "...", "variables": {...}}`)
		return
	case bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")):
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "batched requests (a JSON array) are not supported: send one operation per request")
		return
	}
	if msg := requestShape(body); msg != "" {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", msg)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "BAD_REQUEST", "send the request as Content-Type: application/json")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.gql.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
}

// requestShape checks that body, valid JSON, is a GraphQL request:
// {"query": string, "operationName": string or null, "variables": object
// or null, "extensions": object or null}. gqlgen answers other shapes with
// "internal system error". It returns what is wrong, or "".
func requestShape(body []byte) string {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return `the request body is not a JSON object: send {"query": "...", "variables": {...}}`
	}
	kind := func(raw json.RawMessage) byte {
		if raw = bytes.TrimSpace(raw); len(raw) == 0 {
			return 0
		}
		return raw[0]
	}
	if k := kind(req["query"]); k != '"' {
		return `"query" must be a string holding the GraphQL document`
	}
	if k := kind(req["operationName"]); k != 0 && k != 'n' && k != '"' {
		return `"operationName" must be a string or null`
	}
	for _, f := range []string{"variables", "extensions"} {
		if k := kind(req[f]); k != 0 && k != 'n' && k != '{' {
			return fmt.Sprintf("%q must be a JSON object or null", f)
		}
	}
	return ""
}

// authenticator signs in the admins of the admin API and of the audit
// endpoints: admin tokens, and the principals opts.Authenticate accepts.
type authenticator struct {
	client *ent.Client
	opts   HandlerOptions
}

// principal returns the admin behind r, or nil after answering 401 (503
// STORE_UNAVAILABLE when the store does not answer, 500 when it fails
// otherwise).
func (h *authenticator) principal(w http.ResponseWriter, r *http.Request) *Principal {
	token, ok := identity.BearerToken(r)
	if !ok {
		h.unauthorized(w, r, "no bearer token")
		return nil
	}
	if h.opts.Authenticate != nil && !strings.HasPrefix(token, store.AdminTokenPrefix) {
		p, err := h.opts.Authenticate(r)
		if err != nil {
			h.unauthorized(w, r, err.Error())
			return nil
		}
		if p != nil {
			return p
		}
	}
	t, err := store.AuthenticateAdminToken(r.Context(), h.client, token, h.opts.Now())
	if err != nil {
		if storeFailure(err) {
			// The token cannot be checked: the store is down, not the token
			// bad. The error names no token.
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, codeStore, "the configuration store failed, so the admin token cannot be checked; retry once it is back: "+err.Error())
			return nil
		}
		if !errors.Is(err, store.ErrInvalidAdminToken) {
			h.opts.Logger.Error("admin authentication failed", "error", err)
			writeError(w, http.StatusInternalServerError, "INTERNAL", "authentication failed; see the gateway log")
			return nil
		}
		h.unauthorized(w, r, err.Error())
		return nil
	}
	return &Principal{TokenID: t.ID, Name: t.Name, Roles: t.Roles}
}

func (h *authenticator) unauthorized(w http.ResponseWriter, r *http.Request, reason string) {
	// The token itself is never logged.
	h.opts.Logger.Warn("admin API request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", reason)
	w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
	writeError(w, http.StatusUnauthorized, codeUnauthenticated, "send an admin token: Authorization: Bearer <token>")
}

// writeError writes a GraphQL-shaped error response.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []any{map[string]any{"message": msg, "extensions": map[string]any{"code": code}}},
	})
}

func servePlayground(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page may run its own inline script and talk to this origin only.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(playgroundPage)
}

// requireAdminForMutations lets only tokens with the admin role change the
// configuration. (Reads are checked field by field: [checkRootField].)
func requireAdminForMutations(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Mutation {
		return next(ctx)
	}
	if onlyFields(decisionFields...)(oc.Operation) {
		return next(ctx) // approvers decide; the resolvers check the role
	}
	if p := PrincipalFromContext(ctx); p == nil || !p.HasRole("admin") {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
			Message:    "mutations need an admin token with the admin role",
			Extensions: map[string]any{"code": codeForbidden},
		}}})
	}
	return next(ctx)
}

// onlyFields matches operations whose root fields are all among names.
func onlyFields(names ...string) entgql.SkipTxFunc {
	return func(op *ast.OperationDefinition) bool {
		for _, s := range op.SelectionSet {
			f, ok := s.(*ast.Field)
			if !ok || (!slices.Contains(names, f.Name) && f.Name != "__typename") {
				return false
			}
		}
		return len(op.SelectionSet) > 0
	}
}

// depthLimit refuses operations whose selections nest deeper than max.
// Introspection fields (__schema, __type) are not counted: clients' standard
// introspection query is deep by construction.
type depthLimit struct{ max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = depthLimit{}

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	if depth := selectionDepth(oc.Operation.SelectionSet, 0); depth > d.max {
		return &gqlerror.Error{
			Message:    "operation nests " + strconv.Itoa(depth) + " levels deep; the limit is " + strconv.Itoa(d.max),
			Extensions: map[string]any{"code": codeLimit},
		}
	}
	return nil
}

// selectionDepth returns how deeply set nests fields. Fragment cycles are
// rejected by validation before this runs; level bounds the recursion anyway.
func selectionDepth(set ast.SelectionSet, level int) int {
	if level > 100 {
		return level
	}
	max := 0
	for _, s := range set {
		var d int
		switch s := s.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			d = 1 + selectionDepth(s.SelectionSet, level+1)
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, level+1)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				d = selectionDepth(s.Definition.SelectionSet, level+1)
			}
		}
		if d > max {
			max = d
		}
	}
	return max
}
