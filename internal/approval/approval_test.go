package approval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/ent"
	entapproval "github.com/gatehouse-dev/gatehouse/ent/approval"
	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/approval"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/workflows"
)

// env is a gateway with approval workflows on a real, embedded Temporal
// server, a SQLite store, the admin API, and an upstream that counts its
// deploys.
type env struct {
	store    *ent.Client
	svc      *approval.Service
	gw       *proxy.Gateway
	mcpURL   string
	adminURL string
	upURL    string
	deploys  atomic.Int64
	// upstreamDelay is how long each deploy takes.
	upstreamDelay time.Duration
}

type deployArgs struct {
	Service string `json:"service"`
	Env     string `json:"env"`
}

// shared is one embedded Temporal server for the package's tests (each
// test uses its own task queue).
var shared struct {
	t   *approval.Temporal
	err error
}

func temporalFor(t testing.TB) *approval.Temporal {
	t.Helper()
	if shared.t == nil && shared.err == nil {
		shared.t, shared.err = approval.ConnectTemporal(context.Background(), approval.TemporalOptions{
			DataDir: filepath.Join(tempRoot, "temporal"), Logger: quiet()})
	}
	if shared.err != nil {
		t.Fatalf("embedded temporal: %v", shared.err)
	}
	return shared.t
}

var tempRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "approval-test-")
	if err != nil {
		panic(err)
	}
	tempRoot = dir
	code := m.Run()
	if shared.t != nil {
		shared.t.Close()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// quiet discards logs unless GATEHOUSE_TEST_LOG is set.
func quiet() *slog.Logger {
	if os.Getenv("GATEHOUSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newEnv starts everything; rule is the YAML of the approval rule that
// holds deploys to prod.
func newEnv(t testing.TB, hold time.Duration, rule string) *env {
	t.Helper()
	return newEnvOn(t, "sqlite://"+filepath.Join(t.TempDir(), "gatehouse.db"), hold, rule)
}

// newEnvOn is newEnv with the store at storeURL.
func newEnvOn(t testing.TB, storeURL string, hold time.Duration, rule string) *env {
	t.Helper()
	e := &env{}
	up := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "deploy", Description: "deploy"}, func(ctx context.Context, _ *mcp.CallToolRequest, in deployArgs) (*mcp.CallToolResult, any, error) {
		if e.upstreamDelay > 0 {
			time.Sleep(e.upstreamDelay)
		}
		n := e.deploys.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("deployed %s to %s (#%d)", in.Service, in.Env, n)}}}, nil, nil
	})
	upSrv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	t.Cleanup(upSrv.Close)
	e.upURL = upSrv.URL

	doc, err := config.Parse(fmt.Appendf(nil, `
upstreams: [{name: a, transport: streamable-http, url: %q}]
virtual_servers: [{name: ops, anonymous: true, include: [{upstream: a}]}]
grants: [{subject: {agent: anonymous}, target: {virtual_server: ops, tools: ["*"]}, effect: allow}]
approval_rules:
  - %s
`, upSrv.URL, rule))
	if err != nil {
		t.Fatal(err)
	}
	e.store, err = store.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.gw = proxy.New(doc, &proxy.Options{Logger: quiet()})
	if err := e.gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc := temporalFor(t)
	e.svc = approval.New(approval.Options{Temporal: tc.Client, Store: e.store, Gateway: e.gw,
		TaskQueue: "test-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), Hold: hold,
		KeepAlive: 100 * time.Millisecond, SearchAttributes: tc.SearchAttributes, Logger: quiet()})
	stop, err := e.svc.StartWorker(tc)
	if err != nil {
		t.Fatal(err)
	}
	e.gw.SetApprovals(e.svc)
	gwSrv := httptest.NewServer(e.gw.Handler())
	graph.CheckExpression = policy.CheckExpression
	adminSrv := httptest.NewServer(graph.NewHandler(e.store, &graph.HandlerOptions{Approvals: e.svc.AdminAPI(), Logger: quiet()}))
	t.Cleanup(func() { adminSrv.Close(); gwSrv.Close(); stop(); e.gw.Close() })
	e.mcpURL, e.adminURL = gwSrv.URL+"/mcp/ops", adminSrv.URL
	return e
}

// approver creates an admin token with the approver role in groups.
func (e *env) approver(t testing.TB, name string, groups ...string) string {
	t.Helper()
	token, tok, err := store.CreateAdminToken(context.Background(), e.store, name, []string{"approver"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.AdminToken.UpdateOne(tok).SetGroups(groups).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return token
}

func (e *env) agent(t testing.TB) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: e.mcpURL, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// gql posts a GraphQL operation as token and decodes data into out; it
// returns the errors' codes.
func (e *env) gql(t testing.TB, token, query string, vars map[string]any, out any) []string {
	t.Helper()
	codes, err := e.tryGQL(token, query, vars, out)
	if err != nil {
		t.Fatal(err)
	}
	return codes
}

// tryGQL is gql for goroutines other than the test's: it returns what
// went wrong.
func (e *env) tryGQL(token, query string, vars map[string]any, out any) ([]string, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.adminURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	var codes []string
	for _, e := range r.Errors {
		code := fmt.Sprint(e.Extensions["code"])
		if e.Extensions["code"] == nil {
			code = e.Message
		}
		codes = append(codes, code)
	}
	if out != nil && len(r.Data) > 0 {
		if err := json.Unmarshal(r.Data, out); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

func (e *env) decide(t testing.TB, token, id string, approve bool, text string) []string {
	t.Helper()
	if approve {
		return e.gql(t, token, `mutation($id: String!, $c: String) { approveCall(id: $id, comment: $c) { state } }`, map[string]any{"id": id, "c": text}, nil)
	}
	return e.gql(t, token, `mutation($id: String!, $c: String!) { denyCall(id: $id, reason: $c) { state } }`, map[string]any{"id": id, "c": text}, nil)
}

// pending waits until n approvals are pending and returns their IDs.
func (e *env) pending(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ids, err := e.store.Approval.Query().Where(entapproval.StateEQ(entapproval.StatePending)).
			Order(ent.Asc(entapproval.FieldID)).Select(entapproval.FieldApprovalID).Strings(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending approvals: %v, want %d", ids, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func deploy(cs *mcp.ClientSession, service, where string) (*mcp.CallToolResult, error) {
	return cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": service, "env": where}})
}

const prodRule = `{name: prod, approver_groups: [sre], quorum: 2, tools: [deploy], when: 'args.env == "prod"'}`

func TestQuorumDenialAndExactlyOnce(t *testing.T) {
	quorumDenialAndExactlyOnce(t, newEnv(t, time.Minute, prodRule), "sqlite")
}

// TestPostgresStore runs the approval flow with the store on PostgreSQL.
func TestPostgresStore(t *testing.T) {
	quorumDenialAndExactlyOnce(t, newEnvOn(t, storetest.PostgresURL(t), time.Minute, prodRule), "pg")
}

// quorumDenialAndExactlyOnce deploys services named with prefix: the tests
// share one Temporal server, and approval IDs are derived from the call.
func quorumDenialAndExactlyOnce(t *testing.T, e *env, prefix string) {
	alice, bob, carol := e.approver(t, "alice", "sre"), e.approver(t, "bob", "sre"), e.approver(t, "carol", "sre")
	cs := e.agent(t)

	// Quorum 2 of 3: the call runs once, after the second approval.
	done := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, err := deploy(cs, prefix+"-api", "prod")
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	id := e.pending(t, 1)[0]
	if codes := e.decide(t, alice, id, true, ""); codes != nil {
		t.Fatal(codes)
	}
	if codes := e.decide(t, alice, id, true, ""); len(codes) != 1 || codes[0] != "FORBIDDEN" {
		t.Errorf("double vote: %v", codes)
	}
	if e.deploys.Load() != 0 {
		t.Fatal("ran before quorum")
	}
	if codes := e.decide(t, carol, id, true, ""); codes != nil {
		t.Fatal(codes)
	}
	res := <-done
	if res == nil || res.IsError || !strings.Contains(text(res), "deployed "+prefix+"-api to prod (#1)") {
		t.Fatalf("approved result: %+v", res)
	}
	if codes := e.decide(t, bob, id, true, ""); len(codes) != 1 || codes[0] != "CONFLICT" {
		t.Errorf("vote after quorum: %v", codes)
	}

	// Denial: the agent gets the reason; nothing runs.
	go func() {
		res, err := deploy(cs, prefix+"-db", "prod")
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	id = e.pending(t, 1)[0]
	// A denial says why (the agent is told); a comment is bounded.
	for _, bad := range []string{"", "   ", strings.Repeat("x", 4001)} {
		if codes := e.decide(t, bob, id, false, bad); len(codes) != 1 || codes[0] != "INVALID" {
			t.Errorf("deny with reason of %d bytes: %v, want INVALID", len(bad), codes)
		}
	}
	if codes := e.decide(t, bob, id, false, "change freeze"); codes != nil {
		t.Fatal(codes)
	}
	res = <-done
	if !res.IsError || !strings.Contains(text(res), "change freeze") {
		t.Errorf("denied result: %+v", res)
	}
	if n := e.deploys.Load(); n != 1 {
		t.Errorf("deploys: %d, want 1", n)
	}
}

func TestHoldExpiryRetryAndReuse(t *testing.T) {
	e := newEnv(t, 300*time.Millisecond, `{name: prod, approver_groups: [sre], tools: [deploy], when: 'args.env == "prod"', reuse_window: 1h}`)
	alice := e.approver(t, "alice", "sre")
	cs := e.agent(t)

	res, err := deploy(cs, "api", "prod")
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := res.StructuredContent.(map[string]any)
	id, _ := sc["approvalId"].(string)
	if !res.IsError || id == "" || !strings.Contains(text(res), id) {
		t.Fatalf("after the hold time: %+v %q", res, text(res))
	}
	if codes := e.decide(t, alice, id, true, ""); codes != nil {
		t.Fatal(codes)
	}
	deadline := time.Now().Add(20 * time.Second)
	for e.store.Approval.Query().Where(entapproval.ApprovalID(id), entapproval.StateEQ(entapproval.StateApproved)).ExistX(context.Background()) == false {
		if time.Now().After(deadline) {
			t.Fatal("approval not executed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The identical retry gets the stored result of the one execution.
	res, err = deploy(cs, "api", "prod")
	if err != nil || res.IsError || !strings.Contains(text(res), "(#1)") {
		t.Fatalf("retry: %+v %v", res, err)
	}
	// Within the reuse window, the next identical call runs at once.
	res, err = deploy(cs, "api", "prod")
	if err != nil || res.IsError || !strings.Contains(text(res), "(#2)") {
		t.Fatalf("call within the reuse window: %+v %v", res, err)
	}
	// Other arguments need their own approval.
	res, err = deploy(cs, "web", "prod")
	if err != nil || !res.IsError {
		t.Fatalf("changed arguments: %+v %v", res, err)
	}
	if n := e.deploys.Load(); n != 2 {
		t.Errorf("deploys: %d, want 2", n)
	}
}

// TestWebhookNotifiesGroup: a webhook created through the admin API gets
// a signed notification naming the held call when it is held for its
// group.
func TestWebhookNotifiesGroup(t *testing.T) {
	e := newEnv(t, time.Minute, `{name: prod, approver_groups: [sre], tools: [deploy], when: 'args.env == "prod"'}`)
	alice := e.approver(t, "alice", "sre")
	admin, _, err := store.CreateAdminToken(context.Background(), e.store, "root", []string{"admin"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		header http.Header
		body   []byte
	}
	got := make(chan delivery, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), b}
	}))
	defer hook.Close()
	const secret = "s3cret-s3cret-s3cret"
	if codes := e.gql(t, admin, `mutation($u: String!, $s: String!) { createWebhook(input: {name: "sre-chat", group: "sre", url: $u, secret: $s}) { id } }`,
		map[string]any{"u": hook.URL + "/hook", "s": secret}, nil); codes != nil {
		t.Fatalf("createWebhook: %v", codes)
	}
	var read struct {
		Webhooks struct{ Edges []map[string]any }
	}
	if codes := e.gql(t, admin, `{ webhooks { edges { node { name group url } } } }`, nil, &read); codes != nil || strings.Contains(fmt.Sprint(read), secret) {
		t.Errorf("webhooks read back: %v %v (the secret must not be readable)", codes, read)
	}

	done := make(chan *mcp.CallToolResult, 1)
	go func() {
		// Arguments no other test uses: the tests share one Temporal
		// server, and approval IDs are derived from the call.
		res, err := deploy(e.agent(t), "webhook-api", "prod")
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	id := e.pending(t, 1)[0]
	var d delivery
	select {
	case d = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook delivery")
	}
	ts, _ := strconv.ParseInt(d.header.Get(workflows.HeaderTimestamp), 10, 64)
	if !workflows.VerifySignature(secret, d.header.Get(workflows.HeaderSignature), ts, d.body) {
		t.Errorf("signature does not verify: %q", d.header.Get(workflows.HeaderSignature))
	}
	var p workflows.WebhookPayload
	if err := json.Unmarshal(d.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != workflows.EventApprovalRequested || p.Group != "sre" || p.Approval.ID != id || p.Approval.Tool != "deploy" {
		t.Errorf("payload: %+v", p)
	}
	if codes := e.decide(t, alice, id, true, ""); codes != nil {
		t.Fatal(codes)
	}
	if res := <-done; res == nil || res.IsError {
		t.Errorf("approved call: %+v", res)
	}
}

// BenchmarkApprovalWorkflow measures the workflow path's own cost on the
// embedded Temporal server: an agent's call that needs one approval, an
// approver bot that long-polls approvalChanged and approves through
// GraphQL as soon as the approval appears, and the approved call's
// result back at the agent. Reported: approvals/s (with -cpu parallel
// agents) and the p50/p99 of request → result minus the upstream's own
// time (ms).
func BenchmarkApprovalWorkflow(b *testing.B) {
	e := newEnv(b, time.Minute, `{name: all, approver_groups: [sre], tools: [deploy]}`)
	bot := e.approver(b, "bot", "sre")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.approverBot(ctx, b, bot)

	var seq atomic.Int64
	var mu = make(chan struct{}, 1)
	var lat []time.Duration
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cs := e.agent(b)
		for pb.Next() {
			t0 := time.Now()
			res, err := deploy(cs, fmt.Sprint("svc-", seq.Add(1)), "prod")
			d := time.Since(t0)
			if err != nil || res.IsError {
				b.Errorf("call: %v %+v", err, res)
				return
			}
			mu <- struct{}{}
			lat = append(lat, d)
			<-mu
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	up := upstreamTime(b, e)
	ms := func(d time.Duration) float64 { return float64(max(d-up, 0).Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "approvals/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
}

// approverBot approves every pending approval as soon as it appears: it
// long-polls approvalChanged as its wake-up and approves what
// pendingApprovals lists.
func (e *env) approverBot(ctx context.Context, t testing.TB, token string) {
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	seen := map[string]bool{}
	fail := func(what string, codes []string, err error) bool {
		if err == nil && codes == nil {
			return false
		}
		if ctx.Err() == nil {
			t.Errorf("approver bot: %s: %v %v", what, codes, err)
		}
		return true
	}
	for ctx.Err() == nil {
		var changed struct {
			ApprovalChanged struct{ Cursor string }
		}
		codes, err := e.tryGQL(token, `query($s: Time) { approvalChanged(since: $s, waitSeconds: 5) { cursor } }`, map[string]any{"s": since}, &changed)
		if fail("approvalChanged", codes, err) {
			return
		}
		since = changed.ApprovalChanged.Cursor
		var pending struct {
			PendingApprovals struct {
				Edges []struct {
					Node struct {
						ApprovalID string `json:"approvalID"`
					}
				}
			}
		}
		codes, err = e.tryGQL(token, `{ pendingApprovals(first: 100) { edges { node { approvalID } } } }`, nil, &pending)
		if fail("pendingApprovals", codes, err) {
			return
		}
		for _, edge := range pending.PendingApprovals.Edges {
			if id := edge.Node.ApprovalID; !seen[id] {
				seen[id] = true
				go func() {
					codes, err := e.tryGQL(token, `mutation($id: String!) { approveCall(id: $id, comment: "bot") { state } }`, map[string]any{"id": id}, nil)
					fail("approveCall "+id, codes, err)
				}()
			}
		}
	}
}

// upstreamTime is the median time of the upstream call alone, made
// directly by a client of the upstream.
func upstreamTime(t testing.TB, e *env) time.Duration {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "direct", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: e.upURL, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	d := make([]time.Duration, 50)
	for i := range d {
		t0 := time.Now()
		if _, err := deploy(cs, "direct", "dev"); err != nil {
			t.Fatal(err)
		}
		d[i] = time.Since(t0)
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// TestTimeoutEscalationOnTheServer runs the rule's timers on the real
// Temporal server: after the timeout the call is escalated to the next
// group (whose member then approves it, while the first group may no
// longer decide), and a rule whose timeout denies tells the agent so.
func TestTimeoutEscalationOnTheServer(t *testing.T) {
	e := newEnv(t, time.Minute, `{name: esc, approver_groups: [sre], tools: [deploy], when: 'args.env == "prod"', timeout: 1s, on_timeout: escalate, escalate_to: [cto]}`)
	alice, carol := e.approver(t, "alice", "sre"), e.approver(t, "carol", "cto")
	cs := e.agent(t)
	done := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, err := deploy(cs, "escalated-api", "prod")
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	id := e.pending(t, 1)[0]
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := e.store.Approval.Query().Where(entapproval.ApprovalID(id)).Only(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a.Escalated {
			if fmt.Sprint(a.ApproverGroups) != "[cto]" {
				t.Errorf("groups after escalation: %v", a.ApproverGroups)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not escalated")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if codes := e.decide(t, alice, id, true, ""); len(codes) != 1 || codes[0] != "FORBIDDEN" {
		t.Errorf("the first group decides after escalation: %v", codes)
	}
	if codes := e.decide(t, carol, id, true, ""); codes != nil {
		t.Fatalf("escalation group approves: %v", codes)
	}
	if res := <-done; res == nil || res.IsError || !strings.Contains(text(res), "deployed escalated-api to prod") {
		t.Fatalf("escalated and approved: %+v", res)
	}
}

func TestTimeoutDenies(t *testing.T) {
	e := newEnv(t, time.Minute, `{name: quick, approver_groups: [sre], tools: [deploy], when: 'args.env == "prod"', timeout: 1s}`)
	res, err := deploy(e.agent(t), "timed-out-api", "prod")
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := res.StructuredContent.(map[string]any)
	if !res.IsError || sc["state"] != "timed_out" || !strings.Contains(text(res), "timed out") {
		t.Errorf("after the rule's timeout: %+v %q", res, text(res))
	}
	if n := e.deploys.Load(); n != 0 {
		t.Errorf("deploys: %d, want 0", n)
	}
}
