package devserver_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/gatehouse-dev/gatehouse/workflows"
	"github.com/gatehouse-dev/gatehouse/workflows/devserver"
)

const taskQueue = "devserver-test"

// gateway is what a gateway process holds: a server, a client and a worker
// whose executor counts upstream calls.
type gateway struct {
	srv *devserver.Server
	c   client.Client
	w   worker.Worker
}

func startGateway(t *testing.T, dir string, calls *atomic.Int32) *gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	begin := time.Now()
	srv, err := devserver.Start(ctx, devserver.Options{DataDir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server started in %v at %s, namespace %s", time.Since(begin).Round(time.Millisecond), srv.HostPort(), srv.Namespace())
	g := &gateway{srv: srv}
	opts := srv.ClientOptions()
	opts.Logger = quietLogger{}
	if g.c, err = client.Dial(opts); err != nil {
		_ = srv.Stop()
		t.Fatalf("dialing %s: %v", srv.HostPort(), err)
	}
	g.w = worker.New(g.c, taskQueue, worker.Options{})
	exec := workflows.NewMemoryExecutor(func(context.Context, workflows.ToolCallRequest) (json.RawMessage, error) {
		calls.Add(1)
		return json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`), nil
	})
	workflows.Register(g.w, &workflows.Activities{Executor: exec})
	if err := g.w.Start(); err != nil {
		g.stop(t)
		t.Fatal(err)
	}
	return g
}

func (g *gateway) stop(t *testing.T) {
	t.Helper()
	if g.w != nil {
		g.w.Stop()
	}
	g.c.Close()
	begin := time.Now()
	if err := g.srv.Stop(); err != nil {
		t.Error(err)
	}
	t.Logf("server stopped in %v", time.Since(begin).Round(time.Millisecond))
}

func request(id string) workflows.ToolCallRequest {
	return workflows.ToolCallRequest{
		ApprovalID:    id,
		Agent:         "deploy-bot",
		Team:          "platform",
		VirtualServer: "infra",
		Tool:          "delete_bucket",
		Arguments:     json.RawMessage(`{"bucket":"prod-logs"}`),
		ArgsHash:      "sha256:" + id,
		Rule:          workflows.ApprovalRule{Name: "destructive", ApproverGroups: []string{"secops"}, Timeout: time.Hour},
	}
}

func startCall(t *testing.T, ctx context.Context, c client.Client, id string) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue},
		workflows.ToolCallWorkflow, request(id))
	if err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
	return run
}

// waitPending waits until the workflow has run its first task and answers
// the status query as pending.
func waitPending(t *testing.T, ctx context.Context, c client.Client, id string) {
	t.Helper()
	for {
		v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
		if err == nil {
			var st workflows.Status
			if err := v.Get(&st); err != nil {
				t.Fatal(err)
			}
			if st.State == workflows.StatePending {
				return
			}
			t.Fatalf("%s: state %s, want pending", id, st.State)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never became pending: %v", id, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitIdle waits until the workflow has no workflow task or activity in
// flight. A server stopped while a workflow task is started loses it with
// its worker, and the workflow then waits for the task's timeout (10s by
// default) before anything, queries included, can proceed; that is how a
// crash behaves, but it would make this test's timings random.
func waitIdle(t *testing.T, ctx context.Context, c client.Client, id string) {
	t.Helper()
	for {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatalf("describing %s: %v", id, err)
		}
		if d.GetPendingWorkflowTask() == nil && len(d.GetPendingActivities()) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never became idle", id)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// approve sends the decide update and returns the workflow's result and the
// time from sending the update to the result.
func approve(t *testing.T, ctx context.Context, c client.Client, id string) (workflows.ToolCallResult, time.Duration) {
	t.Helper()
	begin := time.Now()
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.UpdateDecide,
		Args:         []any{workflows.Decision{Approver: "alice", Groups: []string{"secops"}, Team: "security", Approve: true, Comment: "ok"}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		t.Fatalf("approving %s: %v", id, err)
	}
	var st workflows.Status
	if err := h.Get(ctx, &st); err != nil {
		t.Fatalf("approving %s: %v", id, err)
	}
	var res workflows.ToolCallResult
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
		t.Fatalf("result of %s: %v", id, err)
	}
	return res, time.Since(begin)
}

func TestApproveAndSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	g := startGateway(t, dir, &calls)
	startCall(t, ctx, g.c, "appr-1")
	waitPending(t, ctx, g.c, "appr-1")
	res, took := approve(t, ctx, g.c, "appr-1")
	t.Logf("appr-1: update to result in %v", took.Round(time.Millisecond))
	if res.State != workflows.StateApproved || calls.Load() != 1 {
		t.Fatalf("appr-1: state %s (%s), upstream calls %d; want approved, 1", res.State, res.Reason, calls.Load())
	}

	// The durability part: a call pending when the server stops is still
	// there, and can be approved, after a server starts on the same file.
	startCall(t, ctx, g.c, "appr-2")
	waitPending(t, ctx, g.c, "appr-2")
	waitIdle(t, ctx, g.c, "appr-2")
	g.stop(t)

	g = startGateway(t, dir, &calls)
	defer g.stop(t)
	waitPending(t, ctx, g.c, "appr-2")
	res, took = approve(t, ctx, g.c, "appr-2")
	t.Logf("appr-2 (after restart): update to result in %v", took.Round(time.Millisecond))
	if res.State != workflows.StateApproved || calls.Load() != 2 {
		t.Fatalf("appr-2: state %s (%s), upstream calls %d; want approved, 2", res.State, res.Reason, calls.Load())
	}
	// appr-1 is still recorded as completed.
	var first workflows.ToolCallResult
	if err := g.c.GetWorkflow(ctx, "appr-1", "").Get(ctx, &first); err != nil || first.State != workflows.StateApproved {
		t.Fatalf("appr-1 after restart: %+v, %v", first, err)
	}
}

// startIndexedCall starts a call as a gateway does when the namespace has
// the search attributes.
func startIndexedCall(t *testing.T, ctx context.Context, c client.Client, id string) {
	t.Helper()
	req := request(id)
	req.IndexSearchAttributes = true
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue,
		TypedSearchAttributes: workflows.StartSearchAttributes(req)}, workflows.ToolCallWorkflow, req)
	if err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
}

// waitListed waits until the visibility query finds workflow id: the
// visibility store is updated after the workflow's history.
func waitListed(t *testing.T, ctx context.Context, c client.Client, query, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("listing %s: %v", query, err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetExecution().GetWorkflowId() == id {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never listed by %s", id, query)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestSearchAttributes(t *testing.T) {
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := startGateway(t, t.TempDir(), &calls)
	defer g.stop(t)

	startIndexedCall(t, ctx, g.c, "appr-sa")
	waitListed(t, ctx, g.c, `GatehouseState = "pending" AND GatehouseAgent = "deploy-bot" AND `+
		`GatehouseVirtualServer = "infra" AND GatehouseTool = "delete_bucket"`, "appr-sa")
	waitPending(t, ctx, g.c, "appr-sa")
	if res, _ := approve(t, ctx, g.c, "appr-sa"); res.State != workflows.StateApproved {
		t.Fatalf("state %s (%s), want approved", res.State, res.Reason)
	}
	waitListed(t, ctx, g.c, `GatehouseApprovers = "alice" AND GatehouseState = "approved"`, "appr-sa")
}

// TestSearchAttributesAddedToOldNamespace starts a server on a data
// directory whose namespace was created without the search attributes.
func TestSearchAttributesAddedToOldNamespace(t *testing.T) {
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := devserver.CreateNamespaceWithoutSearchAttributes(ctx, dir, devserver.DefaultNamespace); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, dir, &calls)
	defer g.stop(t)

	startIndexedCall(t, ctx, g.c, "appr-old")
	waitListed(t, ctx, g.c, `GatehouseState = "pending" AND GatehouseAgent = "deploy-bot"`, "appr-old")
	waitPending(t, ctx, g.c, "appr-old")
	if res, _ := approve(t, ctx, g.c, "appr-old"); res.State != workflows.StateApproved {
		t.Fatalf("state %s (%s), want approved", res.State, res.Reason)
	}
	waitListed(t, ctx, g.c, `GatehouseApprovers = "alice" AND GatehouseState = "approved"`, "appr-old")
}

// quietLogger drops the SDK's info logs (worker start and stop).
type quietLogger struct{}

func (quietLogger) Debug(string, ...any)        {}
func (quietLogger) Info(string, ...any)         {}
func (quietLogger) Warn(msg string, kv ...any)  { slog.Warn(msg, kv...) }
func (quietLogger) Error(msg string, kv ...any) { slog.Error(msg, kv...) }

func TestStartRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    devserver.Options
	}{
		{"no data dir", devserver.Options{}},
		{"unspecified host", devserver.Options{DataDir: t.TempDir(), HostPort: "0.0.0.0:0"}},
		{"host name", devserver.Options{DataDir: t.TempDir(), HostPort: "example.com:7233"}},
		{"bad port", devserver.Options{DataDir: t.TempDir(), HostPort: "127.0.0.1:http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := devserver.Start(context.Background(), tc.o)
			if err == nil {
				_ = srv.Stop()
				t.Fatalf("Start(%+v) succeeded, want an error", tc.o)
			}
		})
	}
}

// TestPortTakenIsAnError: a frontend port already in use is an error from
// Start, not the end of the process (Temporal's own logger would exit).
func TestPortTakenIsAnError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := devserver.Start(ctx, devserver.Options{DataDir: t.TempDir(), HostPort: l.Addr().String(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		s.Stop()
		t.Fatal("Start succeeded on a port in use")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error = %v, want one naming the port in use", err)
	}
}
