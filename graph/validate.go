package graph

import (
	"context"
	"errors"
	"regexp"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	_ "github.com/gatehouse-dev/gatehouse/internal/guard" // fills config.DetectorKinds, which validation checks kinds against
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// validateConfig compiles the store into the declarative document (as
// `gatehouse export` writes it: lists sorted by name) and validates it,
// CEL expressions included ([CheckExpression]).
func validateConfig(ctx context.Context, client *ent.Client) (*model.ConfigValidation, error) {
	doc, err := store.ExportDocument(ctx, client)
	if err != nil {
		return nil, err
	}
	res := &model.ConfigValidation{Valid: true, Errors: []*model.ConfigError{}}
	var fields []*config.FieldError
	for _, err := range []error{doc.Validate(), documentCELErrors(doc)} {
		var ve *config.ValidationError
		switch {
		case err == nil:
		case errors.As(err, &ve):
			fields = append(fields, ve.Fields...)
		default:
			return nil, err
		}
	}
	if len(fields) == 0 {
		return res, nil
	}
	res.Valid = false
	for _, f := range fields {
		res.Errors = append(res.Errors, &model.ConfigError{Path: f.Path, Message: f.Reason, Name: entityName(doc, f.Path)})
	}
	return res, nil
}

var topLevelRE = regexp.MustCompile(`^(upstreams|virtual_servers|agents|grants|guardrails|rate_limits|approval_rules|secret_bindings)\[(\d+)\]`)

// entityName names the upstream, virtual server, agent, grant, guardrail,
// rate limit, approval rule or secret binding a document path points into,
// since indexes alone do not identify entities to a client.
func entityName(doc *config.Document, path string) *string {
	m := topLevelRE.FindStringSubmatch(path)
	if m == nil {
		return nil
	}
	i, _ := strconv.Atoi(m[2])
	var name string
	switch {
	case m[1] == "upstreams" && i < len(doc.Upstreams):
		name = doc.Upstreams[i].Name
	case m[1] == "virtual_servers" && i < len(doc.VirtualServers):
		name = doc.VirtualServers[i].Name
	case m[1] == "agents" && i < len(doc.Agents):
		name = doc.Agents[i].Name
	case m[1] == "grants" && i < len(doc.Grants):
		name = doc.Grants[i].Name
	case m[1] == "guardrails" && i < len(doc.Guardrails):
		name = doc.Guardrails[i].Name
	case m[1] == "rate_limits" && i < len(doc.RateLimits):
		name = doc.RateLimits[i].Name
	case m[1] == "approval_rules" && i < len(doc.ApprovalRules):
		name = doc.ApprovalRules[i].Name
	case m[1] == "secret_bindings" && i < len(doc.SecretBindings):
		name = doc.SecretBindings[i].Name
	default:
		return nil
	}
	return &name
}

// configGuard refuses a mutation that makes the stored configuration
// invalid (an upstream URL without a scheme, a stdio upstream without a
// command, an unknown guardrail kind): checks that span entities, or that
// the store's schema does not express, run on the whole document that the
// mutation's transaction would commit, as the gateway will compile it.
// Committed, such a row would be refused by the gateway (which keeps the
// running configuration, so every later change, revocations included,
// would not take effect) and would stop the next start. Only problems the
// mutation adds are refused: a store that is invalid already can still be
// repaired one mutation at a time.
//
// It runs inside [transactioner]: an error here rolls the
// transaction back.
type configGuard struct {
	client *ent.Client
	// gateway, when the API runs in the gateway, also compiles the
	// configuration against what the upstreams serve now
	// ([Gateway.CheckConfig]), as a reload of the file does.
	gateway Gateway
}

func (configGuard) ExtensionName() string                   { return "ConfigGuard" }
func (configGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g configGuard) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	op := graphql.GetOperationContext(ctx).Operation
	rsp := next(ctx)
	tx := ent.FromContext(ctx)
	if op == nil || op.Operation != ast.Mutation || rsp == nil || len(rsp.Errors) > 0 || tx == nil || tx == g.client {
		return rsp
	}
	errs, err := g.refusals(ctx, tx)
	if err != nil {
		return graphql.ErrorResponse(ctx, "checking the configuration this change would make: %v", err)
	}
	if len(errs) > 0 {
		return &graphql.Response{Errors: errs}
	}
	return rsp
}

// refusals are the errors of the configuration as tx sees it that the
// committed store does not have (addedConfigErrors), or else why the
// running gateway would not apply it (runningGatewayRefuses): what a
// mutation making tx's changes is refused for. A dry run of apply asks
// too, so that its plan says what the real apply would be refused for.
func (g configGuard) refusals(ctx context.Context, tx *ent.Client) (gqlerror.List, error) {
	added, err := addedConfigErrors(ctx, g.client, tx)
	if err != nil {
		return nil, err
	}
	if len(added) == 0 {
		msg, err := g.runningGatewayRefuses(ctx, tx)
		if err != nil || msg == "" {
			return nil, err
		}
		return gqlerror.List{{
			Message:    "the change would not apply on the running gateway, so nothing was changed: " + msg,
			Extensions: map[string]any{"code": codeInvalid},
		}}, nil
	}
	var errs gqlerror.List
	for _, ce := range added {
		e := &gqlerror.Error{
			Message:    "the change would make the configuration invalid, so nothing was changed: " + ce.Path + ": " + ce.Message,
			Extensions: map[string]any{"code": codeInvalid, "configPath": ce.Path},
		}
		if ce.Name != nil {
			e.Extensions["name"] = *ce.Name
		}
		errs = append(errs, e)
	}
	return errs, nil
}

// runningGatewayRefuses compiles the configuration as tx sees it on the
// running gateway, against what its upstreams serve now, and returns why
// it would not apply, if that is new: a store the gateway already
// refuses (a collision an upstream brought) can still be repaired one
// mutation at a time. Committed, such a change would stay stored but not
// in force, and every later change (a revocation too) with it.
func (g configGuard) runningGatewayRefuses(ctx context.Context, tx *ent.Client) (string, error) {
	if g.gateway == nil {
		return "", nil
	}
	after, err := store.ExportDocument(ctx, tx)
	if err != nil {
		return "", err
	}
	afterErr := g.gateway.CheckConfig(ctx, after)
	if afterErr == nil {
		return "", nil
	}
	before, err := store.ExportDocument(ctx, g.client)
	if err != nil {
		return "", err
	}
	if beforeErr := g.gateway.CheckConfig(ctx, before); beforeErr != nil && beforeErr.Error() == afterErr.Error() {
		return "", nil
	}
	return afterErr.Error(), nil
}

// addedConfigErrors returns the configuration errors of the store as tx
// sees it that the committed store (client) does not have. Errors are
// compared by entity name, path without list indexes, and message, since
// indexes move as entities are added.
func addedConfigErrors(ctx context.Context, client, tx *ent.Client) ([]*model.ConfigError, error) {
	after, err := validateConfig(ctx, tx)
	if err != nil || after.Valid {
		return nil, err
	}
	before, err := validateConfig(ctx, client)
	if err != nil {
		return nil, err
	}
	key := func(ce *model.ConfigError) string {
		name := ""
		if ce.Name != nil {
			name = *ce.Name
		}
		return name + "\x00" + indexRE.ReplaceAllString(ce.Path, "[]") + "\x00" + ce.Message
	}
	had := map[string]bool{}
	for _, ce := range before.Errors {
		had[key(ce)] = true
	}
	var added []*model.ConfigError
	for _, ce := range after.Errors {
		if !had[key(ce)] && !constructionStep(ce) {
			added = append(added, ce)
		}
	}
	return added, nil
}

// constructionStep reports whether ce is a state that building a
// configuration through the API passes through: a virtual server is
// created before the selections that give it upstreams (each selection
// names its virtual server).
func constructionStep(ce *model.ConfigError) bool {
	return virtualServerIncludeRE.MatchString(ce.Path) && ce.Message == "select at least one upstream"
}

var virtualServerIncludeRE = regexp.MustCompile(`^virtual_servers\[\d+\]\.include$`)

var indexRE = regexp.MustCompile(`\[\d+\]`)
