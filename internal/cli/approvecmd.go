package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

const approvalsUsage = `Usage: gatehouse approvals <list|show|approve|deny> [flags] [ID]

Lists and decides tool calls held for human approval, through the running
gateway's admin API (an admin token with the approver role, or admin; for
list and show also auditor).

  gatehouse approvals list [--all] [--tool T] [--agent A] [--json]
  gatehouse approvals show ID [--json]
  gatehouse approvals approve ID [--comment TEXT]
  gatehouse approvals deny ID --reason TEXT

list shows pending calls oldest first (--all: every state, newest first).
show prints one approval with its redacted arguments, the reasons it was
held and its decisions. approve and deny decide as the token's holder: the
token's groups (and roles) must include one of the call's approver groups.

Flags:
`

// approvalFields are the Approval fields the commands read.
const approvalFields = `approvalID state agent team virtualServer tool arguments reasons rule approverGroups quorum approvers decisions escalated deadline reason createdAt closedAt`

// approvalView is an Approval as the admin API returns it.
type approvalView struct {
	ApprovalID     string          `json:"approvalID"`
	State          string          `json:"state"`
	Agent          string          `json:"agent"`
	Team           string          `json:"team"`
	VirtualServer  string          `json:"virtualServer"`
	Tool           string          `json:"tool"`
	Arguments      json.RawMessage `json:"arguments"`
	Reasons        []string        `json:"reasons"`
	Rule           string          `json:"rule"`
	ApproverGroups []string        `json:"approverGroups"`
	Quorum         int             `json:"quorum"`
	Approvers      []string        `json:"approvers"`
	Decisions      json.RawMessage `json:"decisions"`
	Escalated      bool            `json:"escalated"`
	Deadline       *time.Time      `json:"deadline"`
	Reason         string          `json:"reason"`
	CreatedAt      time.Time       `json:"createdAt"`
	ClosedAt       *time.Time      `json:"closedAt"`
}

func approvalsCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("approvals", flag.ContinueOnError)
	all := fs.Bool("all", false, "list: every approval, not only pending ones")
	tool := fs.String("tool", "", "list: only this tool")
	agent := fs.String("agent", "", "list: only this agent")
	limit := fs.Int("n", 50, "list: at most this many (up to 50)")
	asJSON := fs.Bool("json", false, "list, show: print JSON")
	comment := fs.String("comment", "", "approve: comment kept with the decision")
	reason := fs.String("reason", "", "deny: the reason the agent is given (required)")
	var af adminFlags
	af.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), approvalsUsage)
		fs.PrintDefaults()
	}
	if len(args) > 0 && isHelp(args[0]) {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if len(args) == 0 {
		fs.Usage()
		return usageError{fmt.Errorf("give a subcommand: list, show, approve or deny")}
	}
	sub := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	// Flags may follow the ID too.
	rest := fs.Args()
	var id string
	if len(rest) > 0 {
		id = rest[0]
		if err := parseFlags(fs, rest[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
		}
	}
	needID := sub != "list"
	switch {
	case sub != "list" && sub != "show" && sub != "approve" && sub != "deny":
		return usageError{fmt.Errorf("unknown subcommand %q (list, show, approve or deny)", sub)}
	case needID && id == "":
		return usageError{fmt.Errorf("approvals %s needs an approval ID (apr-...)", sub)}
	case *limit < 1 || *limit > 50:
		return usageError{fmt.Errorf("-n must be between 1 and 50")}
	case !needID && id != "":
		return usageError{fmt.Errorf("unexpected argument %q", id)}
	case sub == "deny" && strings.TrimSpace(*reason) == "":
		return usageError{fmt.Errorf("approvals deny needs --reason: the agent is told why")}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return listApprovals(ctx, c, stdout, *all, *tool, *agent, *limit, *asJSON)
	case "show":
		var out struct {
			Approval *approvalView `json:"approval"`
		}
		if err := c.do(ctx, `query($id: String!) { approval(approvalId: $id) { `+approvalFields+` } }`, map[string]any{"id": id}, &out); err != nil {
			return fmt.Errorf("approvals show: %w", err)
		}
		if out.Approval == nil {
			return fmt.Errorf("approvals show: no approval %q", id)
		}
		if *asJSON {
			return writeJSON(stdout, out.Approval)
		}
		return printApproval(stdout, out.Approval)
	default:
		var out struct {
			V struct {
				ApprovalID string   `json:"approvalId"`
				State      string   `json:"state"`
				Approvers  []string `json:"approvers"`
				Quorum     int      `json:"quorum"`
			} `json:"v"`
		}
		q := `mutation($id: String!, $c: String) { v: approveCall(id: $id, comment: $c) { approvalId state approvers quorum } }`
		vars := map[string]any{"id": id, "c": *comment}
		if sub == "deny" {
			q = `mutation($id: String!, $r: String!) { v: denyCall(id: $id, reason: $r) { approvalId state approvers quorum } }`
			vars = map[string]any{"id": id, "r": *reason}
		}
		if err := c.do(ctx, q, vars, &out); err != nil {
			return fmt.Errorf("approvals %s: %w", sub, err)
		}
		fmt.Fprintf(stdout, "%s: %s (%d/%d approvals)\n", out.V.ApprovalID, out.V.State, len(out.V.Approvers), out.V.Quorum)
		return nil
	}
}

func listApprovals(ctx context.Context, c *adminClient, w io.Writer, all bool, tool, agent string, n int, asJSON bool) error {
	where := map[string]any{}
	if tool != "" {
		where["tool"] = tool
	}
	if agent != "" {
		where["agent"] = agent
	}
	field, order := "pendingApprovals", ""
	if all {
		field, order = "approvals", `, orderBy: [{field: CREATED_AT, direction: DESC}]`
	}
	q := `query($n: Int, $w: ApprovalWhereInput) { list: ` + field + `(first: $n, where: $w` + order + `) { totalCount edges { node { ` + approvalFields + ` } } } }`
	var out struct {
		List struct {
			TotalCount int `json:"totalCount"`
			Edges      []struct {
				Node approvalView `json:"node"`
			} `json:"edges"`
		} `json:"list"`
	}
	if err := c.do(ctx, q, map[string]any{"n": n, "w": where}, &out); err != nil {
		return fmt.Errorf("approvals list: %w", err)
	}
	list := make([]approvalView, len(out.List.Edges))
	for i, e := range out.List.Edges {
		list[i] = e.Node
	}
	if asJSON {
		return writeJSON(w, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(w, "no approvals")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tAGENT\tTOOL\tAPPROVALS\tGROUPS\tAGE")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%d/%d\t%s\t%s\n", a.ApprovalID, a.State, a.Agent, a.VirtualServer, a.Tool,
			len(a.Approvers), a.Quorum, strings.Join(a.ApproverGroups, ","), time.Since(a.CreatedAt).Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.List.TotalCount > len(list) {
		fmt.Fprintf(w, "(%d of %d shown; -n for more)\n", len(list), out.List.TotalCount)
	}
	return nil
}

func printApproval(w io.Writer, a *approvalView) error {
	args, _ := json.MarshalIndent(a.Arguments, "  ", "  ")
	fmt.Fprintf(w, "Approval   %s\nState      %s\nAgent      %s", a.ApprovalID, a.State, a.Agent)
	if a.Team != "" {
		fmt.Fprintf(w, " (team %s)", a.Team)
	}
	fmt.Fprintf(w, "\nTool       %s/%s\nRule       %s: %d approval(s) from %s\n", a.VirtualServer, a.Tool, a.Rule, a.Quorum, strings.Join(a.ApproverGroups, ", "))
	if a.Escalated {
		fmt.Fprintln(w, "Escalated  yes")
	}
	if a.Deadline != nil && (a.State == "pending") {
		fmt.Fprintf(w, "Deadline   %s\n", a.Deadline.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Held since %s\nWhy        %s\nArguments  %s\n", a.CreatedAt.Format(time.RFC3339), strings.Join(a.Reasons, "; "), args)
	if len(a.Decisions) > 0 && string(a.Decisions) != "null" {
		var ds []struct {
			Approver string    `json:"approver"`
			Approve  bool      `json:"approve"`
			Comment  string    `json:"comment"`
			At       time.Time `json:"at"`
		}
		_ = json.Unmarshal(a.Decisions, &ds)
		for _, d := range ds {
			verdict := "approved"
			if !d.Approve {
				verdict = "denied"
			}
			fmt.Fprintf(w, "Decision   %s %s at %s", d.Approver, verdict, d.At.Format(time.RFC3339))
			if d.Comment != "" {
				fmt.Fprintf(w, ": %s", d.Comment)
			}
			fmt.Fprintln(w)
		}
	}
	if a.Reason != "" {
		fmt.Fprintf(w, "Outcome    %s\n", a.Reason)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
