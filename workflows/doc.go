// Package workflows holds Gatehouse's Temporal workflows and activities: the
// durable path a tool call takes when policy says it needs human approval.
//
// # ToolCallWorkflow
//
// [ToolCallWorkflow] receives a [ToolCallRequest] (principal, virtual server,
// tool, redacted arguments, canonical-argument hash, the reasons the call was
// flagged and the matching [ApprovalRule]). The workflow ID is the approval ID,
// deterministic per request, so starting the same request twice finds the
// running or completed workflow instead of creating a second one.
//
// The workflow waits for decisions until one of:
//
//   - Quorum distinct approvers approved: the call is executed (see below).
//   - Any valid approver denied: the call is denied with that approver's comment.
//   - The rule's timeout passed: with OnTimeout "escalate" (and EscalateTo set),
//     approval moves once to the EscalateTo groups with a fresh timeout, and
//     approvals already given still count; otherwise the call times out, which is
//     a denial.
//   - The workflow was cancelled (the agent gave up): state "cancelled".
//
// Once approved, the workflow runs the activities of [Activities] in order:
// FetchSecrets, CallUpstream, CheckOutput, and Audit events throughout. After
// approval the execution no longer reacts to cancellation: the approvers
// approved the call, and its stored result serves an identical retry.
//
// # Deciding: the "decide" update (and signal)
//
// Approvers decide with the update [UpdateDecide] ("decide"), whose single
// argument is a [Decision] in JSON:
//
//	{"Approver": "alice", "Groups": ["secops"], "Team": "security",
//	 "Approve": true, "Comment": "looks fine"}
//
// Approver is the approver's identity, Groups the approver's teams and roles
// (matched against the rule's approver groups), Team the approver's own team
// (matched against the requester's when the rule forbids same-team approval),
// Approve true to approve and false to deny, Comment the reason shown to the
// agent on denial. The update returns the workflow's [Status]. Its validator
// rejects, without writing history:
//
//   - an approver who is in none of the current approver groups ([ErrNotApprover]);
//   - the requesting agent itself ([ErrSelfApproval]);
//   - an approver of the requester's team when the rule does not allow it ([ErrSameTeam]);
//   - an approver deciding a second time ([ErrAlreadyVoted]);
//   - any decision once the call is decided ([ErrAlreadyDecided]).
//
// The workflow trusts Groups and Team: they must come from an authenticated
// surface (the gateway's GraphQL API and CLI, or an operator with direct access
// to the Temporal namespace). With the Temporal CLI against an external cluster:
//
//	temporal workflow update execute --workflow-id <approval-id> --name decide \
//	  --input '{"Approver":"alice","Groups":["secops"],"Team":"security","Approve":true,"Comment":"ok"}'
//
// Clients that cannot send updates may send the signal [SignalDecide] (also
// "decide") with the same payload. Signals cannot be rejected, so a signal that
// fails the same checks is recorded in [Status].Rejected and otherwise ignored.
//
// # Querying: the "status" query
//
// The query [QueryStatus] ("status") takes no argument and returns [Status]:
// the state ("pending", "executing" or a final [State]), the approvers so far,
// the quorum, the current approver groups, the deadline, whether the approval
// was escalated, and rejected signals.
//
//	temporal workflow query --workflow-id <approval-id> --name status
package workflows
