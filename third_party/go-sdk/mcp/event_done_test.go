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

// TestEventStoreForgetsDoneStreams: every POST of a session is a stream of
// its own; once a stream is answered and its events purged, the store
// forgets it, so a long session's streams do not pile up in the store.
func TestEventStoreForgetsDoneStreams(t *testing.T) {
	ctx := context.Background()
	server := NewServer(testImpl, nil)
	AddTool(server, &Tool{Name: "echo"}, func(_ context.Context, _ *CallToolRequest, in struct{ Text string }) (*CallToolResult, any, error) {
		return &CallToolResult{Content: []Content{&TextContent{Text: in.Text}}}, nil, nil
	})
	store := NewMemoryEventStore(nil)
	store.SetMaxBytes(8 << 10) // a few calls' answers
	httpServer := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server }, &StreamableHTTPOptions{EventStore: store}))
	defer httpServer.Close()

	for _, version := range []string{latestProtocolVersion, protocolVersion20251125, protocolVersion20250618, protocolVersion20250326} {
		t.Run(version, func(t *testing.T) {
			c := NewClient(testImpl, nil)
			cs, err := c.Connect(ctx, &StreamableClientTransport{Endpoint: httpServer.URL, DisableStandaloneSSE: true},
				&ClientSessionOptions{ProtocolVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			const calls = 300
			text := strings.Repeat("x", 512)
			for i := range calls {
				res, err := cs.CallTool(ctx, &CallToolParams{Name: "echo", Arguments: map[string]any{"Text": text}})
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if got := res.Content[0].(*TextContent).Text; got != text {
					t.Fatalf("call %d answered %q", i, got)
				}
			}
			store.mu.Lock()
			streams, nBytes := len(store.store[cs.ID()]), store.nBytes
			store.mu.Unlock()
			// 8 KiB hold at most ≈ 14 answers of ≈ 600 bytes; the rest
			// were purged and their streams forgotten.
			if streams > 20 {
				t.Errorf("after %d calls the store holds %d streams of the session (%d bytes), want at most 20", calls, streams, nBytes)
			}
			if streams == 0 {
				t.Errorf("after %d calls the store holds no stream of the session: the latest answers should be kept for replay", calls)
			}
			// The store stays full of the newest answers (Gatehouse's
			// copy: the published purge emptied it whenever it filled).
			if version < protocolVersion20260728 && nBytes < 7<<10 {
				t.Errorf("after %d calls the store holds %d bytes, want it nearly full (8 KiB)", calls, nBytes)
			}
		})
	}
}
