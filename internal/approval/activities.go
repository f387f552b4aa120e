package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/ent"
	entapproval "github.com/gatehouse-dev/gatehouse/ent/approval"
	"github.com/gatehouse-dev/gatehouse/ent/webhook"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/workflows"
)

// Activities returns the workflow's activities backed by s: the upstream
// call through s's gateway (exactly once per approval, remembered in the
// store), its output guardrails, audit into the store and the log, and
// webhook notifications of the approver groups. Register them with a
// worker on [Service.TaskQueue].
func (s *Service) Activities() *workflows.Activities {
	return &workflows.Activities{
		Secrets:  secretCheck{s},
		Executor: executor{s},
		Output:   output{s},
		Auditor:  auditor{s},
		Notifier: &workflows.WebhookNotifier{Lookup: s.webhooks},
	}
}

// recorded is one accepted decision as the Approval record keeps it.
type recorded struct {
	Approver string    `json:"approver"`
	Approve  bool      `json:"approve"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// secretCheck is the workflow's secrets step, after approval and before
// the upstream call: it checks that the secrets the call needs can be had
// (Vault configured and answering), so a Vault outage delays the approved
// call (the step retries) instead of failing it. The values themselves are
// fetched by the upstream call, in this process, and never enter the
// workflow's history.
type secretCheck struct{ s *Service }

func (c secretCheck) FetchSecrets(ctx context.Context, req workflows.ToolCallRequest) error {
	a, err := c.s.lookup(ctx, req.ApprovalID)
	if err != nil {
		return nil // the upstream step reports a missing record
	}
	return c.s.o.Gateway.SecretsReady(ctx, a.Upstream, a.UpstreamTool)
}

type executor struct{ s *Service }

// Call runs the approved call once: it claims the record (setting
// executed_at) before calling, so that a retry, a second worker or a
// restarted gateway never calls the upstream again. It then returns the
// stored result, or, when the previous attempt died before storing one,
// an error saying the outcome is unknown.
func (e executor) Call(ctx context.Context, key string, req workflows.ToolCallRequest) (json.RawMessage, error) {
	bg := context.WithoutCancel(ctx)
	a, err := e.s.lookup(ctx, key)
	if ent.IsNotFound(err) {
		return nil, &workflows.UpstreamError{Err: fmt.Errorf("approval %s has no record in the store; nothing to execute", key)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading approval %s: %w", key, err)
	}
	claimed, err := e.s.updateApproval(key).Where(entapproval.ExecutedAtIsNil()).
		SetExecutedAt(e.s.o.Now()).SetState(entapproval.StateExecuting).
		Save(bg)
	if err != nil {
		return nil, fmt.Errorf("claiming approval %s: %w", key, err)
	}
	if claimed == 0 {
		return e.previous(ctx, key)
	}
	e.s.changes.notify(key)
	var args map[string]any
	if len(a.CallArguments) > 0 {
		if err := json.Unmarshal(a.CallArguments, &args); err != nil {
			return nil, e.fail(bg, key, fmt.Errorf("stored arguments unreadable: %v", err))
		}
	}
	if h := proxy.ArgsHash(args); h != a.ArgsHash || (req.ArgsHash != "" && h != req.ArgsHash) {
		return nil, e.fail(bg, key, errors.New("the stored arguments are not the approved ones; refusing to run them"))
	}
	res, err := e.s.o.Gateway.ExecuteApproved(ctx, &proxy.HeldCall{
		Principal: &identity.Principal{Agent: a.Agent, Team: a.Team},
		VS:        a.VirtualServer, Tool: a.Tool, Upstream: a.Upstream, UpstreamTool: a.UpstreamTool,
		Arguments: a.CallArguments, ArgsHash: a.ArgsHash,
	})
	if proxy.IsSecretUnavailable(err) {
		// Nothing reached the upstream: release the claim so that the
		// step's retry (Vault may be back by then) runs the call.
		if uerr := e.s.updateApproval(key).ClearExecutedAt().SetState(entapproval.StateApproved).Exec(bg); uerr != nil {
			return nil, e.fail(bg, key, err)
		}
		e.s.log.Warn("approved call waits for its secret", "approval", key, "error", err)
		return nil, err
	}
	if err != nil {
		return nil, e.fail(bg, key, err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, e.fail(bg, key, fmt.Errorf("encoding the result: %v", err))
	}
	if err := e.s.updateApproval(key).SetResult(b).Exec(bg); err != nil {
		// The upstream answered: return its result anyway; a retry of
		// this activity would find no result and report an unknown outcome.
		e.s.log.Error("storing the result of an approved call failed", "approval", key, "error", err)
	}
	e.s.log.Info("approved call executed", "approval", key, "agent", a.Agent, "vs", a.VirtualServer, "tool", a.Tool,
		"upstream", a.Upstream, "tool_error", res.IsError)
	return b, nil
}

// previous returns the outcome of the call an earlier attempt made.
func (e executor) previous(ctx context.Context, key string) (json.RawMessage, error) {
	a, err := e.s.lookup(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading approval %s: %w", key, err)
	}
	if len(a.Result) > 0 {
		return a.Result, nil
	}
	reason := a.Reason
	if reason == "" {
		reason = "the gateway stopped while the approved call was in flight; whether the upstream acted is unknown, so the call is not sent again"
	}
	return nil, &workflows.UpstreamError{Err: errors.New(reason)}
}

// fail records that the approved call failed, as the reason the agent and
// approvers see, and returns it as an [*workflows.UpstreamError]: the
// upstream may have acted, so it is not retried.
func (e executor) fail(ctx context.Context, key string, err error) error {
	if uerr := e.s.updateApproval(key).SetReason(err.Error()).Exec(ctx); uerr != nil {
		e.s.log.Error("recording a failed approved call", "approval", key, "error", uerr)
	}
	return &workflows.UpstreamError{Err: err}
}

type output struct{ s *Service }

// CheckOutput applies the gateway's response guardrails to the executed
// call's result and stores what the agent may see.
func (o output) CheckOutput(ctx context.Context, req workflows.ToolCallRequest, result json.RawMessage) (workflows.OutputVerdict, error) {
	var res mcp.CallToolResult
	if err := json.Unmarshal(result, &res); err != nil {
		return workflows.OutputVerdict{}, fmt.Errorf("decoding the result: %w", err)
	}
	out, err := o.s.o.Gateway.CheckResult(ctx, req.VirtualServer, req.Tool, &res)
	if err != nil {
		if uerr := o.s.updateApproval(req.ApprovalID).ClearResult().Exec(ctx); uerr != nil {
			return workflows.OutputVerdict{}, fmt.Errorf("withholding the result: %w", uerr)
		}
		return workflows.OutputVerdict{Block: true, Reason: err.Error()}, nil
	}
	if out == &res {
		return workflows.OutputVerdict{}, nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return workflows.OutputVerdict{}, fmt.Errorf("encoding the redacted result: %w", err)
	}
	if err := o.s.updateApproval(req.ApprovalID).SetResult(b).Exec(ctx); err != nil {
		return workflows.OutputVerdict{}, fmt.Errorf("storing the redacted result: %w", err)
	}
	return workflows.OutputVerdict{Result: b}, nil
}

type auditor struct{ s *Service }

// Audit records ev in the gateway log and in the Approval record.
func (a auditor) Audit(ctx context.Context, ev workflows.AuditEvent) error {
	attrs := []any{"event", ev.Kind, "approval", ev.ApprovalID, "agent", ev.Agent, "vs", ev.VirtualServer, "tool", ev.Tool,
		"args_hash", ev.ArgsHash, "rule", ev.Rule}
	if d := ev.Decision; d != nil {
		attrs = append(attrs, "approver", d.Approver, "approve", d.Approve)
	}
	if ev.State != "" {
		attrs = append(attrs, "state", string(ev.State))
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	a.s.log.Info("approval audit", attrs...)
	if au := a.s.o.Audit; au != nil {
		e := &audit.Event{Time: ev.Time, Kind: audit.KindApproval, ApprovalID: ev.ApprovalID, Agent: ev.Agent,
			VirtualServer: ev.VirtualServer, Target: ev.Tool, Method: "approval/" + ev.Kind, ArgsHash: ev.ArgsHash,
			Rule: ev.Rule, Outcome: string(ev.State), Error: ev.Reason, Approvers: ev.Groups}
		if d := ev.Decision; d != nil {
			e.Approvers, e.Decision = []string{d.Approver}, "deny"
			if d.Approve {
				e.Decision = "approve"
			}
		}
		if err := au.Record(e); err != nil {
			// Temporal retries the step: the event must reach the trail.
			return fmt.Errorf("recording approval %s in the audit trail: %w", ev.ApprovalID, err)
		}
	}

	st := a.s.o.Store
	rec, err := a.s.lookup(ctx, ev.ApprovalID)
	if ent.IsNotFound(err) {
		return nil // started outside Gatehouse (temporal CLI): the log has it
	}
	if err != nil {
		return fmt.Errorf("reading approval %s: %w", ev.ApprovalID, err)
	}
	u := st.Approval.UpdateOneID(rec.ID)
	switch ev.Kind {
	case workflows.AuditDecided:
		d := ev.Decision
		var list []recorded
		if len(rec.Decisions) > 0 {
			if err := json.Unmarshal(rec.Decisions, &list); err != nil {
				return fmt.Errorf("approval %s: stored decisions unreadable: %w", ev.ApprovalID, err)
			}
		}
		if slices.ContainsFunc(list, func(r recorded) bool { return r.Approver == d.Approver }) {
			return nil // a retry of this activity: already recorded
		}
		list = append(list, recorded{Approver: d.Approver, Approve: d.Approve, Comment: d.Comment, At: d.Time})
		b, _ := json.Marshal(list)
		u.SetDecisions(b)
		approvers := rec.Approvers
		if d.Approve {
			approvers = append(approvers, d.Approver)
			u.SetApprovers(approvers)
		}
		if !d.Approve || len(approvers) >= rec.Quorum {
			u.SetDecidedAt(ev.Time)
			if d.Approve {
				u.SetState(entapproval.StateExecuting)
			}
		}
	case workflows.AuditEscalated:
		u.SetEscalated(true)
		if len(ev.Groups) > 0 {
			u.SetApproverGroups(ev.Groups)
		}
		if !ev.Deadline.IsZero() {
			u.SetDeadline(ev.Deadline)
		}
	case workflows.AuditClosed:
		u.SetState(entapproval.State(ev.State)).SetClosedAt(ev.Time).ClearCallArguments()
		if ev.Reason != "" {
			u.SetReason(ev.Reason)
		}
		decided := rec.DecidedAt
		if decided == nil && ev.State != workflows.StateCancelled {
			u.SetDecidedAt(ev.Time)
			decided = &ev.Time
		}
		if rec.State != entapproval.State(ev.State) || rec.ClosedAt == nil { // not a retry of this activity
			a.s.metrics.closed.WithLabelValues(rec.Rule, string(ev.State)).Inc()
			if decided != nil {
				a.s.metrics.wait.WithLabelValues(rec.Rule).Observe(decided.Sub(rec.CreatedAt).Seconds())
			}
		}
	default:
		return nil
	}
	if err := u.Exec(ctx); err != nil {
		return fmt.Errorf("recording %s of approval %s: %w", ev.Kind, ev.ApprovalID, err)
	}
	a.s.changes.notify(ev.ApprovalID)
	return nil
}

// webhooks returns the enabled webhooks of an approver group.
func (s *Service) webhooks(ctx context.Context, group string) ([]workflows.Webhook, error) {
	hs, err := s.o.Store.Webhook.Query().Where(webhook.Group(group), webhook.Enabled(true)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading webhooks of group %s: %w", group, err)
	}
	out := make([]workflows.Webhook, len(hs))
	for i, h := range hs {
		out[i] = workflows.Webhook{Group: h.Group, URL: h.URL, Secret: h.Secret}
	}
	return out, nil
}
