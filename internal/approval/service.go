// Package approval is the gateway's side of human approval: it holds a tool
// call that needs approval as a ToolCallWorkflow (package workflows) on
// Temporal, keeps the agent's request open while approvers decide, hands
// approvers' decisions to the workflow, and implements the workflow's
// activities against the gateway (the upstream call, exactly once; output
// guardrails; audit).
//
// The store's Approval entity is the durable record of every held call:
// its ID is the workflow ID, its call_arguments are what the approved call
// sends, its result what the agent gets on an identical retry. The
// workflow is the source of truth for the state; its audit activity keeps
// the record current, so approvers list and filter approvals with plain
// store queries.
package approval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gatehouse-dev/gatehouse/ent"
	entapproval "github.com/gatehouse-dev/gatehouse/ent/approval"
	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/workflows"
)

// Defaults of [Options].
const (
	DefaultHold      = 5 * time.Minute
	DefaultKeepAlive = 15 * time.Second
	DefaultTaskQueue = "gatehouse-approvals"
)

// Errors callers branch on: the admin API's, which it maps to NOT_FOUND,
// CONFLICT and FORBIDDEN.
var (
	// ErrUnknown: no approval has the ID.
	ErrUnknown = graph.ErrUnknownApproval
	// ErrClosed: the approval is no longer pending.
	ErrClosed = graph.ErrApprovalClosed
	// ErrRefused: the workflow refused the decision (not an approver of the
	// call, the requester, already voted); the error says which.
	ErrRefused = graph.ErrApprovalRefused
)

// Options configure a [Service].
type Options struct {
	// Temporal is the client of the cluster (embedded or external).
	Temporal client.Client
	// Store holds the Approval records.
	Store *ent.Client
	// Gateway executes approved calls and checks their results.
	Gateway *proxy.Gateway
	// TaskQueue of the workflows. Default [DefaultTaskQueue].
	TaskQueue string
	// Hold is how long an agent's tools/call stays open waiting. Default
	// [DefaultHold].
	Hold time.Duration
	// KeepAlive is how often a waiting call gets a progress notification
	// when nothing changes. Default [DefaultKeepAlive].
	KeepAlive time.Duration
	// SearchAttributes says the namespace has the workflows' search
	// attributes (workflows.SearchAttributeTypes), so workflows index them.
	SearchAttributes bool
	// Audit records each approval step in the audit trail; nil records
	// them only in the log and the Approval record.
	Audit proxy.AuditSink
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Service holds calls for approval and serves approvers' decisions.
type Service struct {
	o           Options
	log         *slog.Logger
	changes     *hub
	metrics     *metrics
	searchAttrs atomic.Bool // o.SearchAttributes, or registered since
}

var _ proxy.Approvals = (*Service)(nil)

// New returns a service over o.Temporal and o.Store.
func New(o Options) *Service {
	if o.TaskQueue == "" {
		o.TaskQueue = DefaultTaskQueue
	}
	if o.Hold <= 0 {
		o.Hold = DefaultHold
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{o: o, log: o.Logger, changes: newHub(), metrics: newMetrics()}
	s.searchAttrs.Store(o.SearchAttributes)
	return s
}

// EnableSearchAttributes says the namespace has the workflows' search
// attributes now (they were registered once the cluster could be
// reached): workflows started from now on index them.
func (s *Service) EnableSearchAttributes() { s.searchAttrs.Store(true) }

// TaskQueue is the task queue the service's workflows run on.
func (s *Service) TaskQueue() string { return s.o.TaskQueue }

// ID returns the approval ID of the attempt-th approval of the identical
// call c: deterministic, so that the same request always maps to the same
// workflow.
func ID(c *proxy.HeldCall, attempt int) string {
	h := sha256.New()
	for _, part := range []string{c.Principal.Agent, c.VS, c.Tool, c.ArgsHash, strconv.Itoa(attempt)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "apr-" + hex.EncodeToString(h.Sum(nil))[:20]
}

// Hold implements [proxy.Approvals]: it joins the open approval of the
// identical call if there is one, else starts a new one, and waits.
func (s *Service) Hold(ctx context.Context, c *proxy.HeldCall, progress proxy.Progress) (*mcp.CallToolResult, bool, error) {
	last, err := s.latest(ctx, c)
	if err != nil {
		return nil, false, unavailable("reading earlier approvals: %v", err)
	}
	switch {
	case last != nil && !last.Delivered && final(last.State):
		// The agent retries after its hold ran out: the outcome is ready.
		c.ApprovalID = last.ApprovalID
		return s.deliver(ctx, last, nil)
	case last != nil && !last.Delivered:
		// Make sure the workflow exists: the gateway may have died between
		// recording the approval and starting it.
		if err := s.startWorkflow(ctx, c, last.ApprovalID); err != nil && !errors.Is(err, errForeignRun) {
			return nil, false, unavailable("resuming approval %s: %v", last.ApprovalID, err)
		}
		c.ApprovalID = last.ApprovalID
		return s.wait(ctx, last.ApprovalID, progress)
	case last != nil && last.State == entapproval.StateApproved && c.Rule.ReuseWindow > 0 &&
		last.DecidedAt != nil && s.o.Now().Before(last.DecidedAt.Add(c.Rule.ReuseWindow.Std())):
		s.log.Info("approval reused", "approval", last.ApprovalID, "agent", c.Principal.Agent, "vs", c.VS, "tool", c.Tool,
			"rule", c.Rule.Name, "reuse_until", last.DecidedAt.Add(c.Rule.ReuseWindow.Std()))
		c.ApprovalID = last.ApprovalID
		return nil, true, nil
	}
	attempt := 0
	if last != nil {
		attempt = last.Attempt + 1
	}
	id, err := s.start(ctx, c, attempt)
	if err != nil {
		return nil, false, err
	}
	c.ApprovalID = id
	return s.wait(ctx, id, progress)
}

// latest returns the latest approval of the identical call, nil if none.
func (s *Service) latest(ctx context.Context, c *proxy.HeldCall) (*ent.Approval, error) {
	a, err := s.o.Store.Approval.Query().
		Where(entapproval.Agent(c.Principal.Agent), entapproval.VirtualServer(c.VS),
			entapproval.Tool(c.Tool), entapproval.ArgsHash(c.ArgsHash)).
		Order(ent.Desc(entapproval.FieldAttempt)).
		First(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	return a, err
}

// start records the approval and starts its workflow. Two identical calls
// racing get the same ID: the second finds the record and joins. A closed
// workflow of the same ID that the store does not know (a store restored
// from backup, or another store on the same Temporal namespace) moves the
// call to the next attempt's ID.
func (s *Service) start(ctx context.Context, c *proxy.HeldCall, attempt int) (string, error) {
	next := func(id string) { // the ID is taken: use the next attempt's
		s.log.Warn("approval ID already used by a workflow this store does not know; using the next one", "approval", id)
		attempt++
	}
	for tries := 0; ; tries++ {
		id := ID(c, attempt)
		// A run of this ID that the store does not know: look before
		// recording, so that approvers never see a record that is dropped.
		if known, err := s.foreign(ctx, id); err != nil {
			return "", err
		} else if known && tries < 5 {
			next(id)
			continue
		}
		created, err := s.record(ctx, c, id, attempt)
		if err != nil {
			return "", err
		}
		// The start completes even if the agent cancels meanwhile: wait
		// then records the cancellation on the workflow.
		err = s.startWorkflow(context.WithoutCancel(ctx), c, id)
		switch {
		case err == nil:
			if created {
				s.log.Info("call held for approval", "approval", id, "agent", c.Principal.Agent, "vs", c.VS, "tool", c.Tool,
					"rule", c.Rule.Name, "groups", c.Rule.ApproverGroups, "quorum", max(c.Rule.Quorum, 1), "reasons", c.Reasons)
				s.metrics.held.WithLabelValues(c.VS, c.Rule.Name).Inc()
				s.changes.notify(id)
			}
			return id, nil
		case !created:
			return id, nil // joined: the closed run's outcome is what we wait for
		case errors.Is(err, errForeignRun) && tries < 5:
			if _, derr := s.o.Store.Approval.Delete().Where(entapproval.ApprovalID(id)).Exec(ctx); derr != nil {
				return "", unavailable("recording the approval: %v", derr)
			}
			next(id)
		default:
			// Close the record so that a retry starts afresh.
			_ = s.updateApproval(id).
				SetState(entapproval.StateFailed).SetReason("the approval workflow could not be started: " + err.Error()).
				SetClosedAt(s.o.Now()).SetDelivered(true).ClearCallArguments().Exec(context.WithoutCancel(ctx))
			return "", unavailable("starting the approval workflow: %v", err)
		}
	}
}

// foreign reports whether Temporal has a workflow with ID id that the
// store has no record of (the store was reset or restored, or another
// store shares the namespace).
func (s *Service) foreign(ctx context.Context, id string) (bool, error) {
	_, err := s.o.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return false, nil
	case err != nil:
		return false, unavailable("looking up approval %s in Temporal: %v", id, err)
	}
	known, err := s.o.Store.Approval.Query().Where(entapproval.ApprovalID(id)).Exist(ctx)
	if err != nil {
		return false, unavailable("reading approval %s: %v", id, err)
	}
	return !known, nil
}

// record stores approval id of c; created is false when it exists already.
func (s *Service) record(ctx context.Context, c *proxy.HeldCall, id string, attempt int) (created bool, err error) {
	rule := c.Rule
	err = s.o.Store.Approval.Create().
		SetApprovalID(id).SetAgent(c.Principal.Agent).SetTeam(c.Principal.Team).
		SetVirtualServer(c.VS).SetTool(c.Tool).SetUpstream(c.Upstream).SetUpstreamTool(c.UpstreamTool).
		SetArguments(c.Display).SetCallArguments(c.Arguments).SetArgsHash(c.ArgsHash).SetAttempt(attempt).
		SetReasons(c.Reasons).SetRule(rule.Name).SetApproverGroups(rule.ApproverGroups).SetQuorum(max(rule.Quorum, 1)).
		SetDeadline(s.o.Now().Add(ruleTimeout(rule))).
		Exec(ctx)
	if ent.IsConstraintError(err) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("recording the approval: %v", err)
	}
	return true, nil
}

func ruleTimeout(r config.ApprovalRule) time.Duration {
	if t := r.Timeout.Std(); t > 0 {
		return t
	}
	return workflows.DefaultApprovalTimeout
}

// lookup returns the record of approval id.
func (s *Service) lookup(ctx context.Context, id string) (*ent.Approval, error) {
	return s.o.Store.Approval.Query().Where(entapproval.ApprovalID(id)).Only(ctx)
}

// updateApproval starts an update of the record of approval id.
func (s *Service) updateApproval(id string) *ent.ApprovalUpdate {
	return s.o.Store.Approval.Update().Where(entapproval.ApprovalID(id))
}

// errForeignRun: a closed workflow already has the approval ID.
var errForeignRun = errors.New("a closed workflow already has this approval ID")

// startWorkflow starts approval id's workflow, or finds it running (a
// joined call, or a gateway that crashed between recording the approval
// and starting its workflow).
func (s *Service) startWorkflow(ctx context.Context, c *proxy.HeldCall, id string) error {
	rule := c.Rule
	req := workflows.ToolCallRequest{
		ApprovalID: id, Agent: c.Principal.Agent, Team: c.Principal.Team, Roles: c.Principal.Roles,
		VirtualServer: c.VS, Tool: c.Tool, Arguments: c.Display, ArgsHash: c.ArgsHash, Reasons: c.Reasons,
		Rule: workflows.ApprovalRule{
			Name: rule.Name, ApproverGroups: rule.ApproverGroups, Quorum: max(rule.Quorum, 1), AllowSameTeam: rule.AllowSameTeam,
			Timeout: ruleTimeout(rule), OnTimeout: rule.OnTimeout, EscalateTo: rule.EscalateTo,
		},
		IndexSearchAttributes: s.searchAttrs.Load(),
	}
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                s.o.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A closed run of the ID is an error (errForeignRun), not a run to join.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// The first workflow task comes back with the start and runs in this
		// process's worker, skipping a trip through the server's matching.
		EnableEagerStart: true,
		// A worker that dies mid-task costs this long before another takes over.
		WorkflowTaskTimeout: 2 * time.Second,
	}
	if req.IndexSearchAttributes {
		opts.TypedSearchAttributes = workflows.StartSearchAttributes(req)
	}
	_, err := s.o.Temporal.ExecuteWorkflow(ctx, opts, workflows.ToolCallWorkflow, req)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return fmt.Errorf("%w: %v", errForeignRun, err)
	}
	return err
}

// wait waits for approval id up to the hold time.
func (s *Service) wait(ctx context.Context, id string, progress proxy.Progress) (*mcp.CallToolResult, bool, error) {
	getCtx, stopGet := context.WithCancel(ctx)
	defer stopGet()
	hold := time.NewTimer(s.o.Hold)
	defer hold.Stop()

	type outcome struct {
		res workflows.ToolCallResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		for attempt := 0; ; attempt++ {
			o.err = s.o.Temporal.GetWorkflow(getCtx, id, "").Get(getCtx, &o.res)
			if o.err == nil || getCtx.Err() != nil || !transient(o.err) || attempt == 5 {
				break
			}
			time.Sleep(100 * time.Millisecond << attempt)
		}
		done <- o
	}()
	changed, unsubscribe := s.changes.subscribe(id)
	defer unsubscribe()
	tick := time.NewTicker(s.o.KeepAlive)
	defer tick.Stop()

	last := ""
	report := func(force bool) {
		a, err := s.lookup(ctx, id)
		if err != nil {
			return
		}
		msg := progressMessage(a)
		if force || msg != last {
			last = msg
			progress(msg)
		}
	}
	report(true)
	for {
		select {
		case o := <-done:
			switch {
			case o.err == nil:
				return s.finish(ctx, id, o.res)
			case ctx.Err() != nil:
				return nil, false, s.cancelled(ctx, id)
			}
			// The workflow failed or was terminated outside Gatehouse.
			return s.afterWorkflowError(ctx, id, o.err)
		case <-ctx.Done():
			return nil, false, s.cancelled(ctx, id)
		case <-hold.C:
			return s.expired(ctx, id)
		case <-changed:
			report(false)
		case <-tick.C:
			report(true)
		}
	}
}

// transient reports whether err from waiting on a workflow is worth
// retrying (the connection to Temporal broke, not the workflow).
func transient(err error) bool {
	var app *temporal.ApplicationError
	var canceled *temporal.CanceledError
	var nf *serviceerror.NotFound
	var term *temporal.TerminatedError
	var to *temporal.TimeoutError
	return !errors.As(err, &app) && !errors.As(err, &canceled) && !errors.As(err, &nf) && !errors.As(err, &term) && !errors.As(err, &to)
}

// progressMessage says how far approval a is.
func progressMessage(a *ent.Approval) string {
	switch a.State {
	case entapproval.StatePending:
		return fmt.Sprintf("waiting for approval %s: %d/%d approvals", a.ApprovalID, len(a.Approvers), a.Quorum)
	case entapproval.StateExecuting:
		return fmt.Sprintf("approval %s granted; running the call", a.ApprovalID)
	}
	return fmt.Sprintf("approval %s: %s", a.ApprovalID, a.State)
}

// finish turns the workflow's result into the agent's.
func (s *Service) finish(ctx context.Context, id string, r workflows.ToolCallResult) (*mcp.CallToolResult, bool, error) {
	a, err := s.lookup(ctx, id)
	if err != nil {
		return nil, false, unavailable("reading approval %s: %v", id, err)
	}
	return s.deliver(ctx, a, &r)
}

// deliver gives the agent approval a's outcome (r when the workflow just
// returned it, else the record's) and marks it delivered, so that the next
// identical call needs a new approval.
func (s *Service) deliver(ctx context.Context, a *ent.Approval, r *workflows.ToolCallResult) (*mcp.CallToolResult, bool, error) {
	state, reason, result := string(a.State), a.Reason, a.Result
	if r != nil {
		state, reason = string(r.State), r.Reason
		if len(r.Result) > 0 {
			result = r.Result
		}
	}
	var res *mcp.CallToolResult
	switch workflows.State(state) {
	case workflows.StateApproved:
		res = new(mcp.CallToolResult)
		if err := json.Unmarshal(result, res); err != nil || len(result) == 0 {
			return nil, false, unavailable("approval %s: the stored result is unreadable", a.ApprovalID)
		}
	case workflows.StateCancelled:
		res = toolError(a.ApprovalID, state, fmt.Sprintf("approval %s was cancelled; the call was not executed", a.ApprovalID))
	case workflows.StateDenied:
		res = toolError(a.ApprovalID, state, forAgent(reason))
	default:
		res = toolError(a.ApprovalID, state, reason)
	}
	err := s.updateApproval(a.ApprovalID).SetDelivered(true).Exec(ctx)
	if err != nil {
		s.log.Warn("recording delivery failed", "approval", a.ApprovalID, "error", err)
	}
	return res, false, nil
}

// expired answers a call whose hold time ended while its approval is open.
func (s *Service) expired(ctx context.Context, id string) (*mcp.CallToolResult, bool, error) {
	a, err := s.lookup(context.WithoutCancel(ctx), id)
	status := ""
	if err == nil {
		status = fmt.Sprintf(" (%d/%d approvals)", len(a.Approvers), a.Quorum)
	}
	msg := fmt.Sprintf("approval %s is still pending%s after waiting %s; the call has not run. "+
		"Retry the identical call (same tool and arguments) later: once approved, the retry returns the result of the approved call.",
		id, status, s.o.Hold)
	return toolError(id, string(entapproval.StatePending), msg), false, nil
}

// cancelled cancels approval id because the agent cancelled its request.
func (s *Service) cancelled(ctx context.Context, id string) error {
	bg := context.WithoutCancel(ctx)
	if err := s.o.Temporal.CancelWorkflow(bg, id, ""); err != nil {
		s.log.Warn("cancelling approval failed", "approval", id, "error", err)
	} else {
		s.log.Info("approval cancelled by the agent", "approval", id)
	}
	return ctx.Err()
}

func (s *Service) afterWorkflowError(ctx context.Context, id string, err error) (*mcp.CallToolResult, bool, error) {
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		a, rerr := s.lookup(ctx, id)
		if rerr == nil {
			return s.deliver(ctx, a, &workflows.ToolCallResult{State: workflows.StateCancelled})
		}
	}
	return nil, false, unavailable("approval %s: the workflow ended abnormally: %v", id, err)
}

// toolError is the tool error result an agent gets for an approval that
// did not produce the upstream's result.
// forAgent is a denial's reason as the agent is told it: the approver's
// comment, not who the approver is (the record keeps that: "denied by
// token:alice: …"). Admin token names and approvers' identities are not
// the agent's to know.
func forAgent(reason string) string {
	if rest, ok := strings.CutPrefix(reason, "denied by "); ok {
		if _, comment, ok := strings.Cut(rest, ": "); ok {
			return "denied by an approver: " + comment
		}
	}
	return reason
}

func toolError(id, state, reason string) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		IsError:           true,
		Content:           []mcp.Content{&mcp.TextContent{Text: reason}},
		StructuredContent: map[string]any{"approvalId": id, "state": state, "reason": reason},
	}
}

func unavailable(format string, args ...any) error {
	return &jsonrpc.Error{Code: proxy.CodeApprovalUnavailable,
		Message: "approval service unavailable: " + fmt.Sprintf(format, args...) + "; the call was not executed, retry later"}
}

func final(s entapproval.State) bool {
	switch s {
	case entapproval.StatePending, entapproval.StateExecuting:
		return false
	}
	return true
}

// Status is where an approval stands after a decision.
type Status struct {
	State     workflows.State
	Approvers []string
	Quorum    int
}

// Decide delivers d (its Time left zero) to approval id's workflow as the
// "decide" update and waits for the workflow to accept or refuse it.
func (s *Service) Decide(ctx context.Context, id string, d workflows.Decision) (*Status, error) {
	a, err := s.lookup(ctx, id)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("approval %q: %w", id, ErrUnknown)
	}
	if err != nil {
		return nil, fmt.Errorf("reading approval %s: %w", id, err)
	}
	if a.State != entapproval.StatePending {
		return nil, fmt.Errorf("approval %s is %s: %w", id, a.State, ErrClosed)
	}
	opts := client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.UpdateDecide,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
	h, err := s.o.Temporal.UpdateWorkflow(ctx, opts)
	// The approval is recorded just before its workflow starts: an approver
	// fast enough to see it first waits for the start.
	var nf *serviceerror.NotFound
	for wait := 10 * time.Millisecond; errors.As(err, &nf) && wait < 3*time.Second && time.Since(a.CreatedAt) < 30*time.Second; wait *= 2 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		h, err = s.o.Temporal.UpdateWorkflow(ctx, opts)
	}
	if err == nil {
		var st workflows.Status
		if err = h.Get(ctx, &st); err == nil {
			s.changes.notify(id)
			return &Status{State: verdictState(st, d.Approve), Approvers: st.Approvers, Quorum: st.Quorum}, nil
		}
	}
	var app *temporal.ApplicationError
	switch {
	case errors.As(err, &nf):
		return nil, fmt.Errorf("approval %s has no running workflow on this gateway's Temporal (it starts when the agent retries the call; replicas must share one Temporal): %w", id, ErrClosed)
	case errors.As(err, &app):
		if app.Message() == workflows.ErrAlreadyDecided.Error() {
			return nil, fmt.Errorf("approval %s: %w", id, ErrClosed)
		}
		return nil, fmt.Errorf("%w: %s", ErrRefused, app.Message())
	}
	return nil, fmt.Errorf("deciding approval %s: %w", id, err)
}

// verdictState is the approval's state right after a decision: the update
// returns before the workflow moves on, so a reached quorum or a denial is
// read from the status.
func verdictState(st workflows.Status, approve bool) workflows.State {
	switch {
	case !approve:
		return workflows.StateDenied
	case len(st.Approvers) >= st.Quorum:
		return workflows.StateExecuting
	}
	return st.State
}

// Ready implements [proxy.Approvals]: it asks Temporal's frontend whether
// it serves.
func (s *Service) Ready(ctx context.Context) error {
	if _, err := s.o.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	return nil
}

// Changed returns a channel closed at the next change of any approval made
// through this process (held, decided, advanced by the workflow), for
// long-polling approvers.
func (s *Service) Changed() <-chan struct{} { return s.changes.next() }
