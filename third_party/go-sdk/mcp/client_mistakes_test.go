// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// levelRecorder keeps the levels and messages of the records it handles.
type levelRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Level.String()+" "+rec.Message)
	return nil
}
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler      { return r }

// TestClientMistakesAreNotServerErrors: a client's protocol mistakes are
// answered with errors and logged at info, not as the server's errors;
// a stateful handler does not offer the versions it refuses.
func TestClientMistakesAreNotServerErrors(t *testing.T) {
	rec := &levelRecorder{}
	logger := slog.New(rec)
	server := NewServer(&Implementation{Name: "s", Version: "1"}, &ServerOptions{Logger: logger})
	h := NewStreamableHTTPHandler(func(*http.Request) *Server { return server }, &StreamableHTTPOptions{Logger: logger})
	ts := httptest.NewServer(h)
	defer ts.Close()
	post := func(sid, version, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		if version != "" {
			req.Header.Set("Mcp-Protocol-Version", version)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`
	resp, _ := post("", "", initialize)
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("initialize: HTTP %d, no session", resp.StatusCode)
	}
	post(sid, "2025-11-25", strings.Replace(initialize, `"id":1`, `"id":2`, 1)) // a second initialize
	post("", "", `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}`)  // a call before initialize, in a new session
	resp, body := post(sid, "1999-01-01", `{"jsonrpc":"2.0","id":4,"method":"ping"}`)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "2025-11-25") || strings.Contains(body, protocolVersion20260728) {
		t.Errorf("unsupported version: HTTP %d %q; want 400 listing the versions a stateful handler accepts, not %s", resp.StatusCode, body, protocolVersion20260728)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var seen bytes.Buffer
	for _, r := range rec.recs {
		seen.WriteString(r + "\n")
		if strings.HasPrefix(r, "ERROR") || strings.HasPrefix(r, "WARN") {
			t.Errorf("a client's mistake logged as %q", r)
		}
	}
	if !strings.Contains(seen.String(), "INFO client protocol error: duplicate initialize request") {
		t.Errorf("the duplicate initialize is not logged at info:\n%s", seen.String())
	}
}
