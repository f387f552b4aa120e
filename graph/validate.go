package graph

import (
	"context"
	"errors"
	"regexp"
	"strconv"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/internal/config"
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
