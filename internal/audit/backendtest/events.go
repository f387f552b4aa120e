// Package backendtest is the conformance suite every [audit.Backend]
// passes: the embedded engine always, a ClickHouse server when one is
// configured. Both run the same schema (chschema.Migrate) and the same
// queries, so one suite proves they agree.
package backendtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

var (
	agents   = []string{"ci-bot", "claude@alice", "björn-agent", "エージェント-7"}
	teams    = []string{"platform", "finance", "研究"}
	vservers = []string{"eng", "finance"}
	targets  = []string{"github.create_issue", "postgres.query", "file:///srv/docs/überblick.md", "slack.post_message", ""}
	methods  = []string{"tools/call", "tools/call", "tools/call", "resources/read", "tools/list"}
	outcomes = []string{
		audit.OutcomeOK, audit.OutcomeOK, audit.OutcomeOK, audit.OutcomeDenied, audit.OutcomeToolError,
		audit.OutcomeError, audit.OutcomeUnavailable, audit.OutcomeTimeout, audit.OutcomeOK, audit.OutcomeCancelled,
	}
)

// Events are n realistic, deterministic events of node, one every 7.3
// seconds from start: requests of several agents (names in several
// scripts) with findings, grants, approvals, secret bindings and every
// outcome, and a few admin and approval events. argBytes pads the
// arguments of every event to at least that many bytes.
func Events(node string, start time.Time, n, argBytes int) []audit.Event {
	events := make([]audit.Event, n)
	prev := ""
	for i := range events {
		seq := uint64(i + 1)
		e := audit.Event{
			Time:           start.Add(time.Duration(i) * 7300 * time.Millisecond).Add(time.Duration(i%1000) * time.Microsecond).UTC(),
			EventID:        fmt.Sprintf("%s:%d", node, seq),
			Node:           node,
			Seq:            seq,
			PrevHash:       prev,
			Kind:           audit.KindRequest,
			RequestID:      fmt.Sprintf("req-%08x", i*2654435761%(1<<32)),
			SessionID:      fmt.Sprintf("sess-%d", i/10),
			Agent:          agents[i%len(agents)],
			Team:           teams[i%len(teams)],
			Roles:          []string{"developer", "on-call"}[:1+i%2],
			AuthMethod:     []string{"api_key", "oidc", "mtls"}[i%3],
			VirtualServer:  vservers[i%len(vservers)],
			Upstream:       "upstream-" + vservers[i%len(vservers)],
			Method:         methods[i%len(methods)],
			Target:         targets[i%len(targets)],
			Decision:       "allow",
			Grants:         []string{"grant-dev-tools"},
			Rule:           "",
			PolicyRevision: int64(40 + i%3),
			Outcome:        outcomes[i%len(outcomes)],
			AuthUs:         uint32(20 + i%50),
			PolicyUs:       uint32(5 + i%7),
			GuardUs:        uint32(i % 300),
			UpstreamUs:     uint64(1000 + (i*7919)%250000),
			RequestBytes:   uint64(200 + i%4000),
			ResponseBytes:  uint64(1000 + (i*31)%100000),
		}
		args := fmt.Sprintf(`{"title":"Bug #%d: “quotes”, 'apostrophes', back\\slash and\nnewline","labels":["ü","日本語","emoji 🚀"],"n":%d}`, i, i)
		if pad := argBytes - len(args); pad > 0 {
			args = args[:len(args)-1] + `,"body":"` + strings.Repeat("lorem ipsum ", pad/12+1) + `"}`
		}
		e.Arguments = args
		sum := sha256.Sum256([]byte(args))
		e.ArgsHash = hex.EncodeToString(sum[:])
		switch e.Outcome {
		case audit.OutcomeDenied:
			e.Decision = "deny"
			e.Rule = "no-prod-writes"
			e.Grants = nil
			e.Findings = []audit.Finding{
				{Rule: "pii-email", Detector: "regex", Kind: "email", Path: "$.body", Action: "block", Start: 10, End: 31},
				{Rule: "secret-aws", Detector: "entropy", Kind: "aws_access_key", Path: "$.labels[2]", Action: "redact", Start: 0, End: 20},
			}
		case audit.OutcomeError:
			e.ErrorCode = -32603
			e.Error = "upstream said: «internal error» at line 1\n\tretry later"
		case audit.OutcomeToolError:
			e.Error = "tool returned isError"
		case audit.OutcomeTimeout:
			e.ErrorCode = -32001
			e.Error = "upstream timed out after 30s"
		}
		if i%11 == 0 {
			e.Decision = "approve"
			e.ApprovalID = fmt.Sprintf("appr-%d", i)
			e.Approvers = []string{"bob@example.com", "zoë@example.com"}
			e.ApprovalUs = uint64(60_000_000 + i)
		}
		if i%5 == 1 {
			e.SecretBindings = []string{"github-token", "pg-readonly"}
			e.LeaseIDs = []string{fmt.Sprintf("database/creds/ro/%d", i)}
		}
		switch i % 37 {
		case 17:
			e.Kind, e.Method, e.Target, e.Outcome = audit.KindAdmin, "update", "virtual_server/eng", audit.OutcomeOK
		case 29:
			e.Kind, e.Method, e.Outcome = audit.KindApproval, "decided", audit.OutcomeOK
		}
		e.TotalUs = uint64(e.AuthUs) + uint64(e.PolicyUs) + uint64(e.GuardUs) + e.ApprovalUs + e.UpstreamUs
		h := sha256.Sum256([]byte(prev + e.EventID + e.ArgsHash))
		e.Hash = hex.EncodeToString(h[:])
		prev = e.Hash
		events[i] = e
	}
	return events
}
