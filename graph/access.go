package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/agent"
	"github.com/gatehouse-dev/gatehouse/ent/grant"
	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// celErrors checks expressions with [CheckExpression]: each of checks is an
// input field ("input.when"), a kind ("when" or "claim") and an expression
// ("" is skipped). Every bad one becomes an INVALID error on its field.
func celErrors(ctx context.Context, checks ...[3]string) error {
	check := CheckExpression
	if check == nil {
		return nil
	}
	var list gqlerror.List
	for _, c := range checks {
		field, kind, expr := c[0], c[1], c[2]
		if expr == "" {
			continue
		}
		if err := check(kind, expr); err != nil {
			list = append(list, fieldError(ctx, field, codeInvalid, "%s: %v", field[len("input."):], err))
		}
	}
	if len(list) == 0 {
		return nil
	}
	return list
}

// createGrant creates a grant after checking its CEL; an unnamed one is
// named by [store.GrantName], as applyConfig names unnamed grants.
func (r *Resolver) createGrant(ctx context.Context, input ent.CreateGrantInput) (*ent.Grant, error) {
	claim := ""
	if input.SubjectKind == grant.SubjectKindClaim {
		claim = input.Subject
	}
	if err := celErrors(ctx, [3]string{"input.when", "when", deref(input.When)}, [3]string{"input.subject", "claim", claim}); err != nil {
		return nil, err
	}
	c := r.ent(ctx)
	create := c.Grant.Create().SetInput(input)
	if input.Name == nil {
		g := config.Grant{
			Subject: store.SubjectOf(input.SubjectKind.String(), input.Subject),
			Target:  config.Target{Tools: input.Tools, Resources: input.Resources, Prompts: input.Prompts},
			Effect:  grant.DefaultEffect.String(),
			When:    deref(input.When),
		}
		if input.Effect != nil {
			g.Effect = input.Effect.String()
		}
		// Unknown IDs are left for the create to report.
		if vs, err := c.VirtualServer.Get(ctx, input.VirtualServerID); err == nil {
			g.Target.VirtualServer = vs.Name
		}
		if input.ApprovalRuleID != nil {
			if rule, err := c.ApprovalRule.Get(ctx, *input.ApprovalRuleID); err == nil {
				g.Approval = rule.Name
			}
		}
		create.SetName(store.GrantName(g))
	}
	return create.Save(ctx)
}

// updateGrant updates a grant after checking the CEL the update writes.
func (r *Resolver) updateGrant(ctx context.Context, id int, input ent.UpdateGrantInput) (*ent.Grant, error) {
	c := r.ent(ctx)
	if input.SubjectKind != nil || input.Subject != nil || input.When != nil {
		old, err := c.Grant.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		kind, subject := old.SubjectKind, old.Subject
		if input.SubjectKind != nil {
			kind = *input.SubjectKind
		}
		if input.Subject != nil {
			subject = *input.Subject
		}
		claim := ""
		if kind == grant.SubjectKindClaim && (input.SubjectKind != nil || input.Subject != nil) {
			claim = subject
		}
		when := ""
		if !input.ClearWhen {
			when = deref(input.When)
		}
		if err := celErrors(ctx, [3]string{"input.when", "when", when}, [3]string{"input.subject", "claim", claim}); err != nil {
			return nil, err
		}
	}
	return c.Grant.UpdateOneID(id).SetInput(input).Save(ctx)
}

// createRateLimit creates a rate limit after checking a claim subject.
func (r *Resolver) createRateLimit(ctx context.Context, input ent.CreateRateLimitInput) (*ent.RateLimit, error) {
	if input.SubjectKind != nil && input.SubjectKind.String() == "claim" {
		if err := celErrors(ctx, [3]string{"input.subject", "claim", deref(input.Subject)}); err != nil {
			return nil, err
		}
	}
	return r.ent(ctx).RateLimit.Create().SetInput(input).Save(ctx)
}

// updateRateLimit updates a rate limit after checking a claim subject it
// writes.
func (r *Resolver) updateRateLimit(ctx context.Context, id int, input ent.UpdateRateLimitInput) (*ent.RateLimit, error) {
	c := r.ent(ctx)
	if input.SubjectKind != nil || input.Subject != nil {
		old, err := c.RateLimit.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		kind, subject := old.SubjectKind.String(), old.Subject
		if input.SubjectKind != nil {
			kind = input.SubjectKind.String()
		}
		if input.Subject != nil {
			subject = *input.Subject
		}
		if kind == "claim" && !input.ClearSubject && !input.ClearSubjectKind {
			if err := celErrors(ctx, [3]string{"input.subject", "claim", subject}); err != nil {
				return nil, err
			}
		}
	}
	return c.RateLimit.UpdateOneID(id).SetInput(input).Save(ctx)
}

// createApprovalRule creates an approval rule after checking its when.
func (r *Resolver) createApprovalRule(ctx context.Context, input ent.CreateApprovalRuleInput) (*ent.ApprovalRule, error) {
	if err := celErrors(ctx, [3]string{"input.when", "when", deref(input.When)}); err != nil {
		return nil, err
	}
	return r.ent(ctx).ApprovalRule.Create().SetInput(input).Save(ctx)
}

// updateApprovalRule updates an approval rule after checking the when the
// update writes.
func (r *Resolver) updateApprovalRule(ctx context.Context, id int, input ent.UpdateApprovalRuleInput) (*ent.ApprovalRule, error) {
	if !input.ClearWhen {
		if err := celErrors(ctx, [3]string{"input.when", "when", deref(input.When)}); err != nil {
			return nil, err
		}
	}
	return r.ent(ctx).ApprovalRule.UpdateOneID(id).SetInput(input).Save(ctx)
}

// documentCELErrors checks the CEL of a document's grants, rate limits and
// approval rules, reporting each bad expression at its path
// (grants[2].when, approval_rules[0].when).
func documentCELErrors(doc *config.Document) error {
	if CheckExpression == nil {
		return nil
	}
	return doc.CheckExpressions(CheckExpression)
}

// approveToolDefinition approves tool's current definition if its hash is
// still hash.
func (r *Resolver) approveToolDefinition(ctx context.Context, id int, hash string) (*ent.Tool, error) {
	by := ""
	if p := PrincipalFromContext(ctx); p != nil {
		by = p.Actor()
	}
	t, err := store.ApproveToolDefinition(ctx, r.ent(ctx), id, hash, by, time.Now())
	switch {
	case errors.Is(err, store.ErrDefinitionChanged):
		return nil, fieldError(ctx, "hash", codeConflict, "%v", store.ErrDefinitionChanged)
	case ent.IsNotFound(err):
		return nil, fieldError(ctx, "tool", codeNotFound, "no tool with this ID")
	}
	return t, err
}

// gatewaySettings reads the settings, with their defaults while none are
// stored.
func gatewaySettings(ctx context.Context, c *ent.Client) (*model.GatewaySettings, error) {
	s, err := store.LoadSettings(ctx, c)
	if err != nil {
		return nil, err
	}
	out := &model.GatewaySettings{PinningMode: model.PinningMode(config.PinningAuto)}
	if s != nil {
		out.PinningMode = model.PinningMode(s.PinningMode.String())
		out.UpdatedAt, out.UpdatedBy = &s.UpdatedAt, &s.UpdatedBy
	}
	return out, nil
}

// updateSettings changes the settings given.
func updateSettings(ctx context.Context, c *ent.Client, pinningMode *model.PinningMode) (*model.GatewaySettings, error) {
	if pinningMode != nil {
		if _, err := store.SetPinningMode(ctx, c, string(*pinningMode)); err != nil {
			return nil, err
		}
	}
	return gatewaySettings(ctx, c)
}

// explainDecision asks the running gateway how it would decide a call.
func (r *Resolver) explainDecision(ctx context.Context, agentName, vs, tool string, arguments json.RawMessage) (*model.Explanation, error) {
	if r.Gateway == nil {
		return nil, ErrGatewayUnavailable
	}
	if err := r.agentExists(ctx, agentName); err != nil {
		return nil, err
	}
	var args map[string]any
	if len(arguments) > 0 && string(arguments) != "null" {
		if err := json.Unmarshal(arguments, &args); err != nil || args == nil {
			return nil, fieldError(ctx, "arguments", codeInvalid, "arguments: want a JSON object (the tool's arguments) or null")
		}
	}
	e, err := r.Gateway.Explain(ctx, agentName, vs, tool, args)
	if err != nil {
		return nil, explainError(ctx, agentName, vs, tool, err)
	}
	out := &model.Explanation{
		Effect:     e.Effect,
		Reason:     e.Reason,
		Grants:     make([]*model.ExplainedGrant, len(e.Grants)),
		Guardrails: make([]*model.ExplainedFinding, len(e.Guardrails)),
		Visible:    e.Visible,
	}
	for i, g := range e.Grants {
		out.Grants[i] = &model.ExplainedGrant{Grant: g.Grant, Effect: g.Effect, Reason: g.Reason}
	}
	for i, f := range e.Guardrails {
		out.Guardrails[i] = &model.ExplainedFinding{Rule: f.Rule, Detector: f.Detector, Kind: f.Kind, Path: f.Path, Action: f.Action}
	}
	if e.RateLimit != "" {
		out.RateLimit = &e.RateLimit
	}
	return out, nil
}

// agentExists answers NOT_FOUND on the argument agent when the store has no
// agent of that name.
func (r *Resolver) agentExists(ctx context.Context, name string) error {
	ok, err := r.ent(ctx).Agent.Query().Where(agent.Name(name)).Exist(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fieldError(ctx, "agent", codeNotFound, "no agent named %q", name)
	}
	return nil
}

// explainError maps what [Gateway.Explain] reports to the argument at fault.
func explainError(ctx context.Context, agentName, vs, tool string, err error) error {
	switch {
	case errors.Is(err, ErrUnknownVirtualServer):
		return fieldError(ctx, "virtualServer", codeNotFound, "the running gateway does not serve virtual server %q", vs)
	case errors.Is(err, ErrUnknownTool):
		return fieldError(ctx, "tool", codeNotFound, "virtual server %q exposes no tool named %q", vs, tool)
	case errors.Is(err, ErrUnknownAgent):
		return fieldError(ctx, "agent", codeNotFound, "the running gateway does not know agent %q yet (has the change been applied?)", agentName)
	}
	return gatewayError(ctx, fmt.Sprintf("explain a call of %q on virtual server %q", tool, vs), err)
}

// gatewayError reports a failure of the running gateway to answer.
func gatewayError(ctx context.Context, doing string, err error) error {
	return &gqlerror.Error{
		Path:       graphql.GetPath(ctx),
		Message:    fmt.Sprintf("%s: %v", doing, err),
		Extensions: map[string]any{"code": codeUnavailable},
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
