package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// fixture runs ToolCallWorkflow in the SDK's test environment with the real
// activities, an in-memory executor over a counting upstream and a
// recording auditor.
type fixture struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	calls atomic.Int32
	mu    sync.Mutex
	args  []json.RawMessage
	audit []AuditEvent
	// upstreamErr, when set, is what the upstream fails with.
	upstreamErr error
	// sent and answered count decide updates, to check none went unanswered.
	sent, answered int
	// notes are the notifications sent; notifyErr, when set, is what the
	// notifier fails with.
	notes     []Notification
	notifyErr error
}

var upstreamResult = json.RawMessage(`{"content":[{"type":"text","text":"deleted"}]}`)

func newFixture(t *testing.T, wrap func(Executor) Executor) *fixture {
	t.Helper()
	f := &fixture{t: t}
	var suite testsuite.WorkflowTestSuite
	f.env = suite.NewTestWorkflowEnvironment()
	var exec Executor = NewMemoryExecutor(func(_ context.Context, req ToolCallRequest) (json.RawMessage, error) {
		f.calls.Add(1)
		f.mu.Lock()
		f.args = append(f.args, req.Arguments)
		f.mu.Unlock()
		if f.upstreamErr != nil {
			return nil, f.upstreamErr
		}
		return upstreamResult, nil
	})
	if wrap != nil {
		exec = wrap(exec)
	}
	Register(f.env, &Activities{Executor: exec, Auditor: auditFunc(func(ev AuditEvent) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.audit = append(f.audit, ev)
	}), Notifier: notifyFunc(func(n Notification) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.notes = append(f.notes, n)
		return f.notifyErr
	})})
	return f
}

type auditFunc func(AuditEvent)

func (f auditFunc) Audit(_ context.Context, ev AuditEvent) error { f(ev); return nil }

type notifyFunc func(Notification) error

func (f notifyFunc) Notify(_ context.Context, n Notification) error { return f(n) }

func request(rule ApprovalRule) ToolCallRequest {
	return ToolCallRequest{
		ApprovalID:    "appr-1",
		Agent:         "deploy-bot",
		Team:          "platform",
		Roles:         []string{"agent"},
		VirtualServer: "infra",
		Tool:          "delete_bucket",
		Arguments:     json.RawMessage(`{"bucket":"prod-logs","token":"[REDACTED]"}`),
		ArgsHash:      "sha256:abc",
		Reasons:       []string{"rule:destructive"},
		Rule:          rule,
	}
}

func secops(quorum int) ApprovalRule {
	return ApprovalRule{Name: "destructive", ApproverGroups: []string{"secops"}, Quorum: quorum, Timeout: time.Hour}
}

func approve(who string) Decision {
	return Decision{Approver: who, Groups: []string{"secops"}, Team: "security", Approve: true, Comment: "ok"}
}

// decide sends the "decide" update at workflow time at and checks that it is
// accepted (wantErr nil) or rejected with wantErr.
func (f *fixture) decide(at time.Duration, d Decision, wantErr error) {
	f.sent++
	f.env.RegisterDelayedCallback(func() {
		f.env.UpdateWorkflow(UpdateDecide, fmt.Sprintf("%s@%s", d.Approver, at), &testsuite.TestUpdateCallback{
			OnAccept: func() {
				f.answered++
				if wantErr != nil {
					f.t.Errorf("decision %+v at %s accepted, want rejection %q", d, at, wantErr)
				}
			},
			OnReject: func(err error) {
				f.answered++
				if wantErr == nil || !strings.Contains(err.Error(), wantErr.Error()) {
					f.t.Errorf("decision %+v at %s rejected with %v, want %v", d, at, err, wantErr)
				}
			},
			OnComplete: func(any, error) {},
		}, d)
	}, at)
}

func (f *fixture) status(at time.Duration, check func(Status)) {
	f.env.RegisterDelayedCallback(func() {
		v, err := f.env.QueryWorkflow(QueryStatus)
		if err != nil {
			f.t.Errorf("query status at %s: %v", at, err)
			return
		}
		var st Status
		if err := v.Get(&st); err != nil {
			f.t.Errorf("decoding status: %v", err)
			return
		}
		check(st)
	}, at)
}

func (f *fixture) run(req ToolCallRequest) ToolCallResult {
	f.t.Helper()
	f.env.ExecuteWorkflow(ToolCallWorkflow, req)
	if !f.env.IsWorkflowCompleted() {
		f.t.Fatal("workflow did not complete")
	}
	if f.answered != f.sent {
		f.t.Errorf("%d of %d decide updates were answered", f.answered, f.sent)
	}
	if err := f.env.GetWorkflowError(); err != nil {
		f.t.Fatalf("workflow error: %v", err)
	}
	var res ToolCallResult
	if err := f.env.GetWorkflowResult(&res); err != nil {
		f.t.Fatalf("workflow result: %v", err)
	}
	return res
}

func (f *fixture) auditKinds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var kinds []string
	for _, ev := range f.audit {
		k := ev.Kind
		if ev.State != "" {
			k += ":" + string(ev.State)
		}
		kinds = append(kinds, k)
	}
	return kinds
}

func (f *fixture) wantCalls(n int32) {
	f.t.Helper()
	if got := f.calls.Load(); got != n {
		f.t.Errorf("upstream called %d times, want %d", got, n)
	}
}

func TestApproveExecutesOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	req := request(secops(1))
	f.decide(time.Minute, approve("alice"), nil)
	res := f.run(req)

	if res.State != StateApproved || string(res.Result) != string(upstreamResult) {
		t.Fatalf("result = %+v, want approved with the upstream result", res)
	}
	if !slices.Equal(res.Approvers, []string{"alice"}) {
		t.Errorf("approvers = %v, want [alice]", res.Approvers)
	}
	f.wantCalls(1)
	if len(f.args) != 1 || string(f.args[0]) != string(req.Arguments) {
		t.Errorf("upstream got arguments %s, want %s", f.args, req.Arguments)
	}
	want := []string{"requested", "decided", "executed", "closed:approved"}
	if got := f.auditKinds(); !slices.Equal(got, want) {
		t.Errorf("audit = %v, want %v", got, want)
	}
	for _, ev := range f.audit {
		if ev.ApprovalID != "appr-1" || ev.Tool != "delete_bucket" || ev.ArgsHash != "sha256:abc" {
			t.Errorf("audit event %+v lacks the request's identity", ev)
		}
	}
}

func TestDenyReturnsReason(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	d := approve("bob")
	d.Approve, d.Comment = false, "prod-logs is under legal hold"
	f.decide(time.Minute, d, nil)
	res := f.run(request(secops(2)))

	if res.State != StateDenied || !strings.Contains(res.Reason, "bob") || !strings.Contains(res.Reason, "legal hold") {
		t.Fatalf("result = %+v, want denied by bob with his reason", res)
	}
	f.wantCalls(0)
	if got, want := f.auditKinds(), []string{"requested", "decided", "closed:denied"}; !slices.Equal(got, want) {
		t.Errorf("audit = %v, want %v", got, want)
	}
}

func TestDecidedCallRejectsDecisions(t *testing.T) {
	t.Parallel()
	// The workflow closes as soon as a call is decided, so exercise the
	// validator directly for decisions racing the close.
	for _, state := range []State{StatePending, StateExecuting, StateDenied} {
		s := &approval{req: request(secops(1)), quorum: 1, groups: []string{"secops"}, state: state}
		if state == StatePending {
			s.apply(approve("alice"))
		}
		if err := s.validate(approve("carol")); !errors.Is(err, ErrAlreadyDecided) {
			t.Errorf("%s: validate = %v, want %v", state, err, ErrAlreadyDecided)
		}
	}
}

func TestQuorumTwoOfThree(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.decide(time.Minute, approve("alice"), nil)
	f.decide(2*time.Minute, approve("alice"), ErrAlreadyVoted)
	f.status(3*time.Minute, func(st Status) {
		if st.State != StatePending || !slices.Equal(st.Approvers, []string{"alice"}) || st.Quorum != 2 ||
			!slices.Equal(st.Groups, []string{"secops"}) || st.Deadline.IsZero() {
			t.Errorf("status after one approval = %+v", st)
		}
	})
	f.decide(4*time.Minute, approve("carol"), nil)
	res := f.run(request(secops(2)))

	if res.State != StateApproved || !slices.Equal(res.Approvers, []string{"alice", "carol"}) {
		t.Fatalf("result = %+v, want approved by alice and carol", res)
	}
	f.wantCalls(1)
}

func TestDecisionValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sameTeam bool
		d        Decision
		wantErr  error
	}{
		{"self approval", false, Decision{Approver: "deploy-bot", Groups: []string{"secops"}, Approve: true}, ErrSelfApproval},
		{"same team", false, Decision{Approver: "pat", Groups: []string{"secops"}, Team: "platform", Approve: true}, ErrSameTeam},
		{"same team allowed", true, Decision{Approver: "pat", Groups: []string{"secops"}, Team: "platform", Approve: true}, nil},
		{"not in group", false, Decision{Approver: "eve", Groups: []string{"marketing"}, Approve: true}, ErrNotApprover},
		{"no groups", false, Decision{Approver: "eve", Approve: true}, ErrNotApprover},
		{"no approver", false, Decision{Groups: []string{"secops"}, Approve: true}, ErrNoApprover},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			rule := secops(1)
			rule.AllowSameTeam = tt.sameTeam
			f.decide(time.Minute, tt.d, tt.wantErr)
			want := StateTimedOut
			if tt.wantErr == nil {
				want = StateApproved
			}
			if res := f.run(request(rule)); res.State != want {
				t.Errorf("state = %s, want %s", res.State, want)
			}
		})
	}
}

func TestTimeoutDenies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.decide(59*time.Minute, approve("alice"), nil)
	res := f.run(request(secops(2)))

	if res.State != StateTimedOut || !strings.Contains(res.Reason, "1 of 2") {
		t.Fatalf("result = %+v, want timed_out with 1 of 2 approvals", res)
	}
	if d := f.env.Now().Sub(time.Time{}); d <= 0 {
		t.Error("test clock did not move")
	}
	f.wantCalls(0)
	if got, want := f.auditKinds(), []string{"requested", "decided", "closed:timed_out"}; !slices.Equal(got, want) {
		t.Errorf("audit = %v, want %v", got, want)
	}
}

func TestTimeoutEscalates(t *testing.T) {
	t.Parallel()
	rule := secops(1)
	rule.OnTimeout, rule.EscalateTo = OnTimeoutEscalate, []string{"oncall"}
	oncall := Decision{Approver: "carol", Groups: []string{"oncall"}, Team: "sre", Approve: true}

	t.Run("approved by escalation group", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		f.decide(30*time.Minute, oncall, ErrNotApprover) // not yet escalated
		f.status(61*time.Minute, func(st Status) {
			if !st.Escalated || !slices.Equal(st.Groups, []string{"oncall"}) {
				t.Errorf("status after timeout = %+v, want escalated to oncall", st)
			}
		})
		f.decide(70*time.Minute, approve("alice"), ErrNotApprover) // secops no longer decides
		f.decide(90*time.Minute, oncall, nil)
		res := f.run(request(rule))
		if res.State != StateApproved || !slices.Equal(res.Approvers, []string{"carol"}) {
			t.Fatalf("result = %+v, want approved by carol", res)
		}
		f.wantCalls(1)
		if got, want := f.auditKinds(), []string{"requested", "escalated", "decided", "executed", "closed:approved"}; !slices.Equal(got, want) {
			t.Errorf("audit = %v, want %v", got, want)
		}
		req, esc := f.audit[0], f.audit[1]
		if !slices.Equal(req.Groups, []string{"secops"}) || !slices.Equal(esc.Groups, []string{"oncall"}) ||
			esc.Deadline.Sub(req.Deadline) != time.Hour {
			t.Errorf("requested groups %v until %v, escalated groups %v until %v; want secops, then oncall an hour later",
				req.Groups, req.Deadline, esc.Groups, esc.Deadline)
		}
	})
	t.Run("escalates once then times out", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		res := f.run(request(rule))
		if res.State != StateTimedOut {
			t.Fatalf("result = %+v, want timed_out", res)
		}
		f.wantCalls(0)
		if got, want := f.auditKinds(), []string{"requested", "escalated", "closed:timed_out"}; !slices.Equal(got, want) {
			t.Errorf("audit = %v, want %v", got, want)
		}
	})
}

func TestCancellation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.decide(time.Minute, approve("alice"), nil)
	f.env.RegisterDelayedCallback(f.env.CancelWorkflow, 10*time.Minute)
	f.env.ExecuteWorkflow(ToolCallWorkflow, request(secops(2)))

	if err := f.env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error = %v, want cancellation", err)
	}
	f.wantCalls(0)
	if got, want := f.auditKinds(), []string{"requested", "decided", "closed:cancelled"}; !slices.Equal(got, want) {
		t.Errorf("audit = %v, want %v", got, want)
	}
}

func TestSignalFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	signal := func(at time.Duration, d Decision) {
		f.env.RegisterDelayedCallback(func() { f.env.SignalWorkflow(SignalDecide, d) }, at)
	}
	self := approve("deploy-bot")
	signal(time.Minute, self)
	signal(2*time.Minute, approve("alice"))
	f.status(3*time.Minute, func(st Status) {
		if len(st.Rejected) != 1 || st.Rejected[0].Approver != "deploy-bot" || !strings.Contains(st.Rejected[0].Reason, ErrSelfApproval.Error()) {
			t.Errorf("rejected = %+v, want the self-approval", st.Rejected)
		}
		if !slices.Equal(st.Approvers, []string{"alice"}) {
			t.Errorf("approvers = %v, want [alice]", st.Approvers)
		}
	})
	signal(4*time.Minute, approve("alice")) // twice: ignored
	signal(5*time.Minute, approve("carol"))
	res := f.run(request(secops(2)))

	if res.State != StateApproved || !slices.Equal(res.Approvers, []string{"alice", "carol"}) {
		t.Fatalf("result = %+v, want approved by alice and carol", res)
	}
	f.wantCalls(1)
}

// lossyExecutor loses the first response after the upstream answered, as a
// worker crashing between the call and recording its result would.
type lossyExecutor struct {
	Executor
	attempts atomic.Int32
}

func (e *lossyExecutor) Call(ctx context.Context, key string, req ToolCallRequest) (json.RawMessage, error) {
	res, err := e.Executor.Call(ctx, key, req)
	if e.attempts.Add(1) == 1 {
		return nil, errors.New("connection reset while returning the result")
	}
	return res, err
}

func TestRetryAfterTransientFailureCallsUpstreamOnce(t *testing.T) {
	t.Parallel()
	var lossy *lossyExecutor
	f := newFixture(t, func(e Executor) Executor {
		lossy = &lossyExecutor{Executor: e}
		return lossy
	})
	f.decide(time.Minute, approve("alice"), nil)
	res := f.run(request(secops(1)))

	if res.State != StateApproved || string(res.Result) != string(upstreamResult) {
		t.Fatalf("result = %+v, want approved with the upstream result", res)
	}
	if got := lossy.attempts.Load(); got != 2 {
		t.Errorf("CallUpstream attempts = %d, want 2", got)
	}
	f.wantCalls(1)
}

func TestUpstreamErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.upstreamErr = errors.New("bucket not found")
	f.decide(time.Minute, approve("alice"), nil)
	res := f.run(request(secops(1)))

	if res.State != StateFailed || !strings.Contains(res.Reason, "bucket not found") {
		t.Fatalf("result = %+v, want failed with the upstream error", res)
	}
	f.wantCalls(1)
}

func TestRuleWithoutApproversFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	res := f.run(request(ApprovalRule{Name: "broken"}))
	if res.State != StateFailed || !strings.Contains(res.Reason, "broken") {
		t.Fatalf("result = %+v, want failed naming the rule", res)
	}
}

func TestMemoryExecutorConcurrentCallsShareOneUpstreamCall(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	release := make(chan struct{})
	e := NewMemoryExecutor(func(context.Context, ToolCallRequest) (json.RawMessage, error) {
		calls.Add(1)
		<-release
		return upstreamResult, nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			res, err := e.Call(t.Context(), "k", ToolCallRequest{})
			if err != nil || string(res) != string(upstreamResult) {
				t.Errorf("Call = %s, %v", res, err)
			}
		})
	}
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("upstream called %d times, want 1", got)
	}
	if _, err := e.Call(t.Context(), "other", ToolCallRequest{}); err != nil {
		t.Errorf("Call with another key: %v", err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("upstream called %d times after a second key, want 2", got)
	}
}

// notified summarizes the notifications sent as "kind:group,group".
func (f *fixture) notified() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []string
	for _, n := range f.notes {
		got = append(got, n.Kind+":"+strings.Join(n.Groups, ","))
	}
	return got
}

func TestNotifiesApprovers(t *testing.T) {
	t.Parallel()
	t.Run("requested", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		req := request(secops(2))
		f.decide(time.Minute, approve("alice"), nil)
		f.decide(2*time.Minute, approve("carol"), nil)
		start := f.env.Now()
		if res := f.run(req); res.State != StateApproved {
			t.Fatalf("result = %+v, want approved", res)
		}
		if got, want := f.notified(), []string{"requested:secops"}; !slices.Equal(got, want) {
			t.Fatalf("notifications = %v, want %v", got, want)
		}
		n := f.notes[0]
		if n.ApprovalID != "appr-1" || n.Agent != "deploy-bot" || n.VirtualServer != "infra" || n.Tool != "delete_bucket" ||
			string(n.Arguments) != string(req.Arguments) || !slices.Equal(n.Reasons, req.Reasons) ||
			n.Rule != "destructive" || n.Quorum != 2 || len(n.Approvers) != 0 || !n.Deadline.Equal(start.Add(time.Hour)) {
			t.Errorf("notification = %+v, want the request's fields, quorum 2 and deadline in an hour", n)
		}
	})
	t.Run("escalated", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		rule := secops(2)
		rule.OnTimeout, rule.EscalateTo = OnTimeoutEscalate, []string{"oncall", "sre-leads"}
		f.decide(time.Minute, approve("alice"), nil)
		if res := f.run(request(rule)); res.State != StateTimedOut {
			t.Fatalf("result = %+v, want timed_out", res)
		}
		want := []string{"requested:secops", "escalated:oncall,sre-leads"}
		if got := f.notified(); !slices.Equal(got, want) {
			t.Fatalf("notifications = %v, want %v", got, want)
		}
		if n := f.notes[1]; !slices.Equal(n.Approvers, []string{"alice"}) {
			t.Errorf("escalation approvers = %v, want [alice] (approvals still count)", n.Approvers)
		}
	})
	t.Run("no groups, no notification", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		f.run(request(ApprovalRule{Name: "broken"}))
		if got := f.notified(); len(got) != 0 {
			t.Errorf("notifications = %v, want none", got)
		}
	})
}

func TestFailingNotificationDoesNotBlockApproval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"rejected", temporal.NewNonRetryableApplicationError("webhook said 400", ErrTypeWebhookRejected, nil)},
		// Still retrying when the approval arrives, and when the workflow
		// closes: the workflow waits notifyGrace, then abandons it.
		{"unavailable", errors.New("connection refused")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.notifyErr = tc.err
			f.decide(time.Minute, approve("alice"), nil)
			if res := f.run(request(secops(1))); res.State != StateApproved {
				t.Fatalf("result = %+v, want approved", res)
			}
			f.wantCalls(1)
			if len(f.notes) == 0 {
				t.Error("notifier not called")
			}
		})
	}
}

// upserts records the workflow's search attribute upserts, each as
// "name=value" pairs.
func (f *fixture) upserts() *[]string {
	var got []string
	f.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		var kv []string
		for _, k := range []temporal.SearchAttributeKeyKeyword{SearchAttributeState, SearchAttributeAgent,
			SearchAttributeVirtualServer, SearchAttributeTool} {
			if v, ok := sa.GetKeyword(k); ok {
				kv = append(kv, k.GetName()+"="+v)
			}
		}
		if v, ok := sa.GetKeywordList(SearchAttributeApprovers); ok {
			kv = append(kv, SearchAttributeApprovers.GetName()+"="+strings.Join(v, ","))
		}
		got = append(got, strings.Join(kv, " "))
	}).Return(nil).Maybe()
	return &got
}

func TestSearchAttributes(t *testing.T) {
	t.Parallel()
	start := "GatehouseState=pending GatehouseAgent=deploy-bot GatehouseVirtualServer=infra GatehouseTool=delete_bucket"
	tests := []struct {
		name      string
		index     bool
		atStart   bool // the starter passes StartSearchAttributes
		decisions []Decision
		want      []string
	}{
		{"not indexed", false, false, []Decision{approve("alice"), approve("carol")}, nil},
		{"approved", true, true, []Decision{approve("alice"), approve("carol")}, []string{
			"GatehouseApprovers=alice", "GatehouseApprovers=alice,carol",
			"GatehouseState=executing", "GatehouseState=approved"}},
		{"starter without attributes", true, false, []Decision{approve("alice"), approve("carol")}, []string{
			start, "GatehouseApprovers=alice", "GatehouseApprovers=alice,carol",
			"GatehouseState=executing", "GatehouseState=approved"}},
		{"denied", true, true, []Decision{{Approver: "bob", Groups: []string{"secops"}, Comment: "no"}}, []string{
			"GatehouseState=denied"}},
		{"timed out", true, true, nil, []string{"GatehouseState=timed_out"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			got := f.upserts()
			req := request(secops(2))
			req.IndexSearchAttributes = tt.index
			if tt.atStart {
				if err := f.env.SetTypedSearchAttributesOnStart(StartSearchAttributes(req)); err != nil {
					t.Fatal(err)
				}
			}
			for i, d := range tt.decisions {
				f.decide(time.Duration(i+1)*time.Minute, d, nil)
			}
			f.run(req)
			if !slices.Equal(*got, tt.want) {
				t.Errorf("upserts:\n got %q\nwant %q", *got, tt.want)
			}
		})
	}
}

func TestStartSearchAttributes(t *testing.T) {
	t.Parallel()
	sa := StartSearchAttributes(ToolCallRequest{Agent: "deploy-bot", Tool: "delete_bucket"})
	if v, _ := sa.GetKeyword(SearchAttributeState); v != "pending" {
		t.Errorf("state = %q, want pending", v)
	}
	if v, _ := sa.GetKeyword(SearchAttributeAgent); v != "deploy-bot" {
		t.Errorf("agent = %q, want deploy-bot", v)
	}
	if sa.ContainsKey(SearchAttributeVirtualServer) {
		t.Error("empty virtual server set, want it left out")
	}
	if sa.Size() != 3 {
		t.Errorf("%d attributes, want 3", sa.Size())
	}
	for _, k := range []temporal.SearchAttributeKey{SearchAttributeState, SearchAttributeAgent,
		SearchAttributeVirtualServer, SearchAttributeTool, SearchAttributeApprovers} {
		if typ, ok := SearchAttributeTypes[k.GetName()]; !ok || typ != k.GetValueType() {
			t.Errorf("SearchAttributeTypes[%s] = %v, %v; want %v", k.GetName(), typ, ok, k.GetValueType())
		}
	}
}
