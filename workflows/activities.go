package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
)

// SecretFetcher prepares the secrets an approved call needs; it runs after
// approval, never before, so a pending call holds no credential. An error
// is retried (the secrets step's retry policy), then fails the call before
// anything reaches the upstream.
//
// Whatever it produces must never be returned into the workflow history
// (activity results are stored there in clear). Gatehouse's implementation
// (internal/approval) checks that Vault can serve the call's secret
// bindings; the values are fetched by the [Executor], in the worker's
// process, when it makes the call.
type SecretFetcher interface {
	FetchSecrets(ctx context.Context, req ToolCallRequest) error
}

// Executor calls the upstream tool for an approved request.
//
// Call must call the upstream at most once per key and, when called again
// with a key it has seen, return the stored result of that first call without
// calling the upstream: CallUpstream is retried, and a worker may crash after
// the upstream answered but before the result reached the history. The
// stored outcome of a failed upstream call is returned again too, wrapped in
// an [*UpstreamError], because nobody can tell whether the failed call had
// effects.
//
// req.Arguments are the redacted arguments; an Executor that needs the
// original ones looks them up by key and checks them against req.ArgsHash, so
// that exactly the approved call runs.
type Executor interface {
	Call(ctx context.Context, key string, req ToolCallRequest) (json.RawMessage, error)
}

// OutputChecker applies output guardrails to an upstream result.
type OutputChecker interface {
	CheckOutput(ctx context.Context, req ToolCallRequest, result json.RawMessage) (OutputVerdict, error)
}

// OutputVerdict is an [OutputChecker]'s answer.
type OutputVerdict struct {
	// Block withholds the result from the agent.
	Block bool
	// Reason says why, for the agent and the audit.
	Reason string
	// Result, when not empty, replaces the upstream result (for instance
	// redacted).
	Result json.RawMessage `json:",omitempty"`
}

// Auditor records audit events.
type Auditor interface {
	Audit(ctx context.Context, ev AuditEvent) error
}

// Kinds of [AuditEvent].
const (
	AuditRequested = "requested"
	AuditDecided   = "decided"
	AuditEscalated = "escalated"
	AuditExecuted  = "executed"
	AuditClosed    = "closed"
)

// AuditEvent is one step of an approval.
type AuditEvent struct {
	// Kind is one of the Audit* constants.
	Kind          string
	ApprovalID    string
	Agent         string
	VirtualServer string
	Tool          string
	ArgsHash      string
	// Rule is the approval rule's name.
	Rule string
	// Decision is set on "decided" events.
	Decision *Decision
	// State is set on "closed" events.
	State State
	// Reason explains escalations, failures and closed states.
	Reason string
	// Groups and Deadline are set on "requested" and "escalated" events: the
	// approver groups that may decide from then on, and when their window
	// ends.
	Groups   []string
	Deadline time.Time
	// Time is the workflow time of the event.
	Time time.Time
}

// Kinds of [Notification].
const (
	NotificationRequested = "requested"
	NotificationEscalated = "escalated"
)

// Notification tells approver groups that a call awaits their decision.
type Notification struct {
	// Kind is [NotificationRequested] or [NotificationEscalated].
	Kind          string
	ApprovalID    string
	Agent         string
	VirtualServer string
	Tool          string
	// Arguments are the call's redacted arguments.
	Arguments json.RawMessage
	// Reasons say why the call was flagged.
	Reasons []string
	// Rule is the approval rule's name.
	Rule string
	// Groups are the approver groups to notify: those that may decide now.
	Groups []string
	// Quorum is the number of approvals needed.
	Quorum int
	// Approvers are the approvers who approved so far (after an escalation,
	// their approvals still count).
	Approvers []string
	// Deadline is when the current approval window ends.
	Deadline time.Time
}

// Notifier tells approvers about calls awaiting them. [WebhookNotifier] is
// one.
//
// Notify may be called again with the same notification (the activity is
// retried), so deliveries should carry an identity that lets receivers drop
// duplicates. A [*temporal.ApplicationError] returned as is keeps its retry
// behaviour; any other error is retried.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// UpstreamError reports that the upstream call was made and failed. The
// workflow does not retry it.
type UpstreamError struct {
	Err error
}

func (e *UpstreamError) Error() string { return "calling upstream: " + e.Err.Error() }
func (e *UpstreamError) Unwrap() error { return e.Err }

// Activities are the activities of [ToolCallWorkflow]. Register a pointer to
// it with the worker; the workflow refers to its methods by name.
type Activities struct {
	// Secrets prepares secrets. Nil means the call needs none.
	Secrets SecretFetcher
	// Executor calls the upstream. Required.
	Executor Executor
	// Output applies output guardrails. Nil means results pass unchanged.
	Output OutputChecker
	// Auditor records audit events. Nil means events are only logged by the
	// workflow.
	Auditor Auditor
	// Notifier tells approvers about calls awaiting them. Nil means nobody
	// is notified: approvers look for pending calls themselves.
	Notifier Notifier
}

// FetchSecrets is the activity that prepares secrets for an approved call.
func (a *Activities) FetchSecrets(ctx context.Context, req ToolCallRequest) error {
	if a.Secrets == nil {
		return nil
	}
	if err := a.Secrets.FetchSecrets(ctx, req); err != nil {
		return fmt.Errorf("fetching secrets for %s/%s: %w", req.VirtualServer, req.Tool, err)
	}
	return nil
}

// CallUpstream is the activity that executes an approved call, at most once
// per key (see [Executor]).
func (a *Activities) CallUpstream(ctx context.Context, key string, req ToolCallRequest) (json.RawMessage, error) {
	if a.Executor == nil {
		return nil, temporal.NewNonRetryableApplicationError("no executor configured", "NoExecutor", nil)
	}
	res, err := a.Executor.Call(ctx, key, req)
	if err != nil {
		var ue *UpstreamError
		if errors.As(err, &ue) {
			return nil, temporal.NewNonRetryableApplicationError(ue.Error(), "UpstreamError", nil)
		}
		return nil, fmt.Errorf("executing approved call %s: %w", key, err)
	}
	return res, nil
}

// CheckOutput is the activity that applies output guardrails.
func (a *Activities) CheckOutput(ctx context.Context, req ToolCallRequest, result json.RawMessage) (OutputVerdict, error) {
	if a.Output == nil {
		return OutputVerdict{}, nil
	}
	v, err := a.Output.CheckOutput(ctx, req, result)
	if err != nil {
		return OutputVerdict{}, fmt.Errorf("checking output of %s/%s: %w", req.VirtualServer, req.Tool, err)
	}
	return v, nil
}

// Audit is the activity that records an audit event.
func (a *Activities) Audit(ctx context.Context, ev AuditEvent) error {
	if a.Auditor == nil {
		return nil
	}
	if err := a.Auditor.Audit(ctx, ev); err != nil {
		return fmt.Errorf("recording audit event %s for %s: %w", ev.Kind, ev.ApprovalID, err)
	}
	return nil
}

// NotifyApprovers is the activity that tells n.Groups about a call awaiting
// their decision.
func (a *Activities) NotifyApprovers(ctx context.Context, n Notification) error {
	if a.Notifier == nil || len(n.Groups) == 0 {
		return nil
	}
	err := a.Notifier.Notify(ctx, n)
	// The SDK reads retryability from the returned error itself, not from
	// its chain: application errors pass unwrapped.
	if _, ok := err.(*temporal.ApplicationError); ok || err == nil {
		return err
	}
	return fmt.Errorf("notifying approvers of %s (%s): %w", n.ApprovalID, n.Kind, err)
}

// Registry is the part of a Temporal worker (or test environment) that
// [Register] needs.
type Registry interface {
	RegisterWorkflow(w any)
	RegisterActivity(a any)
}

// Register registers [ToolCallWorkflow] and a's activities with r.
func Register(r Registry, a *Activities) {
	r.RegisterWorkflow(ToolCallWorkflow)
	r.RegisterActivity(a)
}
