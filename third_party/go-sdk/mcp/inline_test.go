// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by the license
// that can be found in the LICENSE file.

package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// TestServerHandlesLoneCallOnPOST: a POST carrying one call has the call
// handled on the POST's own goroutine (net/http's connection goroutine),
// in SSE and in JSON responses; calls behind a call that holds the
// session's queue (initialize) still run, on workers.
func TestServerHandlesLoneCallOnPOST(t *testing.T) {
	ctx := context.Background()
	server := NewServer(testImpl, nil)
	onPOST := make(chan bool, 100)
	AddTool(server, &Tool{Name: "where"}, func(ctx context.Context, req *CallToolRequest, _ struct{}) (*CallToolResult, any, error) {
		buf := make([]byte, 64<<10)
		onPOST <- strings.Contains(string(buf[:runtime.Stack(buf, false)]), "net/http.(*conn).serve")
		return &CallToolResult{Content: []Content{&TextContent{Text: "ok"}}}, nil, nil
	})
	for _, jsonResponse := range []bool{false, true} {
		hs := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server }, &StreamableHTTPOptions{JSONResponse: jsonResponse}))
		defer hs.Close()
		cs, err := NewClient(testImpl, nil).Connect(ctx, &StreamableClientTransport{Endpoint: hs.URL, DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := cs.CallTool(ctx, &CallToolParams{Name: "where"}); err != nil {
				t.Fatalf("json=%v: %v", jsonResponse, err)
			}
			if !<-onPOST {
				t.Errorf("json=%v: the call was not handled on its POST's goroutine", jsonResponse)
			}
		}
		cs.Close()
	}
}

// TestClientCallReturnsBeforeStreamEnds: a client call returns with its
// answer although the server keeps the response stream open after it;
// what follows the answer is drained without the caller.
func TestClientCallReturnsBeforeStreamEnds(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan struct{})
	// A real server, but for tools/call, which is answered here.
	real := NewStreamableHTTPHandler(func(*http.Request) *Server { return NewServer(testImpl, nil) }, nil)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		msg, err := jsonrpc.DecodeMessage(body)
		if req, ok := msg.(*jsonrpc.Request); err != nil || !ok || req.Method != "tools/call" {
			r.Body = io.NopCloser(bytes.NewReader(body))
			real.ServeHTTP(w, r)
			return
		}
		id, _ := json.Marshal(msg.(*jsonrpc.Request).ID.Raw())
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n\n", id)
		w.(http.Flusher).Flush()
		<-release // the stream stays open after the answer
		close(ended)
	}))
	defer hs.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	ctx := context.Background()
	cs, err := NewClient(testImpl, nil).Connect(ctx, &StreamableClientTransport{Endpoint: hs.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &CallToolParams{Name: "x"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call waited for the server to end its response stream")
	}
	close(release)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the rest of the stream was not drained")
	}
}
