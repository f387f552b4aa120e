// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/internal/jsonrpc2"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// TestReadStreamDeliversFirstAnswerDirectly: a call's answer that is the
// first message of its response stream goes straight to the caller
// (deliver); one after other messages of the stream, or on a resumed
// stream, goes through incoming behind them, in order.
func TestReadStreamDeliversFirstAnswerDirectly(t *testing.T) {
	const (
		prime    = "id: s_0\ndata:\n\n"
		progress = "event: message\nid: s_1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n"
		answer   = "event: message\nid: s_2\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
	)
	for _, tt := range []struct {
		name         string
		body         string
		direct       bool
		wantDirect   int
		wantIncoming []string // message kinds, in order
	}{
		{"answer first", prime + answer, true, 1, nil},
		{"answer after a notification", prime + progress + answer, true, 0, []string{"notification", "response"}},
		{"resumed stream", answer, false, 0, []string{"response"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			incoming := make(chan jsonrpc.Message, 10)
			conn := &streamableClientConn{ctx: t.Context(), done: make(chan struct{}), incoming: incoming}
			delivered := 0
			conn.deliverResponsesTo(func(r *jsonrpc.Response) bool {
				if r.ID != jsonrpc2.Int64ID(1) {
					t.Errorf("delivered the answer to %v, want 1", r.ID)
				}
				delivered++
				return true
			})
			resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/event-stream"}},
				Body: io.NopCloser(strings.NewReader(tt.body))}
			call := &jsonrpc.Request{ID: jsonrpc2.Int64ID(1), Method: "tools/call"}
			if _, _, done := conn.readStream(t.Context(), "test", resp, call, tt.direct, false); !done {
				t.Errorf("readStream did not end with the call's answer")
			}
			close(incoming)
			var got []string
			for m := range incoming {
				switch m := m.(type) {
				case *jsonrpc.Request:
					if m.IsCall() {
						got = append(got, "request")
					} else {
						got = append(got, "notification")
					}
				case *jsonrpc.Response:
					got = append(got, "response")
				}
			}
			if delivered != tt.wantDirect || strings.Join(got, ",") != strings.Join(tt.wantIncoming, ",") {
				t.Errorf("delivered directly %d, through incoming %q; want %d and %q", delivered, got, tt.wantDirect, tt.wantIncoming)
			}
		})
	}
}

// TestDeliverResponseFallsBack: an answer no call waits for (it was
// cancelled, or the reader ended) is not taken by DeliverResponse, and
// goes through incoming as before.
func TestDeliverResponseFallsBack(t *testing.T) {
	incoming := make(chan jsonrpc.Message, 1)
	conn := &streamableClientConn{ctx: t.Context(), done: make(chan struct{}), incoming: incoming}
	conn.deliverResponsesTo(func(*jsonrpc.Response) bool { return false })
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`)))}
	conn.handleJSON("test", resp)
	select {
	case m := <-incoming:
		if r, ok := m.(*jsonrpc.Response); !ok || r.ID != jsonrpc2.Int64ID(1) {
			t.Errorf("incoming got %#v, want the answer to 1", m)
		}
	default:
		t.Error("the answer no call took was dropped")
	}
}

// TestCallsAnsweredDirectly: calls through a real server and client, with
// and without progress notifications before the answer, in SSE and in
// JSON responses, all get their answers and every notification.
func TestCallsAnsweredDirectly(t *testing.T) {
	ctx := context.Background()
	server := NewServer(testImpl, nil)
	AddTool(server, &Tool{Name: "work"}, func(ctx context.Context, req *CallToolRequest, in struct{ Steps int }) (*CallToolResult, any, error) {
		for i := range in.Steps {
			if err := req.Session.NotifyProgress(ctx, &ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: float64(i + 1)}); err != nil {
				return nil, nil, err
			}
		}
		return &CallToolResult{Content: []Content{&TextContent{Text: "done"}}}, nil, nil
	})
	for _, jsonResponse := range []bool{false, true} {
		hs := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server }, &StreamableHTTPOptions{JSONResponse: jsonResponse}))
		defer hs.Close()
		progress := make(chan float64, 100)
		c := NewClient(testImpl, &ClientOptions{ProgressNotificationHandler: func(_ context.Context, req *ProgressNotificationClientRequest) {
			progress <- req.Params.Progress
		}})
		cs, err := c.Connect(ctx, &StreamableClientTransport{Endpoint: hs.URL, DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		stepsList := []int{0, 3}
		if jsonResponse {
			stepsList = []int{0} // a JSON response has no stream for notifications
		}
		for _, steps := range stepsList {
			for range 20 {
				p := &CallToolParams{Name: "work", Arguments: map[string]any{"Steps": steps}}
				p.SetProgressToken("t")
				res, err := cs.CallTool(ctx, p)
				if err != nil {
					t.Fatalf("json=%v steps=%d: %v", jsonResponse, steps, err)
				}
				if got := res.Content[0].(*TextContent).Text; got != "done" {
					t.Fatalf("json=%v steps=%d: answer %q", jsonResponse, steps, got)
				}
				for i := range steps {
					select {
					case got := <-progress:
						if got != float64(i+1) {
							t.Fatalf("steps=%d: progress %v, want %d", steps, got, i+1)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("steps=%d: progress notification %d of the call never arrived", steps, i+1)
					}
				}
			}
		}
		cs.Close()
	}
}
