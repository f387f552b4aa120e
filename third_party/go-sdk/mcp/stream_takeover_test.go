// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"context"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestResumeTakesOverHeldStream: a client that lost a running call's
// response while the server still holds it (the connection lingers)
// resumes the stream with Last-Event-ID and gets the answer there; the
// old response ends without it. A request without Last-Event-ID for a
// held stream is still refused.
func TestResumeTakesOverHeldStream(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	server := NewServer(testImpl, nil)
	AddTool(server, &Tool{Name: "wait"}, func(ctx context.Context, _ *CallToolRequest, _ struct{}) (*CallToolResult, any, error) {
		select {
		case <-release:
			return &CallToolResult{Content: []Content{&TextContent{Text: "released"}}}, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	httpServer := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server },
		&StreamableHTTPOptions{EventStore: NewMemoryEventStore(nil)}))
	defer httpServer.Close()
	defer open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	session := ""
	do := func(method, body, lastEventID string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, httpServer.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(protocolVersionHeader, protocolVersion20251125)
		if session != "" {
			req.Header.Set(sessionIDHeader, session)
		}
		if lastEventID != "" {
			req.Header.Set("Last-Event-ID", lastEventID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do(http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`, "")
	session = resp.Header.Get(sessionIDHeader)
	resp.Body.Close()
	do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "").Body.Close()

	call := do(http.MethodPost, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"wait","arguments":{}}}`, "")
	defer call.Body.Close()
	next, stop := iter.Pull2(scanEventsLimited(call.Body, 1<<20))
	defer stop()
	prime, err, ok := next()
	if !ok || err != nil || prime.ID == "" {
		t.Fatalf("first event of the running call = %+v, %v, %v; want the priming event with an ID", prime, err, ok)
	}

	// The standalone stream: a second GET without Last-Event-ID is
	// refused while the first holds it, as published.
	get := do(http.MethodGet, "", "")
	defer get.Body.Close()
	if get.StatusCode != http.StatusOK {
		t.Fatalf("standalone GET: %s", get.Status)
	}
	if again := do(http.MethodGet, "", ""); again.StatusCode != http.StatusConflict {
		t.Errorf("second standalone GET: %s, want 409", again.Status)
		again.Body.Close()
	}

	// Do returns once the headers arrive: the resumption has the stream.
	resumed := do(http.MethodGet, "", prime.ID)
	defer resumed.Body.Close()
	if resumed.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resumed.Body)
		t.Fatalf("resume of the held stream from %q: %s %s", prime.ID, resumed.Status, b)
	}
	open()
	for e, err := range scanEventsLimited(resumed.Body, 1<<20) {
		if err != nil {
			t.Fatalf("resumed stream: %v", err)
		}
		if strings.Contains(string(e.Data), `"id":2`) {
			if !strings.Contains(string(e.Data), "released") {
				t.Errorf("resumed stream answered %s, want the call's result", e.Data)
			}
			break
		}
	}
	// The old response ends with nothing after its priming event (the
	// call ran on its request, so it ends only now).
	if e, err, ok := next(); ok {
		t.Errorf("the taken-over response carried %+v (%v) after its priming event, want its end", e, err)
	}
}
