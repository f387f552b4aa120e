package schema

import (
	"encoding/json"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Approval is one tool call that needed a human's approval: the gateway's
// record of a ToolCallWorkflow (its ID is the workflow ID), kept current
// by the workflow's audit activity. It is runtime data, not configuration:
// it has no place in the configuration document, and writes to it are not
// in the admin change log. Approvers read and decide it through the admin
// API (pendingApprovals, approveCall, denyCall).
type Approval struct {
	ent.Schema
}

// Fields of the Approval.
func (Approval) Fields() []ent.Field {
	noInput := noInput()
	return []ent.Field{
		field.String("approval_id").
			Unique().
			Immutable().
			NotEmpty().
			MaxLen(128).
			Comment("The approval ID: the Temporal workflow ID and the idempotency key of the upstream call. Agents see it in progress notifications and errors.").
			Annotations(entgql.OrderField("APPROVAL_ID")),
		field.Enum("state").
			Values("pending", "executing", "approved", "denied", "timed_out", "cancelled", "failed").
			Default("pending").
			Comment("pending waits for approvers; executing runs the approved call; approved, denied, timed_out, cancelled and failed are final.").
			Annotations(entgql.OrderField("STATE")),
		field.String("agent").
			Immutable().
			Comment("The requesting agent."),
		field.String("team").
			Optional().
			Immutable().
			Comment("The requesting agent's team; empty when it has none."),
		field.String("virtual_server").
			Immutable().
			Comment("Virtual server the agent called."),
		field.String("tool").
			Immutable().
			Comment("Tool name as the agent called it."),
		field.String("upstream").
			Immutable().
			Comment("Upstream that serves the tool."),
		field.String("upstream_tool").
			Immutable().
			Comment("Tool name on the upstream."),
		field.JSON("arguments", json.RawMessage{}).
			Optional().
			Immutable().
			Comment("The call's arguments for display, with secrets and personal data redacted.").
			Annotations(entgql.Type("JSON")),
		field.JSON("call_arguments", json.RawMessage{}).
			Optional().
			Sensitive().
			Comment("The arguments the approved call sends upstream; cleared once the call ran. Never shown.").
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("args_hash").
			Immutable().
			Comment("Hex SHA-256 of the canonical arguments: identical calls have equal hashes."),
		field.Int("attempt").
			Default(0).
			Immutable().
			Comment("How many earlier approvals of the identical call (agent, virtual server, tool, arguments) there were; part of the approval ID.").
			Annotations(noInput),
		field.Strings("reasons").
			Optional().
			Immutable().
			Comment("Why the call was flagged: the grants, guardrail findings and approval rules that required approval."),
		field.String("rule").
			Immutable().
			Comment("The approval rule that governs the call."),
		field.Strings("approver_groups").
			Optional().
			Comment("Groups whose members may decide now (the escalation groups after an escalation)."),
		field.Int("quorum").
			Default(1).
			Comment("Distinct approvals needed."),
		field.Strings("approvers").
			Optional().
			Comment("Approvers who approved so far."),
		field.JSON("decisions", json.RawMessage{}).
			Optional().
			Comment("Every accepted decision in order: [{approver, approve, comment, at}].").
			Annotations(entgql.Type("JSON")),
		field.Bool("escalated").
			Default(false).
			Comment("Whether the approval was escalated after a timeout."),
		field.Time("deadline").
			Optional().
			Nillable().
			Comment("When the current approval window ends."),
		field.String("reason").
			Optional().
			Comment("Why the approval ended as it did: the denial reason, the timeout, the failure."),
		field.Time("decided_at").
			Optional().
			Nillable().
			Comment("When the verdict (quorum reached, denial or timeout) was reached.").
			Annotations(entgql.OrderField("DECIDED_AT")),
		field.Time("executed_at").
			Optional().
			Nillable().
			Comment("When the approved call was sent upstream; null if it never was."),
		field.Time("closed_at").
			Optional().
			Nillable().
			Comment("When the approval reached its final state."),
		field.JSON("result", json.RawMessage{}).
			Optional().
			Sensitive().
			Comment("The upstream's result of the executed call, kept for the agent's retry. Never shown.").
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Bool("delivered").
			Default(false).
			Comment("Whether the agent received the outcome; an identical call after that needs a new approval (or the rule's reuse window)."),
		field.Time("created_at").
			Default(time.Now).
			Immutable().
			Comment("When the call was held for approval.").
			Annotations(entgql.OrderField("CREATED_AT"), noInput),
		field.Time("updated_at").
			Default(time.Now).
			UpdateDefault(time.Now).
			Comment("When the approval last changed.").
			Annotations(entgql.OrderField("UPDATED_AT"), noInput),
	}
}

// Indexes of the Approval: identical calls (retries, reuse) and listing by
// state.
func (Approval) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("agent", "virtual_server", "tool", "args_hash"),
		index.Fields("state", "created_at"),
		index.Fields("updated_at"),
	}
}

// Annotations of the Approval: a read-only Relay connection.
func (Approval) Annotations() []schema.Annotation {
	const comment = "A tool call held for human approval, and what became of it. Readable by the admin, approver and auditor roles; decided with approveCall and denyCall."
	return []schema.Annotation{
		schema.Comment(comment),
		entgql.QueryField().Description(comment),
		entgql.RelayConnection(),
		entgql.MultiOrder(),
	}
}
