package approval

import (
	"context"

	entapproval "github.com/gatehouse-dev/gatehouse/ent/approval"
	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/workflows"
)

// AdminAPI returns s as the admin API's approval service (approveCall,
// denyCall, approvalChanged).
func (s *Service) AdminAPI() graph.Approvals { return adminAPI{s} }

type adminAPI struct{ s *Service }

func (a adminAPI) Decide(ctx context.Context, id string, v graph.Vote) (*model.ApprovalVerdict, error) {
	st, err := a.s.Decide(ctx, id, workflows.Decision{Approver: v.Approver, Groups: v.Groups, Team: v.Team, Approve: v.Approve, Comment: v.Comment})
	if err != nil { // ErrUnknown, ErrClosed and ErrRefused are the admin API's own
		return nil, err
	}
	approvers := st.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	return &model.ApprovalVerdict{ApprovalID: id, State: entapproval.State(st.State), Approvers: approvers, Quorum: st.Quorum}, nil
}

func (a adminAPI) Changed() <-chan struct{} { return a.s.Changed() }
