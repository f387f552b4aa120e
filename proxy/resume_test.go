package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// rawAgent speaks streamable HTTP to a gateway endpoint with hand-written
// JSON-RPC, to see what the go-sdk client hides: event IDs, a lost stream
// and its resumption.
type rawAgent struct {
	t        testing.TB
	ctx      context.Context
	endpoint string
	session  string
}

// newRawAgent opens a session (protocol 2025-11-25, whose streams carry
// event IDs) on endpoint. ctx bounds every request, so that a stream that
// never delivers fails the test instead of hanging it.
func newRawAgent(t testing.TB, ctx context.Context, endpoint string) *rawAgent {
	t.Helper()
	a := &rawAgent{t: t, ctx: ctx, endpoint: endpoint}
	resp := a.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	a.session = resp.Header.Get("Mcp-Session-Id")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if a.session == "" {
		t.Fatalf("initialize: no session ID (status %s)", resp.Status)
	}
	resp = a.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	resp.Body.Close()
	return a
}

func (a *rawAgent) post(body string) *http.Response {
	a.t.Helper()
	return a.do(http.MethodPost, body, nil)
}

// resume asks for the events after lastEventID (the Last-Event-ID header).
func (a *rawAgent) resume(lastEventID string) *http.Response {
	a.t.Helper()
	return a.do(http.MethodGet, "", http.Header{"Last-Event-Id": {lastEventID}})
}

func (a *rawAgent) do(method, body string, h http.Header) *http.Response {
	a.t.Helper()
	req, err := http.NewRequestWithContext(a.ctx, method, a.endpoint, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
	} else {
		req.Header.Set("Accept", "text/event-stream")
	}
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if a.session != "" {
		req.Header.Set("Mcp-Session-Id", a.session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp
}

// sseEvent is one server-sent event's fields.
type sseEvent struct{ event, id, data string }

// readEvent reads the next event of an event stream.
func readEvent(r *bufio.Reader) (sseEvent, error) {
	var e sseEvent
	seen := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return e, fmt.Errorf("%w (event so far %+v)", err, e)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if seen {
				return e, nil
			}
			continue
		}
		seen = true
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "event":
			e.event = v
		case "id":
			e.id = v
		case "data":
			e.data += v
		}
	}
}

// answerIn reads events from r until the one answering JSON-RPC request
// id, and returns its data.
func answerIn(t testing.TB, r *bufio.Reader, id int) string {
	t.Helper()
	for {
		e, err := readEvent(r)
		if err != nil {
			t.Fatalf("reading the stream for the answer to %d: %v", id, err)
		}
		if strings.Contains(e.data, fmt.Sprintf(`"id":%d,`, id)) || strings.HasSuffix(e.data, fmt.Sprintf(`"id":%d}`, id)) {
			return e.data
		}
	}
}

// waitTool adds a tool name to s that returns "released" once release
// is closed (or its call is cancelled: then the test sees no answer).
func waitTool(s *mcp.Server, name string, release <-chan struct{}) {
	mcp.AddTool(s, &mcp.Tool{Name: name, Description: "waits for the test"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case <-release:
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "released"}}}, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
}

// gate is a channel a test closes once, also on failure, so that no tool
// is left waiting.
func gate(t testing.TB) (c chan struct{}, open func()) {
	c = make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(c) }) }
	t.Cleanup(open)
	return c, open
}

// startCall posts a call of a waiting tool and returns its stream's
// priming event, the stream (to close) and its reader (for the rest).
func startCall(t testing.TB, a *rawAgent, id int, tool string) (sseEvent, *http.Response, *bufio.Reader) {
	t.Helper()
	resp := a.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, id, tool))
	r := bufio.NewReader(resp.Body)
	prime, err := readEvent(r)
	if err != nil {
		t.Fatalf("the running call's stream: %v", err)
	}
	if prime.event != "prime" || prime.id == "" {
		t.Fatalf("first event of a running call = %+v, want the priming event with an ID", prime)
	}
	return prime, resp, r
}

// resumeAnswer resumes a stream from lastEventID and returns the answer
// to request id it replays or delivers.
func resumeAnswer(t testing.TB, a *rawAgent, lastEventID string, id int) string {
	t.Helper()
	resp := a.resume(lastEventID)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("resume from %q: %s %s", lastEventID, resp.Status, b)
	}
	return answerIn(t, bufio.NewReader(resp.Body), id)
}

// TestResumeLostStream: an agent whose call's event stream is lost (its
// connection dropped while the call ran) gets the answer by resuming the
// stream with Last-Event-ID, as long as the answer is among the virtual
// server's newest 10 MiB of events (README); an older one is refused with
// a clear 400, and never replayed wrong. The newest streams stay
// replayable when the store is full (go-sdk copy, change 18).
func TestResumeLostStream(t *testing.T) {
	releaseHeld, openHeld := gate(t)
	releaseClosed, openClosed := gate(t)
	defer openHeld() // before the servers close: no tool left waiting
	defer openClosed()
	s := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1"}, nil)
	waitTool(s, "wait_held", releaseHeld)
	waitTool(s, "wait_closed", releaseClosed)
	const big = 1 << 20
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: "returns 1 MiB"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text + strings.Repeat("x", big)}}}, nil, nil
	})
	endpoint := anonymousGateway(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := newRawAgent(t, ctx, endpoint)

	// A stream the agent lost while the gateway still holds it (a network
	// path that broke without a word: the gateway's connection lingers).
	// The resumption takes it over at once and gets the answer; the old
	// response ends without it.
	prime, old, oldRest := startCall(t, a, 2, "wait_held")
	resp := a.resume(prime.id) // returns with the headers: taken over
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("resume of a held stream from %q: %s %s", prime.id, resp.Status, b)
	}
	openHeld()
	if got := answerIn(t, bufio.NewReader(resp.Body), 2); !strings.Contains(got, "released") {
		t.Errorf("resumed stream answered %s, want the call's result", got)
	}
	resp.Body.Close()
	rest, err := io.ReadAll(oldRest)
	old.Body.Close()
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		t.Errorf("the taken-over stream carried %q (%v) after its priming event, want a clean end", rest, err)
	}

	// A stream whose connection the agent closed: the call ends while the
	// agent has no stream, and the answer is replayed.
	prime, lost, _ := startCall(t, a, 3, "wait_closed")
	lost.Body.Close()
	openClosed()
	if got := resumeAnswer(t, a, prime.id, 3); !strings.Contains(got, "released") {
		t.Errorf("resumed stream answered %s, want the call's result", got)
	}

	resp = a.resume("not-an-event-id")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "malformed Last-Event-ID") {
		t.Errorf("resume from a malformed ID: %s %q, want 400 naming the header", resp.Status, b)
	}

	// Twelve 1 MiB answers push the first call's events out of the 10 MiB
	// store; the newest stay.
	var last sseEvent
	for i := range 12 {
		id := 10 + i
		resp := a.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"big","arguments":{"text":"call-%d"}}}`, id, id))
		r := bufio.NewReader(resp.Body)
		first, err := readEvent(r)
		if err != nil {
			t.Fatalf("call %d: %v", id, err)
		}
		if got := answerIn(t, r, id); !strings.Contains(got, fmt.Sprintf("call-%d", id)) {
			t.Fatalf("call %d answered %.100s", id, got)
		}
		resp.Body.Close()
		last = first
	}
	if last.event != "prime" || last.id == "" {
		t.Fatalf("the last big call's first event = %+v, want the priming event with an ID", last)
	}
	resp = a.resume(prime.id)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "failed to replay events") {
		t.Errorf("resume of a stream pushed out of the store: %s %q, want 400 \"failed to replay events\"", resp.Status, b)
	}
	// Resuming from the newest stream's priming event replays its answer.
	if got := resumeAnswer(t, a, last.id, 21); !strings.Contains(got, "call-21") {
		t.Errorf("the newest stream replayed %.100s, want its answer", got)
	}
}

// cutter forwards TCP connections to a server, and cuts the agents' side
// of them on demand while the server's side stays open: a network path
// that broke where only the agent noticed.
type cutter struct {
	t       testing.TB
	ln      net.Listener
	target  string
	mu      sync.Mutex
	agent   []net.Conn // the agents' side of each connection
	server  []net.Conn
	ids     chan struct{} // a value for every event with an ID that passed
	resumed chan struct{} // closed once a request with Last-Event-ID has passed
	resume  sync.Once     // closes resumed
}

func newCutter(t testing.TB, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{t: t, ln: ln, target: target, ids: make(chan struct{}, 64), resumed: make(chan struct{})}
	go c.accept()
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, conn := range append(c.agent, c.server...) {
			conn.Close()
		}
	})
	return c
}

func (c *cutter) accept() {
	for {
		a, err := c.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", c.target)
		if err != nil {
			a.Close()
			continue
		}
		c.mu.Lock()
		c.agent, c.server = append(c.agent, a), append(c.server, s)
		c.mu.Unlock()
		// Neither copy closes the server's side when the agent's goes.
		go io.Copy(s, &watch{r: a, c: c})
		go c.relay(a, s)
	}
}

// watch reads the agent's side and marks when a Last-Event-ID header went
// by.
type watch struct {
	r io.Reader
	c *cutter
}

func (w *watch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if bytes.Contains(bytes.ToLower(p[:n]), []byte("\nlast-event-id: ")) {
		w.c.resume.Do(func() { close(w.c.resumed) })
	}
	return n, err
}

// relay copies the server's side to the agent's and marks every event with
// an ID once it was written to the agent (marking it on reading would let
// a cut land before the agent had it). The tail of each chunk is kept so
// that a marker split across two reads still counts once.
func (c *cutter) relay(a, s net.Conn) {
	const marker = "\nid: "
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := a.Write(buf[:n]); werr != nil {
				return
			}
			seen := append(tail, buf[:n]...)
			for range bytes.Count(seen, []byte(marker)) {
				c.ids <- struct{}{}
			}
			// Keep what could start a marker the next chunk completes.
			keep := min(len(seen), len(marker)-1)
			tail = append([]byte(nil), seen[len(seen)-keep:]...)
		}
		if err != nil {
			return
		}
	}
}

// waitIDs waits until n more events with an ID have passed.
func (c *cutter) waitIDs(ctx context.Context, n int) {
	c.t.Helper()
	for range n {
		select {
		case <-c.ids:
		case <-ctx.Done():
			c.t.Fatal("events with an ID did not reach the agent")
		}
	}
}

// cut closes the agents' side of every connection so far.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.agent {
		a.Close()
	}
	c.agent = nil
}

// TestAgentResumesThroughACut: a go-sdk agent whose connections break
// while a call runs, where the gateway does not notice (its side of the
// connections stays open), resumes its streams with Last-Event-ID and
// takes them over from the gateway: the call's, which gets the answer,
// and the session's standalone stream (primed with an event ID; a 409
// there ended the agent's session). Its session goes on.
func TestAgentResumesThroughACut(t *testing.T) {
	release, open := gate(t)
	defer open()
	s := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1"}, nil)
	waitTool(s, "wait", release)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	endpoint := anonymousGateway(t, s)
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c := newCutter(t, u.Host)
	u.Host = c.ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: u.String()}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	type result struct {
		res *mcp.CallToolResult
		err error
	}
	// The initialize answer's stream (its priming event and the answer)
	// and the session's standalone stream (its priming event).
	c.waitIDs(ctx, 3)
	done := make(chan result, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "wait", Arguments: map[string]any{}})
		done <- result{res, err}
	}()
	c.waitIDs(ctx, 1) // the call's stream has an event ID to resume from
	c.cut()
	// The agent resumes the call's stream while the call still runs (the
	// gateway takes the stream over, or, should the answer come first,
	// replays it: either way the agent has it).
	select {
	case <-c.resumed:
	case <-ctx.Done():
		t.Fatal("the agent did not resume its stream")
	}
	open()
	r := <-done
	if r.err != nil {
		t.Fatalf("call across the cut: %v", r.err)
	}
	if got := r.res.Content[0].(*mcp.TextContent).Text; got != "released" {
		t.Errorf("call across the cut answered %q, want released", got)
	}
	if got := echo(t, cs, "echo", "after"); got != "after" {
		t.Errorf("echo after the cut = %q", got)
	}
}
