package workflows

import (
	"encoding/json"
	"errors"
	"time"
)

// Names of the workflow's update, signal and query handlers. They are part of
// the admin-facing API (see the package documentation): do not rename them.
const (
	UpdateDecide = "decide"
	SignalDecide = "decide"
	QueryStatus  = "status"
)

// DefaultApprovalTimeout is how long approvers have when [ApprovalRule].Timeout
// is zero.
const DefaultApprovalTimeout = 24 * time.Hour

// What [ApprovalRule].OnTimeout may say.
const (
	OnTimeoutDeny     = "deny"
	OnTimeoutEscalate = "escalate"
)

// Errors returned by the "decide" update's validator (and recorded for
// rejected signals).
var (
	ErrNotApprover    = errors.New("approver is not in the approver groups of this call")
	ErrSelfApproval   = errors.New("the requesting agent cannot approve its own call")
	ErrSameTeam       = errors.New("approvers of the requester's team cannot decide this call")
	ErrAlreadyVoted   = errors.New("approver has already decided this call")
	ErrAlreadyDecided = errors.New("the call is already decided")
	ErrNoApprover     = errors.New("decision names no approver")
)

// ToolCallRequest is the tool call awaiting approval, as recorded in the
// workflow's history. It must not contain secrets.
type ToolCallRequest struct {
	// ApprovalID identifies the approval; it is the workflow ID and the
	// idempotency key of the upstream call. Empty means the workflow ID.
	ApprovalID string
	// Agent is the requesting principal.
	Agent string
	// Team is the requesting agent's team; empty means none.
	Team string
	// Roles are the requesting agent's roles.
	Roles []string
	// VirtualServer and Tool name the call.
	VirtualServer string
	Tool          string
	// Arguments are the call's arguments, already redacted for display.
	Arguments json.RawMessage
	// ArgsHash is the hash of the canonical (unredacted) arguments.
	ArgsHash string
	// Reasons say why the call was flagged: grant, guardrail or rule names.
	Reasons []string
	// Rule is the approval rule that applies.
	Rule ApprovalRule
	// IndexSearchAttributes is set by the starter when the namespace has the
	// search attributes of [SearchAttributeTypes] (see
	// [EnsureSearchAttributes]); the starter then also passes
	// [StartSearchAttributes] in the start options. The workflow then keeps
	// GatehouseState and GatehouseApprovers current. False leaves search
	// attributes alone: upserting one the namespace lacks fails the
	// workflow task.
	IndexSearchAttributes bool
}

// ApprovalRule says who may approve a call and what happens when nobody does.
type ApprovalRule struct {
	// Name of the rule, for audit and display.
	Name string
	// ApproverGroups are the teams or roles whose members may decide. Empty
	// means nobody can, and the workflow fails at once.
	ApproverGroups []string
	// Quorum is the number of distinct approvals needed. Zero means 1.
	Quorum int
	// AllowSameTeam lets members of the requester's team decide. False by
	// default.
	AllowSameTeam bool
	// Timeout is how long approvers have. Zero means [DefaultApprovalTimeout].
	Timeout time.Duration
	// OnTimeout is [OnTimeoutDeny] (the default when empty) or
	// [OnTimeoutEscalate].
	OnTimeout string
	// EscalateTo are the groups that decide after an escalation, with a fresh
	// Timeout. Empty makes "escalate" behave as "deny".
	EscalateTo []string
}

// Decision is one approver's verdict, the payload of the "decide" update and
// signal.
type Decision struct {
	// Approver is the approver's identity.
	Approver string
	// Groups are the approver's teams and roles.
	Groups []string
	// Team is the approver's own team; empty means none.
	Team string
	// Approve is true to approve and false to deny.
	Approve bool
	// Comment is the approver's comment; on a denial it is the reason given
	// to the agent.
	Comment string
	// Time is when the workflow accepted the decision; callers leave it zero.
	Time time.Time
}

// State is the state of a tool call awaiting approval.
type State string

// States of [Status].State; the final ones are also [ToolCallResult].State.
const (
	StatePending   State = "pending"
	StateExecuting State = "executing"
	StateApproved  State = "approved"
	StateDenied    State = "denied"
	StateTimedOut  State = "timed_out"
	StateCancelled State = "cancelled"
	StateFailed    State = "failed"
)

// ToolCallResult is the outcome of [ToolCallWorkflow].
type ToolCallResult struct {
	// State is one of the final states: approved, denied, timed_out,
	// cancelled or failed.
	State State
	// Result is the upstream CallToolResult when State is approved.
	Result json.RawMessage
	// Reason explains a state other than approved, for the agent.
	Reason string
	// Approvers are the approvers who approved.
	Approvers []string
}

// Status is the answer to the "status" query and to the "decide" update.
type Status struct {
	State State
	// Approvers are the distinct approvers who approved so far.
	Approvers []string
	// Quorum is the number of approvals needed.
	Quorum int
	// Groups are the approver groups that may decide now.
	Groups []string
	// Deadline is when the current approval window ends.
	Deadline time.Time
	// Escalated says the approval moved to the escalation groups.
	Escalated bool
	// Rejected lists signals that failed validation and were ignored.
	Rejected []RejectedDecision
}

// RejectedDecision records a "decide" signal that failed validation.
type RejectedDecision struct {
	Approver string
	Reason   string
	Time     time.Time
}
