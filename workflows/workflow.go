package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Activity options. Every step of the approved call, and the audit, runs as
// a local activity: in the worker that runs the workflow, recorded in the
// history as a marker, without a round trip through the server's task
// queues (which costs ~20 ms per step on the embedded server). Their
// guarantees stay those of activities: a retry or a replay after a crash
// runs the step again, which [Executor] makes safe for the upstream call.
// CallUpstream retries freely because the Executor returns the stored
// result; an [*UpstreamError] is not retried.
var (
	upstreamOptions = workflow.LocalActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{"UpstreamError", "NoExecutor"},
		},
	}
	stepOptions = workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			MaximumAttempts:    5,
		},
	}
	// Audit events must not be lost to a short outage of the audit sink, and
	// must not block the call for long either.
	auditOptions = workflow.LocalActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	}
	// Notifications are regular activities: they run beside the wait for
	// decisions, on any worker, and keep trying for a while: a webhook
	// receiver may be down for a deploy.
	notifyOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    2 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	}
)

// notifyGrace is how long a decided approval waits for notifications still
// in flight before the workflow closes and abandons them. Most finish long
// before a decision; one still pending is usually between retries.
const notifyGrace = 5 * time.Second

// approval is the workflow's state while it waits for decisions. Update and
// signal handlers mutate it; the main loop reads it.
type approval struct {
	req       ToolCallRequest
	quorum    int
	groups    []string
	deadline  time.Time
	escalated bool
	decisions []Decision // accepted, in order
	approvers []string
	denial    *Decision
	rejected  []RejectedDecision
	state     State
}

func (s *approval) decided() bool {
	return s.denial != nil || len(s.approvers) >= s.quorum
}

// validate checks d against the rule; it must not mutate s (it runs as the
// update validator).
func (s *approval) validate(d Decision) error {
	switch {
	case s.state != StatePending || s.decided():
		return ErrAlreadyDecided
	case d.Approver == "":
		return ErrNoApprover
	case d.Approver == s.req.Agent:
		return ErrSelfApproval
	case !s.req.Rule.AllowSameTeam && d.Team != "" && d.Team == s.req.Team:
		return ErrSameTeam
	case !slices.ContainsFunc(d.Groups, func(g string) bool { return slices.Contains(s.groups, g) }):
		return ErrNotApprover
	case slices.ContainsFunc(s.decisions, func(p Decision) bool { return p.Approver == d.Approver }):
		return ErrAlreadyVoted
	}
	return nil
}

func (s *approval) apply(d Decision) {
	s.decisions = append(s.decisions, d)
	if !d.Approve {
		s.denial = &d
		return
	}
	s.approvers = append(s.approvers, d.Approver)
}

func (s *approval) status() Status {
	return Status{
		State:     s.state,
		Approvers: slices.Clone(s.approvers),
		Quorum:    s.quorum,
		Groups:    slices.Clone(s.groups),
		Deadline:  s.deadline,
		Escalated: s.escalated,
		Rejected:  slices.Clone(s.rejected),
	}
}

// ToolCallWorkflow waits for approval of req and, if approved, executes it
// once. See the package documentation for its update, signal and query.
//
// A cancelled workflow returns a result with state "cancelled" and the
// cancellation error.
func ToolCallWorkflow(ctx workflow.Context, req ToolCallRequest) (ToolCallResult, error) {
	if req.ApprovalID == "" {
		req.ApprovalID = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	timeout := req.Rule.Timeout
	if timeout <= 0 {
		timeout = DefaultApprovalTimeout
	}
	s := &approval{
		req:      req,
		quorum:   max(req.Rule.Quorum, 1),
		groups:   slices.Clone(req.Rule.ApproverGroups),
		deadline: workflow.Now(ctx).Add(timeout),
		state:    StatePending,
	}
	w := &run{s: s, ctx: ctx, log: workflow.GetLogger(ctx)}
	if _, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(SearchAttributeState); !ok && req.IndexSearchAttributes {
		w.index(startSearchAttributes(req)...) // the starter did not pass them
	}

	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) {
		return s.status(), nil
	}); err != nil {
		return ToolCallResult{}, fmt.Errorf("registering query %s: %w", QueryStatus, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, d Decision) (Status, error) {
			// Validation and handling run in the same workflow task, but
			// check again so that the handler never trusts its caller.
			if err := s.validate(d); err != nil {
				return s.status(), err
			}
			w.accept(ctx, d)
			return s.status(), nil
		},
		workflow.UpdateHandlerOptions{Validator: s.validate},
	); err != nil {
		return ToolCallResult{}, fmt.Errorf("registering update %s: %w", UpdateDecide, err)
	}
	signals := workflow.GetSignalChannel(ctx, SignalDecide)
	workflow.Go(ctx, func(ctx workflow.Context) {
		var d Decision
		for signals.Receive(ctx, &d) {
			if err := s.validate(d); err != nil {
				w.log.Warn("ignoring invalid decide signal", "approval", req.ApprovalID, "approver", d.Approver, "error", err)
				s.rejected = append(s.rejected, RejectedDecision{Approver: d.Approver, Reason: err.Error(), Time: workflow.Now(ctx)})
			} else {
				w.accept(ctx, d)
			}
			d = Decision{}
		}
	})

	w.audit(ctx, AuditEvent{Kind: AuditRequested, Groups: slices.Clone(s.groups), Deadline: s.deadline})
	if len(s.groups) == 0 {
		return w.close(ctx, ToolCallResult{State: StateFailed,
			Reason: fmt.Sprintf("approval rule %q names no approver groups; ask an admin to fix the rule", req.Rule.Name)}), nil
	}
	w.notify(ctx, NotificationRequested)

	audited := 0
	for {
		ready := func() bool { return s.decided() || len(s.decisions) > audited }
		ok, err := ready(), ctx.Err()
		if remaining := s.deadline.Sub(workflow.Now(ctx)); !ok && err == nil && remaining > 0 {
			ok, err = workflow.AwaitWithTimeout(ctx, remaining, ready)
		}
		for ; audited < len(s.decisions) && err == nil; audited++ {
			d := s.decisions[audited]
			w.audit(ctx, AuditEvent{Kind: AuditDecided, Decision: &d})
			err = ctx.Err()
		}
		if err != nil {
			return w.cancelled()
		}
		if s.decided() {
			break
		}
		if ok || workflow.Now(ctx).Before(s.deadline) {
			continue // a decision arrived but no verdict yet
		}
		rule := req.Rule
		if rule.OnTimeout == OnTimeoutEscalate && !s.escalated && len(rule.EscalateTo) > 0 {
			s.escalated = true
			s.groups = slices.Clone(rule.EscalateTo)
			s.deadline = workflow.Now(ctx).Add(timeout)
			w.audit(ctx, AuditEvent{Kind: AuditEscalated, Groups: slices.Clone(s.groups), Deadline: s.deadline,
				Reason: fmt.Sprintf("no verdict within %s; escalated to %v", timeout, rule.EscalateTo)})
			if ctx.Err() != nil {
				return w.cancelled()
			}
			w.notify(ctx, NotificationEscalated)
			continue
		}
		return w.close(ctx, ToolCallResult{State: StateTimedOut, Approvers: slices.Clone(s.approvers),
			Reason: fmt.Sprintf("approval %s timed out: %d of %d approvals", req.ApprovalID, len(s.approvers), s.quorum)}), nil
	}

	if s.denial != nil {
		return w.close(ctx, ToolCallResult{State: StateDenied, Approvers: slices.Clone(s.approvers),
			Reason: fmt.Sprintf("denied by %s: %s", s.denial.Approver, s.denial.Comment)}), nil
	}
	w.setState(StateExecuting)
	// From here on the approved call runs to completion even if the workflow
	// is cancelled: see the package documentation.
	execCtx, _ := workflow.NewDisconnectedContext(ctx)
	return w.close(ctx, w.execute(execCtx)), nil
}

// run carries what the workflow's helpers share.
type run struct {
	s   *approval
	ctx workflow.Context
	log interface {
		Warn(msg string, keyvals ...any)
	}
	// notifications are the NotifyApprovers activities started so far.
	notifications []workflow.Future
}

// accept applies a valid decision.
func (w *run) accept(ctx workflow.Context, d Decision) {
	d.Time = workflow.Now(ctx)
	w.s.apply(d)
	if d.Approve {
		w.index(SearchAttributeApprovers.ValueSet(slices.Clone(w.s.approvers)))
	}
}

// setState sets the state shown by the "status" query and GatehouseState.
func (w *run) setState(st State) {
	w.s.state = st
	w.index(SearchAttributeState.ValueSet(string(st)))
}

// index upserts search attributes if the starter asked for them. A failure
// is logged, not fatal: the search attributes only serve listings.
func (w *run) index(u ...temporal.SearchAttributeUpdate) {
	if !w.s.req.IndexSearchAttributes {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(w.ctx, u...); err != nil {
		w.log.Warn("updating search attributes failed", "approval", w.s.req.ApprovalID, "error", err)
	}
}

// notify tells the current approver groups about the approval. It does not
// wait: decisions may arrive while a webhook is retried. A failure is
// logged; cancelling ctx (the agent gave up) cancels the notification.
func (w *run) notify(ctx workflow.Context, kind string) {
	s, req := w.s, w.s.req
	n := Notification{Kind: kind, ApprovalID: req.ApprovalID, Agent: req.Agent, VirtualServer: req.VirtualServer,
		Tool: req.Tool, Arguments: req.Arguments, Reasons: req.Reasons, Rule: req.Rule.Name,
		Groups: slices.Clone(s.groups), Quorum: s.quorum, Approvers: slices.Clone(s.approvers), Deadline: s.deadline}
	var a *Activities
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, notifyOptions), a.NotifyApprovers, n)
	w.notifications = append(w.notifications, f)
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := f.Get(ctx, nil); err != nil && !temporal.IsCanceledError(err) {
			w.log.Warn("notifying approvers failed", "approval", req.ApprovalID, "notification", kind,
				"groups", n.Groups, "error", err)
		}
	})
}

// notifying reports whether a notification is still in flight.
func (w *run) notifying() bool {
	return slices.ContainsFunc(w.notifications, func(f workflow.Future) bool { return !f.IsReady() })
}

func (w *run) execute(ctx workflow.Context) ToolCallResult {
	var a *Activities
	req := w.s.req
	res := ToolCallResult{State: StateApproved, Approvers: slices.Clone(w.s.approvers)}

	stepCtx := workflow.WithLocalActivityOptions(ctx, stepOptions)
	if err := workflow.ExecuteLocalActivity(stepCtx, a.FetchSecrets, req).Get(ctx, nil); err != nil {
		return failed(res, "fetching secrets", err)
	}
	upCtx := workflow.WithLocalActivityOptions(ctx, upstreamOptions)
	if err := workflow.ExecuteLocalActivity(upCtx, a.CallUpstream, req.ApprovalID, req).Get(ctx, &res.Result); err != nil {
		return failed(res, "calling the upstream", err)
	}
	w.audit(ctx, AuditEvent{Kind: AuditExecuted})
	var v OutputVerdict
	if err := workflow.ExecuteLocalActivity(stepCtx, a.CheckOutput, req, res.Result).Get(ctx, &v); err != nil {
		res.Result = nil
		return failed(res, "checking the output", err)
	}
	if v.Block {
		res.State, res.Result = StateFailed, nil
		res.Reason = "the result was withheld by an output guardrail: " + v.Reason
		return res
	}
	if len(v.Result) > 0 && string(v.Result) != "null" { // nil arrives as JSON null
		res.Result = v.Result
	}
	return res
}

func failed(res ToolCallResult, step string, err error) ToolCallResult {
	res.State = StateFailed
	var ae *temporal.ApplicationError
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.Message()
	}
	res.Reason = fmt.Sprintf("approved, but %s failed: %s", step, msg)
	return res
}

// cancelled records the cancellation of a pending approval.
func (w *run) cancelled() (ToolCallResult, error) {
	res := w.close(w.ctx, ToolCallResult{State: StateCancelled, Approvers: slices.Clone(w.s.approvers),
		Reason: fmt.Sprintf("approval %s was cancelled", w.s.req.ApprovalID)})
	return res, temporal.NewCanceledError()
}

// close sets the final state and records it, even if the workflow is being
// cancelled meanwhile.
func (w *run) close(ctx workflow.Context, res ToolCallResult) ToolCallResult {
	w.setState(res.State)
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	w.audit(ctx, AuditEvent{Kind: AuditClosed, State: res.State, Reason: res.Reason})
	if w.notifying() {
		_, _ = workflow.AwaitWithTimeout(ctx, notifyGrace, func() bool { return !w.notifying() })
	}
	return res
}

// audit records ev. A failure is logged, not fatal: the approval proceeds.
func (w *run) audit(ctx workflow.Context, ev AuditEvent) {
	req := w.s.req
	ev.ApprovalID, ev.Agent, ev.VirtualServer, ev.Tool = req.ApprovalID, req.Agent, req.VirtualServer, req.Tool
	ev.ArgsHash, ev.Rule, ev.Time = req.ArgsHash, req.Rule.Name, workflow.Now(ctx)
	var a *Activities
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, auditOptions), a.Audit, ev).Get(ctx, nil)
	if err != nil && ctx.Err() == nil {
		w.log.Warn("recording audit event failed", "approval", req.ApprovalID, "event", ev.Kind, "error", err)
	}
}
