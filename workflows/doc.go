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
// FetchSecrets, CallUpstream, CheckOutput, and Audit events throughout
// (NotifyApprovers runs while it waits: see below). After
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
// to the Temporal namespace), so the cluster must let in only those: the
// embedded server (package devserver) accepts mutual TLS only, and an
// external cluster needs mTLS or an authorizer. With the Temporal CLI:
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
//
// # Search attributes
//
// When [ToolCallRequest].IndexSearchAttributes is set, the workflow keeps
// these search attributes current, so that approvals can be listed with
// visibility queries:
//
//	GatehouseState          Keyword      pending, executing, then the final state
//	GatehouseAgent          Keyword      the requesting agent
//	GatehouseVirtualServer  Keyword      the virtual server
//	GatehouseTool           Keyword      the tool
//	GatehouseApprovers      KeywordList  the approvers who approved so far
//
// The starter passes [StartSearchAttributes] (state "pending", agent, virtual
// server and tool) in the start options; the workflow upserts GatehouseState
// on every change of state and GatehouseApprovers on every approval. For
// example:
//
//	temporal workflow list --query 'GatehouseState = "pending" AND GatehouseVirtualServer = "infra"'
//	temporal workflow list --query 'GatehouseApprovers = "alice"'
//
// A namespace must have the attributes before a workflow uses them, or its
// workflow task fails; hence the flag. The embedded server (package
// devserver) registers them in its namespace. On an external cluster the
// gateway calls [EnsureSearchAttributes] at startup, which needs the
// operator API; where the gateway may not use it, it runs without search
// attributes until an operator creates them once:
//
//	temporal operator search-attribute create --namespace <ns> --name GatehouseState --type Keyword
//	temporal operator search-attribute create --namespace <ns> --name GatehouseAgent --type Keyword
//	temporal operator search-attribute create --namespace <ns> --name GatehouseVirtualServer --type Keyword
//	temporal operator search-attribute create --namespace <ns> --name GatehouseTool --type Keyword
//	temporal operator search-attribute create --namespace <ns> --name GatehouseApprovers --type KeywordList
//
// Search attribute values are stored in clear in the visibility store: they
// hold the agent's and approvers' identities and the call's names, never its
// arguments.
//
// # Notifying approvers: webhooks
//
// When a call starts waiting, and again when it escalates, the workflow runs
// the activity NotifyApprovers for the groups that may decide now. It runs
// beside the wait, not before it: decisions are accepted while a notification
// is retried (every 2s to 1 min, for up to 30 minutes), a failure is only
// logged, and a workflow that closes waits a few seconds at most for a
// notification still in flight. [Activities].Notifier delivers; nil sends
// nothing.
//
// [WebhookNotifier] POSTs to every webhook of every group notified:
//
//	POST /hooks/approvals HTTP/1.1
//	Content-Type: application/json
//	X-Gatehouse-Event: approval.requested
//	X-Gatehouse-Delivery: appr-1/requested/secops
//	X-Gatehouse-Timestamp: 1800000000
//	X-Gatehouse-Signature: sha256=6fcf5be6…
//
//	{"event": "approval.requested", "group": "secops",
//	 "approval": {"id": "appr-1", "agent": "deploy-bot", "virtualServer": "infra",
//	  "tool": "delete_bucket", "arguments": {"bucket": "prod-logs", "token": "[REDACTED]"},
//	  "reasons": ["rule:destructive"], "rule": "destructive", "quorum": 2,
//	  "approvers": [], "deadline": "2027-01-15T09:00:00Z"}}
//
// The event is "approval.requested" or "approval.escalated" (then "approvers"
// lists the approvals given before the escalation, which still count).
// Arguments are redacted. A receiver answers 2xx; network errors, 408, 429
// and 5xx are retried, other answers are not. A retry delivers again to every
// webhook of the notification with the same X-Gatehouse-Delivery (approval
// ID, kind and group), by which receivers drop duplicates.
//
// A webhook with a secret signs its deliveries: X-Gatehouse-Signature is
// "sha256=" and the hex HMAC-SHA256, keyed with the secret, of the
// X-Gatehouse-Timestamp value, a ".", and the raw body. A receiver computes
// the same, compares in constant time ([VerifySignature] does both), and
// rejects timestamps more than a few minutes from its clock. With openssl:
//
//	printf '%s.%s' "$timestamp" "$body" | openssl dgst -sha256 -hmac "$secret"
package workflows
