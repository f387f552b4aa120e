package graph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
	entapproval "github.com/gatehouse-dev/gatehouse/ent/approval"
	"github.com/gatehouse-dev/gatehouse/graph/model"
)

// Approvals is what the admin API needs from the approval service to let
// approvers decide held calls (approveCall, denyCall) and to wake
// approvalChanged pollers.
type Approvals interface {
	// Decide delivers v's decision on approval id to its workflow. Errors
	// wrap ErrUnknownApproval, ErrApprovalClosed or ErrApprovalRefused when
	// those apply.
	Decide(ctx context.Context, id string, v Vote) (*model.ApprovalVerdict, error)
	// Changed returns a channel closed at the next change of any approval
	// this process sees.
	Changed() <-chan struct{}
}

// Vote is one approver's decision.
type Vote struct {
	Approver string   // token:NAME
	Groups   []string // the token's groups and roles
	Team     string   // the token's team, "" for none
	Approve  bool
	Comment  string
}

// Errors an [Approvals] wraps.
var (
	ErrUnknownApproval = errors.New("no such approval")
	ErrApprovalClosed  = errors.New("the approval is no longer pending")
	ErrApprovalRefused = errors.New("decision refused")
)

// approvalRoles may read approvals.
var approvalRoles = []string{"admin", "approver", "auditor"}

// deciderRoles may decide approvals.
var deciderRoles = []string{"approver", "admin"}

// decisionFields are the mutations an approver (not only an admin) may
// run. They run outside a store transaction: the workflow they wake writes
// to the store.
var decisionFields = []string{"approveCall", "denyCall"}

func (r *Resolver) pendingApprovals(ctx context.Context, after *entgql.Cursor[int], first *int, before *entgql.Cursor[int], last *int, orderBy []*ent.ApprovalOrder, where *ent.ApprovalWhereInput) (*ent.ApprovalConnection, error) {
	if len(orderBy) == 0 {
		orderBy = []*ent.ApprovalOrder{{Field: ent.ApprovalOrderFieldCreatedAt, Direction: entgql.OrderDirectionAsc}}
	}
	return r.ent(ctx).Approval.Query().Where(entapproval.StateEQ(entapproval.StatePending)).
		Paginate(ctx, after, first, before, last, ent.WithApprovalOrder(orderBy), ent.WithApprovalFilter(where.Filter))
}

func (r *Resolver) approval(ctx context.Context, id string) (*ent.Approval, error) {
	a, err := r.ent(ctx).Approval.Query().Where(entapproval.ApprovalID(id)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	return a, err
}

// maxChangeWait bounds approvalChanged's wait; pollInterval is how often
// it looks at the store meanwhile, for changes other processes make.
const (
	maxChangeWait = 60 * time.Second
	pollInterval  = time.Second
)

func (r *Resolver) approvalChanged(ctx context.Context, since *time.Time, waitSeconds *int, where *ent.ApprovalWhereInput) (*model.ApprovalChanges, error) {
	from := time.Now().Add(-time.Minute)
	if since != nil {
		from = *since
	}
	wait := 25 * time.Second
	if waitSeconds != nil {
		wait = min(max(time.Duration(*waitSeconds)*time.Second, 0), maxChangeWait)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for {
		var changed <-chan struct{}
		if r.Approvals != nil {
			changed = r.Approvals.Changed() // before the query: no change slips between
		}
		q, err := where.Filter(r.ent(ctx).Approval.Query().Where(entapproval.UpdatedAtGT(from)))
		if err != nil {
			return nil, err
		}
		list, err := q.Order(ent.Asc(entapproval.FieldUpdatedAt), ent.Asc(entapproval.FieldID)).Limit(100).All(ctx)
		if err != nil {
			return nil, err
		}
		if len(list) > 0 {
			return &model.ApprovalChanges{Approvals: list, Cursor: list[len(list)-1].UpdatedAt}, nil
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-deadline.C:
			return &model.ApprovalChanges{Approvals: []*ent.Approval{}, Cursor: from}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// maxDecisionText bounds an approver's comment or reason: it is stored,
// shown to the other approvers and, for a denial, sent to the agent.
const maxDecisionText = 4000

// decide records the caller's decision on approval id.
func (r *Resolver) decide(ctx context.Context, id string, approve bool, comment string) (*model.ApprovalVerdict, error) {
	if err := requireRole(ctx, deciderRoles); err != nil {
		return nil, err
	}
	field := "comment"
	if !approve {
		field = "reason"
		if strings.TrimSpace(comment) == "" {
			return nil, fieldError(ctx, field, codeInvalid, "reason: say why the call is denied: the agent is told")
		}
	}
	if len(comment) > maxDecisionText {
		return nil, fieldError(ctx, field, codeInvalid, "%s: at most %d bytes, got %d", field, maxDecisionText, len(comment))
	}
	if r.Approvals == nil {
		return nil, &gqlerror.Error{Path: graphql.GetPath(ctx),
			Message:    "approval workflows are not running in this process; decide through the gateway's admin API",
			Extensions: map[string]any{"code": codeUnavailable}}
	}
	p := PrincipalFromContext(ctx)
	v := Vote{Approver: p.Actor(), Groups: append(append([]string{}, p.Groups...), p.Roles...), Team: p.Team,
		Approve: approve, Comment: comment}
	if p.TokenID != 0 {
		tok, err := r.client.AdminToken.Get(ctx, p.TokenID)
		if err != nil {
			return nil, fmt.Errorf("reading the admin token: %w", err)
		}
		v.Groups, v.Team = append(append([]string{}, tok.Groups...), tok.Roles...), tok.Team
	}
	out, err := r.Approvals.Decide(ctx, id, v)
	if err == nil {
		return out, nil
	}
	code := ""
	switch {
	case errors.Is(err, ErrUnknownApproval):
		code = codeNotFound
	case errors.Is(err, ErrApprovalClosed):
		code = codeConflict
	case errors.Is(err, ErrApprovalRefused):
		code = codeForbidden
	default:
		return nil, err
	}
	return nil, &gqlerror.Error{Path: graphql.GetPath(ctx), Message: err.Error(), Extensions: map[string]any{"code": code}}
}
