package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// diskFullSink admits every request and then fails to store tool calls'
// events, as the audit spool does when its disk fills between a
// request's admission and its end (the spool itself is tested against a
// full disk in internal/audit/spool).
type diskFullSink struct{ records atomic.Int32 }

func (s *diskFullSink) Admit() error { return nil }
func (s *diskFullSink) Record(e *audit.Event) error {
	if e.Method != "tools/call" {
		return nil
	}
	s.records.Add(1)
	return errors.New("writing audit spool segment: no space left on device")
}
func (s *diskFullSink) Status() string { return "ok" }

// TestAuditFailureAfterTheCall: a call whose event cannot be stored is
// not acknowledged. When the request had reached the upstream the answer
// must not read "refused, retry": the upstream may have acted, so it says
// so (data outcome unknown); a call refused before it was sent says it
// was refused.
func TestAuditFailureAfterTheCall(t *testing.T) {
	var calls atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "u", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		calls.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(up.Close)
	d := anonymousDoc(t, up.URL)
	sink := &diskFullSink{}
	_, gw := startGateway(t, d, &Options{Logger: quietLogger(), Audit: sink})
	cs := connectClient(t, gw+"/mcp/vs", "")

	for _, tc := range []struct {
		tool, want string
		ran        int32
		data       string
	}{
		{"echo", "audit trail unavailable, result withheld: the request had been sent, so the upstream may have acted on it", 1, `{"outcome":"unknown"}`},
		{"nosuch", "audit trail unavailable, request refused", 1, ""},
	} {
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tc.tool, Arguments: map[string]any{"text": "x"}})
		var we *jsonrpc.Error
		if !errors.As(err, &we) || we.Code != CodeAuditUnavailable || !strings.Contains(we.Message, tc.want) {
			t.Errorf("%s: error %v, want %d %q", tc.tool, err, CodeAuditUnavailable, tc.want)
			continue
		}
		if string(we.Data) != tc.data {
			t.Errorf("%s: error data %s, want %q", tc.tool, we.Data, tc.data)
		}
		if n := calls.Load(); n != tc.ran {
			t.Errorf("after %s the upstream ran %d calls, want %d", tc.tool, n, tc.ran)
		}
	}
	if n := sink.records.Load(); n != 2 {
		t.Errorf("%d tool call events offered to the audit trail, want 2", n)
	}
}

// keepSink keeps the events it is given.
type keepSink struct {
	mu     sync.Mutex
	events []*audit.Event
}

func (s *keepSink) Admit() error   { return nil }
func (s *keepSink) Status() string { return "ok" }
func (s *keepSink) Record(e *audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

// TestCredentialsAgentsSendAsNames: a credential an agent sends as a
// tool's name, or as an argument's name, reaches neither the audit trail
// nor the log; the agent's own answer may repeat what it sent.
func TestCredentialsAgentsSendAsNames(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "u", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(up.Close)
	sink := &keepSink{}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, nil))
	_, gw := startGateway(t, anonymousDoc(t, up.URL), &Options{Logger: logger, Audit: sink})
	cs := connectClient(t, gw+"/mcp/vs", "")
	const token = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
	const awsKey = "AKIAIOSFODNN7EXAMPLE"
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: token}); err == nil {
		t.Fatal("a call of a tool named like a token succeeded")
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x", awsKey: "y"}}); err == nil {
		t.Fatal("a call with an unknown argument succeeded")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	var calls int
	for _, e := range sink.events {
		if e.Method != "tools/call" {
			continue
		}
		calls++
		for _, field := range []string{e.Target, e.Error, e.Arguments} {
			if strings.Contains(field, token) || strings.Contains(field, awsKey) {
				t.Errorf("audit event keeps a credential: target %q error %q", e.Target, e.Error)
			}
		}
	}
	if calls != 2 {
		t.Errorf("%d tool call events, want 2", calls)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if l := logs.String(); strings.Contains(l, token) || strings.Contains(l, awsKey) || !strings.Contains(l, "[REDACTED:") {
		t.Errorf("the log keeps a credential, or masks nothing:\n%s", l)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
