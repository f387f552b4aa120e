package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/identity/idptest"
	"github.com/gatehouse-dev/gatehouse/workflows/devserver"
)

// approvalConfig: agent ci-bot (team dev) may use deploy and echo on ops;
// the approval rule prod-deploys holds deploys to prod for two approvers
// of group sre.
func approvalConfig(t *testing.T, upstream, keySHA string) string {
	t.Helper()
	return fmt.Sprintf(`listen: LISTEN
upstreams:
  - {name: alpha, transport: streamable-http, url: %s}
virtual_servers:
  - name: ops
    include: [{upstream: alpha, tools: [deploy, echo]}]
agents:
  - {name: ci-bot, team: dev, api_keys: [{sha256: %s}]}
approval_rules:
  - {name: prod-deploys, approver_groups: [sre], quorum: 2, tools: [deploy], when: 'args.env == "prod"', timeout: 1h}
grants:
  - {name: ci-ops, subject: {agent: ci-bot}, target: {virtual_server: ops, tools: ["*"]}, effect: allow}
`, upstream, keySHA)
}

// approverToken creates an admin token with the approver role.
func approverToken(t *testing.T, g *gateway, name, team string, groups ...string) string {
	t.Helper()
	d := mustGQL(t, g, `mutation($n: String!, $g: [String!], $t: String) { createAdminToken(input: {name: $n, roles: ["approver"], groups: $g, team: $t}) { token } }`,
		map[string]any{"n": name, "g": groups, "t": team})
	return dig(d, "createAdminToken", "token").(string)
}

// pendingIDs lists the pending approval IDs of tool, oldest first.
func pendingIDs(t *testing.T, g *gateway, token, tool string) []string {
	t.Helper()
	r := gql(t, g, token, `query($t: String!) { pendingApprovals(where: {tool: $t}) { edges { node { approvalID } } } }`, map[string]any{"t": tool})
	if len(r.Errors) > 0 {
		t.Fatalf("pendingApprovals: %+v", r.Errors)
	}
	var ids []string
	edges, _ := dig(r.Data, "pendingApprovals", "edges").([]any)
	for _, e := range edges {
		ids = append(ids, dig(e, "node", "approvalID").(string))
	}
	return ids
}

// waitPending waits for n pending approvals of tool and returns them.
func waitPending(t *testing.T, g *gateway, token, tool string, n int) []string {
	t.Helper()
	var ids []string
	pollUntil(t, fmt.Sprintf("%d pending approvals of %s", n, tool), func() bool {
		ids = pendingIDs(t, g, token, tool)
		return len(ids) == n
	})
	return ids
}

// decide approves (reason "") or denies an approval as token and returns
// the GraphQL errors' codes (nil when accepted).
func decide(t *testing.T, g *gateway, token, id string, approve bool, text string) []string {
	t.Helper()
	q := `mutation($id: String!, $c: String) { approveCall(id: $id, comment: $c) { state } }`
	if !approve {
		q = `mutation($id: String!, $c: String!) { denyCall(id: $id, reason: $c) { state } }`
	}
	r := gql(t, g, token, q, map[string]any{"id": id, "c": text})
	var codes []string
	for _, e := range r.Errors {
		codes = append(codes, fmt.Sprint(e.Extensions["code"]))
	}
	return codes
}

func approvalState(t *testing.T, g *gateway, token, id string) map[string]any {
	t.Helper()
	r := gql(t, g, token, `query($id: String!) { approval(approvalId: $id) { state approvers reason executedAt decisions arguments reasons rule } }`, map[string]any{"id": id})
	if len(r.Errors) > 0 {
		t.Fatalf("approval: %+v", r.Errors)
	}
	m, _ := r.Data["approval"].(map[string]any)
	return m
}

func deployCount(up *proc) int {
	return len(slices.DeleteFunc(upstreamCalls(up.Output(), "alpha"), func(c string) bool { return c != "deploy" }))
}

// settledDeploys is deployCount once it reaches want (or after 5 s): the
// upstream logs a call as it receives it, but its log reaches the test
// through a pipe, so it can lag a call that has already returned. A count
// above want is returned at once.
func settledDeploys(up *proc, want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := deployCount(up)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestApprovalEndToEnd: an agent's deploy to prod waits while approvers
// decide through GraphQL; quorum, team and double-vote rules hold; the
// approved call runs once and its result reaches the waiting agent; a
// denial reaches it with its reason; a cancelled call is recorded.
func TestApprovalEndToEnd(t *testing.T) {
	t.Parallel()
	upURL, up := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	g := startGatewayArgs(t, approvalConfig(t, upURL, sha), []string{"--approvals=true", "--approval-hold", "2m"})
	if _, rd := readyz(t, g); rd["approvals"] != "ready" {
		t.Errorf("/readyz approvals = %v, want ready", rd["approvals"])
	}
	alice := approverToken(t, g, "alice", "sre", "sre")
	bob := approverToken(t, g, "bob", "sre", "sre")
	mallory := approverToken(t, g, "mallory", "dev", "sre") // the agent's own team
	outsider := approverToken(t, g, "olga", "qa", "qa")

	var mu sync.Mutex
	var progress []string
	cs := connect(t, "streamable-http", g.url("ops"), key, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, r.Params.Message)
			mu.Unlock()
		},
	})

	// Not prod: the rule's condition does not hold; runs at once.
	if got := callText(t, cs, "deploy", map[string]any{"service": "api", "env": "dev"}); !strings.Contains(got, "deployed api to dev") {
		t.Fatalf("dev deploy: %q", got)
	}

	type result struct {
		res *mcp.CallToolResult
		err error
	}
	call := func(ctx context.Context, args map[string]any) chan result {
		ch := make(chan result, 1)
		go func() {
			p := &mcp.CallToolParams{Name: "deploy", Arguments: args}
			p.SetProgressToken("deploy-" + fmt.Sprint(args["service"]))
			res, err := cs.CallTool(ctx, p)
			ch <- result{res, err}
		}()
		return ch
	}

	t.Run("approve with quorum", func(t *testing.T) {
		before := settledDeploys(up, 1) // the dev deploy
		done := call(ctxT(t), map[string]any{"service": "api AKIAIOSFODNN7EXAMPLE", "env": "prod"})
		id := waitPending(t, g, alice, "deploy", 1)[0]
		a := approvalState(t, g, alice, id)
		if a["rule"] != "prod-deploys" || !strings.Contains(fmt.Sprint(a["reasons"]), "prod-deploys") {
			t.Errorf("rule and reasons: %v", a)
		}
		if args := fmt.Sprint(a["arguments"]); strings.Contains(args, "AKIAIOSFODNN7EXAMPLE") || !strings.Contains(args, "prod") {
			t.Errorf("approvers must see redacted arguments: %s", args)
		}
		if codes := decide(t, g, mallory, id, true, ""); !slices.Equal(codes, []string{"FORBIDDEN"}) {
			t.Errorf("same-team approval: %v, want FORBIDDEN", codes)
		}
		if codes := decide(t, g, outsider, id, true, ""); !slices.Equal(codes, []string{"FORBIDDEN"}) {
			t.Errorf("approval outside the groups: %v, want FORBIDDEN", codes)
		}
		if codes := decide(t, g, alice, id, true, "looks fine"); codes != nil {
			t.Fatalf("alice approves: %v", codes)
		}
		if codes := decide(t, g, alice, id, true, ""); !slices.Equal(codes, []string{"FORBIDDEN"}) {
			t.Errorf("second vote by alice: %v, want FORBIDDEN", codes)
		}
		select {
		case r := <-done:
			t.Fatalf("call returned with one of two approvals: %+v", r)
		case <-time.After(200 * time.Millisecond):
		}
		pollUntil(t, "progress 1/2", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(progress, "waiting for approval "+id+": 1/2 approvals")
		})
		if codes := decide(t, g, bob, id, true, ""); codes != nil {
			t.Fatalf("bob approves: %v", codes)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("approved call: %v", r.err)
		}
		if got := textOf(t, r.res); !strings.Contains(got, "deployed api AKIAIOSFODNN7EXAMPLE to prod") || r.res.IsError {
			t.Fatalf("approved call result: %q", got)
		}
		if n := settledDeploys(up, before+1) - before; n != 1 {
			t.Errorf("upstream deploys: %d, want 1", n)
		}
		pollUntil(t, "approval approved", func() bool { return approvalState(t, g, alice, id)["state"] == "approved" })
		a = approvalState(t, g, alice, id)
		if fmt.Sprint(a["approvers"]) != "[token:alice token:bob]" || a["executedAt"] == nil {
			t.Errorf("approval record: %v", a)
		}
		if codes := decide(t, g, bob, id, false, "too late"); !slices.Equal(codes, []string{"CONFLICT"}) {
			t.Errorf("deciding a closed approval: %v, want CONFLICT", codes)
		}
		m := metricsText(t, g)
		for _, want := range []string{`gatehouse_approvals_held_total{rule="prod-deploys",vs="ops"} 1`,
			`gatehouse_approvals_closed_total{rule="prod-deploys",state="approved"} 1`, `gatehouse_approval_decision_seconds_count{rule="prod-deploys"} 1`} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("deny", func(t *testing.T) {
		before := deployCount(up)
		done := call(ctxT(t), map[string]any{"service": "db", "env": "prod"})
		id := waitPending(t, g, alice, "deploy", 1)[0]
		if codes := decide(t, g, alice, id, false, "change freeze until Monday"); codes != nil {
			t.Fatalf("deny: %v", codes)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("denied call: %v", r.err)
		}
		// The agent gets the reason, not the approver's name; the record
		// has both.
		if got := textOf(t, r.res); !r.res.IsError || got != "denied by an approver: change freeze until Monday" {
			t.Errorf("denied call result: %q (isError %v)", got, r.res.IsError)
		}
		if a := approvalState(t, g, alice, id); a["reason"] != "denied by token:alice: change freeze until Monday" {
			t.Errorf("the approval record's reason = %v", a["reason"])
		}
		if n := deployCount(up) - before; n != 0 {
			t.Errorf("a denied call reached the upstream %d times", n)
		}
	})

	t.Run("agent cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctxT(t))
		done := call(ctx, map[string]any{"service": "queue", "env": "prod"})
		id := waitPending(t, g, alice, "deploy", 1)[0]
		cancel()
		<-done
		pollUntil(t, "approval cancelled", func() bool { return approvalState(t, g, alice, id)["state"] == "cancelled" })
		if codes := decide(t, g, alice, id, true, ""); !slices.Equal(codes, []string{"CONFLICT"}) {
			t.Errorf("approving a cancelled call: %v, want CONFLICT", codes)
		}
	})

	t.Run("roles", func(t *testing.T) {
		// A viewer neither reads nor decides approvals; an unknown ID is NOT_FOUND.
		viewer := dig(mustGQL(t, g, `mutation { createAdminToken(input: {name: "v", roles: ["viewer"]}) { token } }`, nil), "createAdminToken", "token").(string)
		if r := gql(t, g, viewer, `{ pendingApprovals { totalCount } }`, nil); len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "FORBIDDEN" {
			t.Errorf("viewer reads approvals: %+v", r.Errors)
		}
		if codes := decide(t, g, viewer, "apr-x", true, ""); !slices.Equal(codes, []string{"FORBIDDEN"}) {
			t.Errorf("viewer decides: %v", codes)
		}
		if codes := decide(t, g, alice, "apr-nope", true, ""); !slices.Equal(codes, []string{"NOT_FOUND"}) {
			t.Errorf("unknown approval: %v", codes)
		}
	})
}

// TestApprovalSurvivesCrash: approvals pending when the gateway is killed
// with SIGKILL are still listed after a restart; approving them (one
// through the CLI) runs each call exactly once; an agent whose hold time
// ran out gets the stored result by retrying the identical call, and a
// call with other arguments needs its own approval.
func TestApprovalSurvivesCrash(t *testing.T) {
	t.Parallel()
	upURL, up := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	args := []string{"--approvals=true", "--approval-hold", "1s"}
	g := startGatewayArgs(t, approvalConfig(t, upURL, sha), args)
	alice := approverToken(t, g, "alice", "sre", "sre")
	bob := approverToken(t, g, "bob", "sre", "sre")
	cs := connect(t, "streamable-http", g.url("ops"), key, nil)

	held := func(cs *mcp.ClientSession, service string) string {
		t.Helper()
		res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": service, "env": "prod"}})
		if err != nil {
			t.Fatalf("deploy %s: %v", service, err)
		}
		sc, _ := res.StructuredContent.(map[string]any)
		id, _ := sc["approvalId"].(string)
		if !res.IsError || id == "" || sc["state"] != "pending" || !strings.Contains(textOf(t, res), "Retry the identical call") {
			t.Fatalf("deploy %s after the hold time: %+v", service, res)
		}
		return id
	}
	web := held(cs, "web")
	cache := held(cs, "cache")
	if web == cache {
		t.Fatal("different calls got the same approval ID")
	}
	if got := held(cs, "web"); got != web {
		t.Errorf("an identical retry while pending joined %s, want %s", got, web)
	}

	// Kill the gateway mid-approval and start it again on the same data.
	g.signal(9)
	<-g.done
	g2 := restartGateway(t, g, args)
	if ids := waitPending(t, g2, alice, "deploy", 2); !slices.Equal(ids, []string{web, cache}) {
		t.Fatalf("pending after restart: %v, want [%s %s]", ids, web, cache)
	}
	for _, id := range []string{web, cache} {
		if codes := decide(t, g2, alice, id, true, ""); codes != nil {
			t.Fatalf("alice approves %s: %v", id, codes)
		}
	}
	// bob approves web through the CLI.
	env := []string{"GATEHOUSE_SERVER=http://" + g2.addr, "GATEHOUSE_ADMIN_TOKEN=" + bob}
	out, errOut, code := runGatehouseEnv(t, env, "", "approvals", "list")
	if code != 0 || !strings.Contains(out, web) || !strings.Contains(out, "1/2") {
		t.Errorf("approvals list: %d %s %s", code, out, errOut)
	}
	out, errOut, code = runGatehouseEnv(t, env, "", "approvals", "show", web)
	if code != 0 || !strings.Contains(out, "prod-deploys") || !strings.Contains(out, "token:alice approved") {
		t.Errorf("approvals show: %d %s %s", code, out, errOut)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"approvals", "deny", web}, "needs --reason"},
		{[]string{"approvals", "approve"}, "needs an approval ID"},
		{[]string{"approvals", "vote", web}, "unknown subcommand"},
		{[]string{"approvals", "show", "apr-nope"}, "no approval"},
	} {
		if _, errOut, code := runGatehouseEnv(t, env, "", bad.args...); code == 0 || !strings.Contains(errOut, bad.want) {
			t.Errorf("gatehouse %v: exit %d, stderr %q, want an error saying %q", bad.args, code, errOut, bad.want)
		}
	}
	out, errOut, code = runGatehouseEnv(t, env, "", "approvals", "approve", web, "--comment", "ok")
	if code != 0 || !strings.Contains(out, web+": executing (2/2 approvals)") {
		t.Errorf("approvals approve: %d %s %s", code, out, errOut)
	}
	if codes := decide(t, g2, bob, cache, true, ""); codes != nil {
		t.Fatalf("bob approves cache: %v", codes)
	}
	for _, id := range []string{web, cache} {
		pollUntil(t, id+" approved", func() bool { return approvalState(t, g2, alice, id)["state"] == "approved" })
	}
	if n := settledDeploys(up, 2); n != 2 {
		t.Fatalf("upstream deploys after approving two calls: %d, want 2", n)
	}

	// The agent retries: the stored result, no second deploy.
	cs2 := connect(t, "streamable-http", g2.url("ops"), key, nil)
	first := callText(t, cs2, "deploy", map[string]any{"service": "web", "env": "prod"})
	if !strings.Contains(first, "deployed web to prod") {
		t.Fatalf("retry after approval: %q", first)
	}
	if n := deployCount(up); n != 2 {
		t.Errorf("the retry reached the upstream: %d deploys, want 2", n)
	}
	// The result was delivered: the next identical call is a new request
	// and needs a new approval; so do other arguments.
	if id := held(cs2, "web"); id == web {
		t.Errorf("a new identical call reused delivered approval %s", web)
	}
	if id := held(cs2, "web-2"); id == web {
		t.Error("changed arguments reused the approval")
	}
	if n := deployCount(up); n != 2 {
		t.Errorf("unapproved calls reached the upstream: %d deploys, want 2", n)
	}
	// The audit trail: decisions recorded, and the log has every step.
	a := approvalState(t, g2, alice, web)
	if !strings.Contains(fmt.Sprint(a["decisions"]), "token:bob") || a["executedAt"] == nil {
		t.Errorf("audit record of %s: %v", web, a)
	}
	// decided x2, executed, closed; read through a pipe, so waited for
	pollUntil(t, "4 approval audit log lines of "+web+" after restart", func() bool { return countApprovalEvents(g2, web) >= 4 })
}

func countApprovalEvents(g *gateway, id string) int {
	n := 0
	for _, e := range logEntries(g) {
		if e["msg"] == "approval audit" && e["approval"] == id {
			n++
		}
	}
	return n
}

// restartGateway starts a gateway again on g's configuration, data and
// address.
func restartGateway(t *testing.T, g *gateway, args []string) *gateway {
	t.Helper()
	tokenFile := filepath.Join(filepath.Dir(g.config), "admin.token")
	p := startProc(t, filepath.Join(binDir, "gatehouse"), append([]string{"serve", "--config", g.config, "--admin-token-file", tokenFile}, args...)...)
	g2 := &gateway{proc: p, addr: g.addr, config: g.config, adminToken: g.adminToken}
	waitReady(t, g2)
	return g2
}

// TestApprovalDedicatedWorker: a gateway that only starts approval
// workflows (--approval-worker=false) and a `gatehouse worker` on the same
// PostgreSQL store, connected to the gateway's Temporal with
// --temporal-address: the worker runs the approved call.
func TestApprovalDedicatedWorker(t *testing.T) {
	t.Parallel()
	pgURL := freshPostgresDB(t)
	upURL, up := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	env := []string{"GATEHOUSE_DATABASE_URL=" + pgURL}
	g := startGatewayArgs(t, approvalConfig(t, upURL, sha), []string{"--approvals=true", "--approval-worker=false", "--approval-hold", "1m"}, env...)
	// The log reaches us through a pipe: wait for the line rather than
	// expect it the moment the gateway answers /readyz.
	var ready map[string]any
	pollUntil(t, "the gateway's Temporal address in its log", func() bool {
		for _, e := range logEntries(g) {
			if e["msg"] == "approval workflows ready" {
				ready = e
			}
		}
		return ready != nil
	})
	// The embedded server speaks mutual TLS only: a process without the
	// client certificate can neither run workflows nor decide them.
	nocert := startProcEnv(t, env, filepath.Join(binDir, "gatehouse"), "worker", "--temporal-address", fmt.Sprint(ready["temporal_address"]), "--data-dir", t.TempDir())
	<-nocert.done
	if out := nocert.Output(); !strings.Contains(out, "connect to temporal at") {
		t.Errorf("a worker without the client certificate:\n%s", out)
	}
	w := startProcEnv(t, env, filepath.Join(binDir, "gatehouse"), "worker", "--temporal-address", fmt.Sprint(ready["temporal_address"]),
		"--temporal-tls-ca", fmt.Sprint(ready["temporal_tls_ca"]), "--temporal-tls-cert", fmt.Sprint(ready["temporal_tls_cert"]),
		"--temporal-tls-key", fmt.Sprint(ready["temporal_tls_key"]), "--temporal-tls-server-name", fmt.Sprint(ready["temporal_tls_server_name"]),
		"--data-dir", t.TempDir())
	pollUntil(t, "worker running", func() bool { return strings.Contains(w.Output(), "gatehouse worker running") })

	cs := connect(t, "streamable-http", g.url("ops"), key, nil)
	if got, _ := approvedProdDeploy(t, g, cs, "api"); !strings.Contains(got, "deployed api to prod") {
		t.Fatalf("approved call through the worker: %q", got)
	}
	if n := settledDeploys(up, 1); n != 1 {
		t.Errorf("upstream deploys: %d, want 1", n)
	}
	pollUntil(t, "the worker's log of the executed call", func() bool { return strings.Contains(w.Output(), `"msg":"approved call executed"`) })
	if strings.Contains(g.Output(), `"msg":"approved call executed"`) {
		t.Errorf("the call should have been executed by the worker, not the gateway")
	}
}

// metricValue is the value of the unlabelled metric name in the /metrics
// text m; the test fails when m lacks it.
func metricValue(t *testing.T, m, name string) float64 {
	t.Helper()
	for line := range strings.Lines(m) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
}

// metricsText fetches the gateway's /metrics.
func metricsText(t *testing.T, g *gateway) string {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestApprovalOIDCApprover: an approver signs in to the admin API with a
// JWT of an OIDC provider marked admin: true; its roles give its admin
// role and approver groups, and the decision is recorded under its OIDC
// identity. A JWT without an admin role is refused.
func TestApprovalOIDCApprover(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	upURL, up := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	cfg := fmt.Sprintf(`auth:
  oidc:
    - {name: corp, issuer: %q, audience: [gatehouse], claims: {agent: sub, team: team, roles: roles}, admin: true}
`, idp.Issuer()) + approvalConfig(t, upURL, sha)
	g := startGatewayArgs(t, cfg, []string{"--approvals=true", "--approval-hold", "1m"})
	alice := idp.Token(map[string]any{"sub": "alice", "aud": "gatehouse", "roles": []string{"approver", "sre"}, "team": "sre"})
	bob := approverToken(t, g, "bob", "sre", "sre")

	if r := gql(t, g, alice, `{ me { name roles } }`, nil); len(r.Errors) > 0 || dig(r.Data, "me", "name") != "oidc:corp:alice" {
		t.Fatalf("me as an OIDC approver: %+v %v", r.Errors, r.Data)
	}
	noRole := idp.Token(map[string]any{"sub": "mallory", "aud": "gatehouse", "roles": []string{"sre"}, "team": "sre"})
	if r := gql(t, g, noRole, `{ me { name } }`, nil); len(r.Errors) == 0 {
		t.Errorf("a JWT without an admin role signed in: %v", r.Data)
	}

	cs := connect(t, "streamable-http", g.url("ops"), key, nil)
	got, id := approvedProdDeploy(t, g, cs, "oidc", alice, bob)
	if !strings.Contains(got, "deployed oidc to prod") {
		t.Fatalf("approved call: %q", got)
	}
	if a := approvalState(t, g, alice, id); fmt.Sprint(a["approvers"]) != "[oidc:corp:alice token:bob]" {
		t.Errorf("approvers = %v", a["approvers"])
	}
	if n := settledDeploys(up, 1); n != 1 {
		t.Errorf("upstream deploys: %d, want 1", n)
	}
}

// TestApprovalTemporalUnreachableAtStart: a gateway whose external
// Temporal is down when it starts serves anyway. Calls that need no
// approval go through; one that needs approval is refused with -32056
// (nothing runs) and /readyz says why. Once Temporal answers, the gateway
// connects by itself, without a restart, and a held call is approved and
// runs.
func TestApprovalTemporalUnreachableAtStart(t *testing.T) {
	t.Parallel()
	upURL, up := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	temporalAddr := freeAddr(t)
	temporalDir := t.TempDir()
	tlsFiles, err := devserver.MakeTLS(temporalDir)
	if err != nil {
		t.Fatal(err)
	}
	g := startGatewayArgs(t, approvalConfig(t, upURL, sha), []string{"--approvals=true", "--temporal-address", temporalAddr, "--approval-hold", "1m",
		"--temporal-tls-ca", tlsFiles.CA, "--temporal-tls-cert", tlsFiles.Cert, "--temporal-tls-key", tlsFiles.Key, "--temporal-tls-server-name", devserver.ServerName})
	if _, rd := readyz(t, g); !strings.HasPrefix(fmt.Sprint(rd["approvals"]), "unavailable: ") {
		t.Errorf("/readyz approvals with Temporal down = %v", rd["approvals"])
	}
	cs := connect(t, "streamable-http", g.url("ops"), key, nil)
	if got := callText(t, cs, "deploy", map[string]any{"service": "api", "env": "staging"}); !strings.Contains(got, "deployed api to staging") {
		t.Fatalf("a call that needs no approval: %q", got)
	}
	_, err = cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": "api", "env": "prod"}})
	if we := rpcError(t, err); we.Code != -32056 {
		t.Fatalf("a call that needs approval with Temporal down: %d %s", we.Code, we.Message)
	}
	if n := settledDeploys(up, 1); n != 1 {
		t.Fatalf("upstream deploys: %d, want only the staging one", n)
	}

	srv, err := devserver.Start(context.Background(), devserver.Options{DataDir: temporalDir, HostPort: temporalAddr,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	deadline := time.Now().Add(60 * time.Second)
	for !slices.ContainsFunc(logEntries(g), func(e map[string]any) bool { return e["msg"] == "approval workflows ready" }) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not connect to Temporal within 60 s of its start:\n%s", g.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, rd := readyz(t, g); rd["approvals"] != "ready" {
		t.Errorf("/readyz approvals once Temporal answers = %v", rd["approvals"])
	}

	if got, _ := approvedProdDeploy(t, g, cs, "api"); !strings.Contains(got, "deployed api to prod") {
		t.Fatalf("the approved call: %q", got)
	}
}

// approvedProdDeploy calls deploy of service to prod on cs, which
// approvalConfig holds for two approvers of group sre; the approvers'
// tokens approve it (without any, two approver tokens are made), and it
// returns what the call answered (its error's text if it failed) and the
// approval's ID.
func approvedProdDeploy(t *testing.T, g *gateway, cs *mcp.ClientSession, service string, approvers ...string) (answer, id string) {
	t.Helper()
	if len(approvers) == 0 {
		approvers = []string{approverToken(t, g, "alice", "sre", "sre"), approverToken(t, g, "bob", "sre", "sre")}
	}
	done := make(chan string, 1)
	go func() {
		res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": service, "env": "prod"}})
		if err != nil {
			done <- err.Error()
			return
		}
		done <- textOf(t, res)
	}()
	id = waitPending(t, g, approvers[0], "deploy", 1)[0]
	for _, tok := range approvers {
		if codes := decide(t, g, tok, id, true, ""); codes != nil {
			t.Fatalf("approve: %v", codes)
		}
	}
	return <-done, id
}
