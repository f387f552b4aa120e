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
	"sync/atomic"
	"testing"
	"time"
)

// lossyEventStore is a MemoryEventStore that, while lost is set, has
// lost every event it is asked to replay.
type lossyEventStore struct {
	*MemoryEventStore
	lost atomic.Bool
}

func (s *lossyEventStore) After(ctx context.Context, sessionID, streamID string, index int) iter.Seq2[[]byte, error] {
	if s.lost.Load() {
		return func(yield func([]byte, error) bool) { yield(nil, ErrEventsPurged) }
	}
	return s.MemoryEventStore.After(ctx, sessionID, streamID, index)
}

// rawRequest sends a request of protocol 2025-11-25 in session (none if
// empty), with Last-Event-ID if lastEventID is set, and returns the
// response with its body unread.
func rawRequest(t *testing.T, ctx context.Context, url, session, method, body, lastEventID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
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

// TestResumeTakesOverHeldStream: a client that lost a running call's
// response while the server still holds it (the connection lingers)
// resumes the stream with Last-Event-ID and gets the answer there; the
// old response ends without it. A resumption whose events cannot be
// replayed is refused and leaves the stream with its holder. The
// standalone stream is primed with an event ID, and a GET resuming it, or
// a new one, takes it over from the GET that holds it.
func TestResumeTakesOverHeldStream(t *testing.T) {
	// Each tool waits for its gate; every gate opens when the test ends,
	// before the server closes, so that no call is left waiting.
	gates := map[string]chan struct{}{"wait": make(chan struct{}), "wait_refused": make(chan struct{})}
	var once sync.Map
	open := func(name string) {
		if _, done := once.LoadOrStore(name, true); !done {
			close(gates[name])
		}
	}
	server := NewServer(testImpl, nil)
	for name, gate := range gates {
		AddTool(server, &Tool{Name: name}, func(ctx context.Context, _ *CallToolRequest, _ struct{}) (*CallToolResult, any, error) {
			select {
			case <-gate:
				return &CallToolResult{Content: []Content{&TextContent{Text: "released"}}}, nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	}
	store := &lossyEventStore{MemoryEventStore: NewMemoryEventStore(nil)}
	httpServer := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server },
		&StreamableHTTPOptions{EventStore: store}))
	defer httpServer.Close()
	defer func() {
		for name := range gates {
			open(name)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	session := ""
	do := func(method, body, lastEventID string) *http.Response {
		t.Helper()
		return rawRequest(t, ctx, httpServer.URL, session, method, body, lastEventID)
	}
	resp := do(http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`, "")
	session = resp.Header.Get(sessionIDHeader)
	resp.Body.Close()
	do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "").Body.Close()

	// call posts a call of tool and returns its priming event and the
	// rest of its response's events.
	call := func(id, tool string) (Event, func() (Event, error, bool)) {
		t.Helper()
		resp := do(http.MethodPost, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`, "")
		t.Cleanup(func() { resp.Body.Close() })
		next, stop := iter.Pull2(scanEventsLimited(resp.Body, 1<<20))
		t.Cleanup(stop)
		prime, err, ok := next()
		if !ok || err != nil || prime.ID == "" {
			t.Fatalf("first event of the running call %s = %+v, %v, %v; want the priming event with an ID", id, prime, err, ok)
		}
		return prime, next
	}
	// wantAnswer reads events from next until the answer to id.
	wantAnswer := func(stream string, next func() (Event, error, bool), id string) {
		t.Helper()
		for {
			e, err, ok := next()
			if !ok || err != nil {
				t.Fatalf("%s ended (%v) before the answer to %s", stream, err, id)
			}
			if strings.Contains(string(e.Data), `"id":`+id) {
				if !strings.Contains(string(e.Data), "released") {
					t.Errorf("%s answered %s, want the call's result", stream, e.Data)
				}
				return
			}
		}
	}

	// A resumption whose events the store has lost: 400, and the holder
	// keeps the stream and gets the answer.
	prime, held := call("2", "wait_refused")
	store.lost.Store(true)
	refused := do(http.MethodGet, "", prime.ID)
	b, _ := io.ReadAll(refused.Body)
	refused.Body.Close()
	store.lost.Store(false)
	if refused.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "failed to replay events") {
		t.Errorf("resume with lost events: %s %q, want 400 \"failed to replay events\"", refused.Status, b)
	}
	open("wait_refused")
	wantAnswer("the holder after a refused resumption", held, "2")

	// The standalone stream: a new one starts with a priming event; a GET
	// resuming from it takes the stream over from the first (which its
	// client lost), whose response ends, and gets the session's messages.
	// A GET without Last-Event-ID takes it over too.
	first := do(http.MethodGet, "", "")
	if first.StatusCode != http.StatusOK {
		t.Fatalf("standalone GET: %s", first.Status)
	}
	nextFirst, stopFirst := iter.Pull2(scanEventsLimited(first.Body, 1<<20))
	defer stopFirst()
	defer first.Body.Close()
	standalonePrime, err, ok := nextFirst()
	if !ok || err != nil || standalonePrime.Name != "prime" || standalonePrime.ID == "" {
		t.Fatalf("first event of the standalone stream = %+v, %v, %v; want the priming event with an ID", standalonePrime, err, ok)
	}
	second := do(http.MethodGet, "", standalonePrime.ID)
	defer second.Body.Close()
	if second.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(second.Body)
		t.Fatalf("standalone GET resuming from %q: %s %s", standalonePrime.ID, second.Status, b)
	}
	if e, err, ok := nextFirst(); ok {
		t.Errorf("the first standalone GET carried %+v (%v) after its priming event, want its end", e, err)
	}
	AddTool(server, &Tool{Name: "added"}, func(context.Context, *CallToolRequest, struct{}) (*CallToolResult, any, error) {
		return &CallToolResult{}, nil, nil
	})
	nextSecond, stopSecond := iter.Pull2(scanEventsLimited(second.Body, 1<<20))
	defer stopSecond()
	if e, err, ok := nextSecond(); !ok || err != nil || !strings.Contains(string(e.Data), "notifications/tools/list_changed") {
		t.Errorf("the resumed standalone stream's first event = %+v, %v, %v; want the session's tools/list_changed", e, err, ok)
	}
	third := do(http.MethodGet, "", "")
	defer third.Body.Close()
	if third.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(third.Body)
		t.Fatalf("standalone GET without Last-Event-ID over a held one: %s %s", third.Status, b)
	}
	if e, err, ok := nextSecond(); ok {
		t.Errorf("the second standalone GET carried %+v (%v) after the third took over, want its end", e, err)
	}

	// A resumption of a held stream takes it over. Do returns once the
	// headers arrive: the resumption has the stream.
	prime, old := call("3", "wait")
	resumed := do(http.MethodGet, "", prime.ID)
	defer resumed.Body.Close()
	if resumed.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resumed.Body)
		t.Fatalf("resume of the held stream from %q: %s %s", prime.ID, resumed.Status, b)
	}
	open("wait")
	next, stop := iter.Pull2(scanEventsLimited(resumed.Body, 1<<20))
	defer stop()
	wantAnswer("the resumed stream", next, "3")
	// The old response ends with nothing after its priming event (the
	// call ran on its request, so it ends only now).
	if e, err, ok := old(); ok {
		t.Errorf("the taken-over response carried %+v (%v) after its priming event, want its end", e, err)
	}
}

// TestStandaloneGETAfterPurge: a new GET for the standalone stream (a
// client's first, or its reconnection after it lost one) replays the
// standalone events the store still holds; once the oldest were purged
// it replays the rest, instead of failing with 400 (on which the go-sdk
// client's reconnection ends its session).
func TestStandaloneGETAfterPurge(t *testing.T) {
	server := NewServer(testImpl, nil)
	AddTool(server, &Tool{Name: "echo"}, func(_ context.Context, _ *CallToolRequest, in struct{ Text string }) (*CallToolResult, any, error) {
		return &CallToolResult{Content: []Content{&TextContent{Text: in.Text}}}, nil, nil
	})
	store := NewMemoryEventStore(nil)
	store.SetMaxBytes(8 << 10)
	httpServer := httptest.NewServer(NewStreamableHTTPHandler(func(*http.Request) *Server { return server },
		&StreamableHTTPOptions{EventStore: store}))
	defer httpServer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := NewClient(testImpl, nil).Connect(ctx, &StreamableClientTransport{Endpoint: httpServer.URL, DisableStandaloneSSE: true},
		&ClientSessionOptions{ProtocolVersion: protocolVersion20251125})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	get := func() *http.Response {
		t.Helper()
		return rawRequest(t, ctx, httpServer.URL, cs.ID(), http.MethodGet, "", "")
	}
	// A notification stored for the standalone stream while no GET holds
	// it, then calls enough to push it out of the 8 KiB store, then one
	// more notification that stays.
	addTool := func(name string) {
		AddTool(server, &Tool{Name: name}, func(context.Context, *CallToolRequest, struct{}) (*CallToolResult, any, error) {
			return &CallToolResult{}, nil, nil
		})
	}
	first := get() // the standalone stream, held while the first notification goes
	addTool("first")
	for e, err := range scanEventsLimited(first.Body, 1<<20) {
		if err != nil || strings.Contains(string(e.Data), "list_changed") {
			break
		}
	}
	first.Body.Close()
	text := strings.Repeat("x", 1024)
	for range 30 {
		if _, err := cs.CallTool(ctx, &CallToolParams{Name: "echo", Arguments: map[string]any{"Text": text}}); err != nil {
			t.Fatal(err)
		}
	}
	resp := get()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("standalone GET after its oldest event was purged: %s %s", resp.Status, b)
	}
	addTool("second")
	for e, err := range scanEventsLimited(resp.Body, 1<<20) {
		if err != nil {
			t.Fatalf("standalone stream: %v", err)
		}
		if strings.Contains(string(e.Data), "list_changed") {
			return
		}
	}
	t.Error("the standalone stream ended without the session's next notification")
}
