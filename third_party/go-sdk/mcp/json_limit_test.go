// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestJSONResponseSizeLimit: a JSON response body larger than the client's
// MaxEventSize fails the call it answers, with an error saying so, and the
// session goes on (an SSE event of that size is refused likewise).
// Without the limit the client read any body whole into memory.
func TestJSONResponseSizeLimit(t *testing.T) {
	server := NewServer(testImpl, nil)
	AddTool(server, &Tool{Name: "big"}, func(_ context.Context, _ *CallToolRequest, in struct{ N int }) (*CallToolResult, any, error) {
		return &CallToolResult{Content: []Content{&TextContent{Text: strings.Repeat("x", in.N)}}}, nil, nil
	})
	ts := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server }, &StreamableHTTPOptions{JSONResponse: true}))
	defer ts.Close()

	ctx := context.Background()
	cs, err := NewClient(testImpl, nil).Connect(ctx, &StreamableClientTransport{Endpoint: ts.URL, MaxEventSize: 64 << 10, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(ctx, &CallToolParams{Name: "big", Arguments: map[string]any{"N": 128 << 10}}); err == nil || !strings.Contains(err.Error(), "response body larger than 65536 bytes") {
		t.Errorf("a 128 KiB answer: %v, want the size limit", err)
	}
	res, err := cs.CallTool(ctx, &CallToolParams{Name: "big", Arguments: map[string]any{"N": 10}})
	if err != nil || len(res.Content) != 1 {
		t.Fatalf("the next call on the session: %v, %v", res, err)
	}
}

// TestDefaultEventSizeLimit: with MaxEventSize unset the client applies
// DefaultMaxEventSize, as documented, to an SSE event as to a JSON body
// (the streamable client passed 0 on, which scanEventsLimited takes for no
// cap).
func TestDefaultEventSizeLimit(t *testing.T) {
	for _, jsonResponse := range []bool{false, true} {
		server := NewServer(testImpl, nil)
		AddTool(server, &Tool{Name: "big"}, func(_ context.Context, _ *CallToolRequest, in struct{ N int }) (*CallToolResult, any, error) {
			return &CallToolResult{Content: []Content{&TextContent{Text: strings.Repeat("x", in.N)}}}, nil, nil
		})
		ts := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server }, &StreamableHTTPOptions{JSONResponse: jsonResponse}))
		ctx := context.Background()
		cs, err := NewClient(testImpl, nil).Connect(ctx, &StreamableClientTransport{Endpoint: ts.URL, DisableStandaloneSSE: true, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CallTool(ctx, &CallToolParams{Name: "big", Arguments: map[string]any{"N": DefaultMaxEventSize + 1}}); err == nil {
			t.Errorf("JSONResponse %v: a %d-byte answer was read, want the default limit", jsonResponse, DefaultMaxEventSize+1)
		}
		cs.Close()
		ts.Close()
	}
}
