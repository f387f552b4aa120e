package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/procstat"
)

// codeUpstreamUnavailable is proxy.CodeUpstreamUnavailable, repeated here
// so the test speaks the wire.
const codeUpstreamUnavailable = -32050

// sessionProtocol is the newest session-based protocol version; raw HTTP
// tests and per-agent upstream sessions use it.
const sessionProtocol = "2025-11-25"

// rpcError returns the JSON-RPC error inside a go-sdk client error, failing
// the test if err is not one.
func rpcError(t testing.TB, err error) *jsonrpc.Error {
	t.Helper()
	var we *jsonrpc.Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T) is not a JSON-RPC error", err, err)
	}
	return we
}

// callFails calls tool and returns the error, failing if the call succeeds.
func callFails(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any) error {
	t.Helper()
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err == nil {
		t.Fatalf("call %s succeeded (%+v), want an error", tool, res)
	}
	return err
}

// readyz fetches /readyz.
func readyz(t testing.TB, g *gateway) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("decode /readyz: %v", err)
	}
	return resp.StatusCode, doc
}

func readyUpstream(doc map[string]any, name string) map[string]any {
	ups, _ := doc["upstreams"].(map[string]any)
	h, _ := ups[name].(map[string]any)
	return h
}

// pollFor polls cond every 50ms until it returns "" or d passes; then it
// fails with the last reason.
func pollFor(t testing.TB, d time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	reason := ""
	for {
		if reason = cond(); reason == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, d, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echoOnce calls echo with a short deadline and returns its text or the error.
func echoOnce(cs *mcp.ClientSession, text string) (string, error) { return callOnce(cs, "echo", text) }

// callOnce calls tool with {"text": text} and returns the text it answers.
func callOnce(cs *mcp.ClientSession, tool, text string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"text": text}})
	if err != nil {
		return "", err
	}
	if len(res.Content) == 0 {
		return "", fmt.Errorf("empty result")
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return "", fmt.Errorf("content %T", res.Content[0])
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %s", tc.Text)
	}
	return tc.Text, nil
}

// pidsWithArgs lists processes whose command line contains every arg, by
// scanning /proc (the argument list, NUL-separated, must contain the args
// as one contiguous run).
func pidsWithArgs(t testing.TB, args ...string) []int {
	t.Helper()
	want := []byte(strings.Join(args, "\x00") + "\x00")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, want) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// Skip zombies: killed, not yet reaped.
			if f, err := procstat.Fields(st); err == nil && f[0] == "Z" {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// TestUpstreamKilledMidSession kills an HTTP upstream under live agent
// sessions: calls to it fail fast with -32050 naming it, the other upstream
// is unaffected, /readyz reports it down, and when it comes back on the same
// address both the existing agent session and a fresh one recover.
func TestUpstreamKilledMidSession(t *testing.T) {
	t.Parallel()
	urlA, procA := demoHTTP(t, "streamable-http", "a")
	urlB, _ := demoHTTP(t, "streamable-http", "b")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
log: {level: debug}
upstreams:
  - {name: a, transport: streamable-http, url: %q, connect_timeout: 2s}
  - {name: b, transport: streamable-http, url: %q}
virtual_servers:
  - {name: vs-a, anonymous: true, include: [{upstream: a}]}
  - {name: vs-b, anonymous: true, include: [{upstream: b}]}
`, urlA, urlB))

	// One agent, a session on each virtual server. Protocol 2025-11-25: the
	// gateway binds an upstream session to each agent session.
	agent := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	csA := connectClient(t, agent, g.url("vs-a"), "", sessionProtocol)
	csB := connectClient(t, agent, g.url("vs-b"), "", sessionProtocol)
	if got := callText(t, csA, "echo", map[string]any{"text": "1"}); got != "[a] 1" {
		t.Fatalf("echo via vs-a = %q", got)
	}
	if got := callText(t, csB, "echo", map[string]any{"text": "1"}); got != "[b] 1" {
		t.Fatalf("echo via vs-b = %q", got)
	}

	// A call running when the upstream dies: the request had gone out, so
	// the answer says the upstream may have acted (and it is not resent).
	midCall := make(chan error, 1)
	go func() {
		_, err := csA.CallTool(ctxT(t), &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"millis": 30000}})
		midCall <- err
	}()
	waitInFlight(t, g, 1)
	procA.stop()
	we := rpcError(t, <-midCall)
	t.Logf("call in flight when the upstream died: %v, data %s", we, we.Data)
	if we.Code != codeUpstreamUnavailable || !strings.Contains(we.Message, "the request had been sent, so the upstream may have acted on it") {
		t.Errorf("error = %d %q, want %d saying the upstream may have acted", we.Code, we.Message, codeUpstreamUnavailable)
	}
	if string(we.Data) != `{"outcome":"unknown","upstream":"a"}` {
		t.Errorf("error data = %s, want the upstream and outcome unknown", we.Data)
	}

	start := time.Now()
	err := callFails(t, csA, "echo", map[string]any{"text": "2"})
	elapsed := time.Since(start)
	we = rpcError(t, err)
	t.Logf("call on the killed upstream: %v after %s", we, elapsed)
	if we.Code != codeUpstreamUnavailable || !strings.Contains(we.Message, `upstream "a"`) {
		t.Errorf("error = %d %q, want %d naming upstream \"a\"", we.Code, we.Message, codeUpstreamUnavailable)
	}
	if elapsed > 10*time.Second {
		t.Errorf("failing call took %s, want well under the 60s call timeout", elapsed)
	}
	if strings.Contains(we.Message, "http://") || strings.Contains(we.Message, "127.0.0.1") {
		t.Errorf("error = %q names the upstream's address to the agent", we.Message)
	}
	if string(we.Data) != `{"upstream":"a"}` { // refused: nothing was sent
		t.Errorf("error data = %s, want {\"upstream\":\"a\"}", we.Data)
	}

	// Calls keep failing fast while a is down; b is unaffected.
	for i := range 3 {
		start := time.Now()
		we := rpcError(t, callFails(t, csA, "echo", map[string]any{"text": "again"}))
		if we.Code != codeUpstreamUnavailable || time.Since(start) > 5*time.Second {
			t.Errorf("call %d while down: %d %q after %s", i, we.Code, we.Message, time.Since(start))
		}
		if got := callText(t, csB, "echo", map[string]any{"text": "still"}); got != "[b] still" {
			t.Errorf("echo via vs-b while a is down = %q", got)
		}
	}
	// A new agent session on vs-a connects (the face is the gateway's) but
	// its calls fail the same way.
	fresh := connectClient(t, mcp.NewClient(&mcp.Implementation{Name: "agent2", Version: "1"}, nil), g.url("vs-a"), "", sessionProtocol)
	if we := rpcError(t, callFails(t, fresh, "echo", map[string]any{"text": "x"})); we.Code != codeUpstreamUnavailable {
		t.Errorf("fresh session while a is down: %v", we)
	}

	pollFor(t, 15*time.Second, "/readyz shows a down", func() string {
		code, doc := readyz(t, g)
		a, b := readyUpstream(doc, "a"), readyUpstream(doc, "b")
		if code != http.StatusOK || doc["status"] != "degraded" || a["state"] != "down" || b["state"] != "ready" {
			return fmt.Sprintf("HTTP %d %v", code, doc)
		}
		if e, _ := a["error"].(string); e == "" {
			return fmt.Sprintf("no error reported for a: %v", a)
		}
		return ""
	})

	// Bring a back on the same address.
	addrA := strings.TrimPrefix(strings.TrimSuffix(urlA, "/mcp"), "http://")
	startProc(t, filepath.Join(binDir, "demo-server"), "-transport", "streamable-http", "-addr", addrA, "-name", "a")
	waitTCP(t, addrA)
	restarted := time.Now()
	pollFor(t, 40*time.Second, "the existing agent session recovers", func() string {
		got, err := echoOnce(csA, "3")
		if err != nil {
			return err.Error()
		}
		if got != "[a] 3" {
			return "echo = " + got
		}
		return ""
	})
	t.Logf("existing session recovered %s after the restart", time.Since(restarted))
	if got, err := echoOnce(fresh, "4"); err != nil || got != "[a] 4" {
		t.Errorf("session opened while a was down, after recovery: %q, %v", got, err)
	}
	newer := connectClient(t, mcp.NewClient(&mcp.Implementation{Name: "agent3", Version: "1"}, nil), g.url("vs-a"), "", sessionProtocol)
	if got := callText(t, newer, "echo", map[string]any{"text": "5"}); got != "[a] 5" {
		t.Errorf("new session after recovery: %q", got)
	}
	pollFor(t, 10*time.Second, "/readyz ok again", func() string {
		code, doc := readyz(t, g)
		if code != http.StatusOK || doc["status"] != "ok" {
			return fmt.Sprintf("HTTP %d %v", code, doc)
		}
		if r, _ := readyUpstream(doc, "a")["restarts"].(float64); r < 1 {
			return fmt.Sprintf("restarts of a = %v, want >= 1", r)
		}
		return ""
	})
}

// TestUpstreamHung freezes an HTTP upstream (SIGSTOP: connections are
// accepted, nothing answers): calls fail with -32051 after the upstream's
// timeout, naming it, and succeed again once it is thawed.
func TestUpstreamHung(t *testing.T) {
	t.Parallel()
	u, up := demoHTTP(t, "streamable-http", "frozen")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: f, transport: streamable-http, url: %q, timeout: 1s}
virtual_servers:
  - {name: vs, anonymous: true, include: [{upstream: f}]}
`, u))
	cs := connectClient(t, mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil), g.url("vs"), "", sessionProtocol)
	if got := callText(t, cs, "echo", map[string]any{"text": "1"}); got != "[frozen] 1" {
		t.Fatalf("echo = %q", got)
	}
	up.signal(syscall.SIGSTOP)
	// The stop takes effect when the kernel next schedules the process:
	// wait until it is stopped, or a busy machine lets a call through.
	pollFor(t, 5*time.Second, "the upstream to be stopped", func() string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", up.cmd.Process.Pid))
		if err != nil {
			return err.Error()
		}
		if f, err := procstat.Fields(b); err == nil && f[0] == "T" {
			return ""
		}
		return "not stopped yet"
	})
	thawed := false
	thaw := func() {
		if !thawed {
			up.signal(syscall.SIGCONT)
			thawed = true
		}
	}
	defer thaw()

	start := time.Now()
	we := rpcError(t, callFails(t, cs, "echo", map[string]any{"text": "2"}))
	elapsed := time.Since(start)
	t.Logf("call on the frozen upstream: %d %q after %s", we.Code, we.Message, elapsed)
	if we.Code != -32051 || !strings.Contains(we.Message, `upstream "f"`) || !strings.Contains(we.Message, "1s") {
		t.Errorf("error = %d %q, want -32051 naming upstream \"f\" and its 1s timeout", we.Code, we.Message)
	}
	if elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("timed out after %s, want about the configured 1s", elapsed)
	}
	if !strings.Contains(string(we.Data), `"upstream":"f"`) {
		t.Errorf("error data = %s", we.Data)
	}

	thaw()
	pollFor(t, 20*time.Second, "calls succeed after the upstream is thawed", func() string {
		got, err := echoOnce(cs, "3")
		if err != nil {
			return err.Error()
		}
		if got != "[frozen] 3" {
			return "echo = " + got
		}
		return ""
	})
}

// TestStdioUpstreamRespawn kills a stdio upstream's process: the gateway
// respawns it and calls recover.
func TestStdioUpstreamRespawn(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("respawn-%d", time.Now().UnixNano())
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: s, transport: stdio, command: %q, args: [-transport, stdio, -name, %s]}
virtual_servers:
  - {name: vs, anonymous: true, include: [{upstream: s}]}
`, filepath.Join(binDir, "demo-server"), name))
	cs := connect(t, "streamable-http", g.url("vs"), "", nil)
	if got := callText(t, cs, "echo", map[string]any{"text": "1"}); got != "["+name+"] 1" {
		t.Fatalf("echo = %q", got)
	}
	pids := pidsWithArgs(t, "-name", name)
	if len(pids) != 1 {
		t.Fatalf("found %d processes for %s, want 1: %v", len(pids), name, pids)
	}
	old := pids[0]
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()

	// Right after the kill a call either fails fast, naming the upstream, or
	// already reaches the respawned process.
	start := time.Now()
	if got, err := echoOnce(cs, "2"); err != nil {
		we := rpcError(t, err)
		if we.Code != codeUpstreamUnavailable || !strings.Contains(we.Message, `upstream "s"`) {
			t.Errorf("call right after the kill: %d %q", we.Code, we.Message)
		}
	} else if got != "["+name+"] 2" {
		t.Errorf("call right after the kill = %q", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call right after the kill took %s", d)
	}

	pollFor(t, 20*time.Second, "calls recover", func() string {
		got, err := echoOnce(cs, "3")
		if err != nil {
			return err.Error()
		}
		if got != "["+name+"] 3" {
			return "echo = " + got
		}
		return ""
	})
	t.Logf("recovered %s after the kill", time.Since(killed))
	pids = pidsWithArgs(t, "-name", name)
	if len(pids) != 1 || pids[0] == old {
		t.Errorf("processes after respawn: %v (killed %d), want one new", pids, old)
	}
	// Health follows the session a moment later (the upstream's catalog
	// is reloaded before it reports ready), so it is polled.
	pollFor(t, 10*time.Second, "/readyz to report s ready with restarts >= 1", func() string {
		_, doc := readyz(t, g)
		if h := readyUpstream(doc, "s"); h["state"] != "ready" || h["restarts"].(float64) < 1 {
			return fmt.Sprint(h)
		}
		return ""
	})
	fresh := connect(t, "streamable-http", g.url("vs"), "", nil)
	if got := callText(t, fresh, "echo", map[string]any{"text": "4"}); got != "["+name+"] 4" {
		t.Errorf("new session after respawn: %q", got)
	}
}

// TestStdioCrashLoopBackoff runs a stdio upstream that initializes and then
// dies at once, over and over: the gateway must back off between respawns
// rather than spin.
func TestStdioCrashLoopBackoff(t *testing.T) {
	t.Parallel()
	demo := filepath.Join(binDir, "demo-server")
	// The server lives 300ms: long enough to initialize and be listed.
	script := fmt.Sprintf("exec timeout -s KILL 0.3 %q -transport stdio -name crashy", demo)
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: crashy, transport: stdio, command: /bin/sh, args: [-c, %q]}
virtual_servers:
  - {name: vs, anonymous: true, include: [{upstream: crashy}]}
`, script))
	time.Sleep(6 * time.Second) // the behaviour under test is a rate
	_, doc := readyz(t, g)
	restarts, _ := readyUpstream(doc, "crashy")["restarts"].(float64)
	spawns := strings.Count(g.Output(), `"state":"ready"`)
	t.Logf("in 6s: %v restarts, %d spawns reached ready", restarts, spawns)
	// Without backoff a 300ms process is respawned ~18 times in 6s; with
	// 250ms doubling backoff (0.25+0.5+1+2+... plus 0.3s lifetimes) about 5.
	if spawns > 9 {
		t.Errorf("crash-looping upstream was respawned %d times in 6s: no backoff", spawns)
	}
	if spawns < 2 {
		t.Errorf("crash-looping upstream respawned %d times in 6s: not respawned", spawns)
	}
}

// Auth.

// TestAuth covers API-key authentication on a virtual server without
// anonymous access, key sources (sha256, env, file), expiry, session
// binding to the agent, and that keys never reach the log.
func TestAuth(t *testing.T) {
	t.Parallel()
	alice, bob, carol, dave := identity.NewAPIKey(), identity.NewAPIKey(), identity.NewAPIKey(), identity.NewAPIKey()
	unknown := identity.NewAPIKey()
	keyFile := filepath.Join(t.TempDir(), "carol.key")
	if err := os.WriteFile(keyFile, []byte(carol+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join(binDir, "demo-server")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
log: {level: debug}
upstreams:
  - {name: d, transport: stdio, command: %q, args: [-transport, stdio, -name, authy]}
virtual_servers:
  - {name: secure, include: [{upstream: d}]}
  - {name: open, anonymous: true, include: [{upstream: d}]}
agents:
  - {name: alice, api_keys: [{sha256: %s}]}
  - {name: bob, api_keys: [{env: BOB_GATEHOUSE_KEY}]}
  - {name: carol, api_keys: [{file: %q}]}
  - {name: dave, api_keys: [{sha256: %s, expires: "2020-01-01T00:00:00Z"}]}
`, demo, identity.HashKey(alice), keyFile, identity.HashKey(dave)), "BOB_GATEHOUSE_KEY="+bob)

	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	for _, tc := range []struct{ name, key, hint string }{
		{"no credentials", "", "authentication required"},
		{"unknown key", unknown, "invalid api key"},
		{"expired key", dave, "api key expired"},
		{"not bearer", "", "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &rawSession{url: g.url("secure"), key: tc.key}
			if tc.name == "not bearer" {
				s.auth = "Basic " + alice
			}
			r := s.post(t, init)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d (%s), want 401", r.status, r.body)
			}
			wa := r.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, tc.hint) {
				t.Errorf("WWW-Authenticate = %q, want Bearer ... %q", wa, tc.hint)
			}
			if !strings.Contains(r.body, tc.hint) {
				t.Errorf("body = %q, want %q", r.body, tc.hint)
			}
		})
	}
	// The go-sdk client without a key cannot connect.
	if _, err := dial("streamable-http", g.url("secure"), "", nil); err == nil {
		t.Error("keyless go-sdk client connected to a non-anonymous virtual server")
	}

	for _, tc := range []struct{ agent, key string }{{"alice (sha256)", alice}, {"bob (env)", bob}, {"carol (file)", carol}} {
		t.Run(tc.agent, func(t *testing.T) {
			cs := connect(t, "streamable-http", g.url("secure"), tc.key, nil)
			if got := callText(t, cs, "echo", map[string]any{"text": "hi"}); got != "[authy] hi" {
				t.Errorf("echo = %q", got)
			}
		})
	}
	// The stdio upstream does not inherit the gateway's environment, so the
	// env-sourced key does not leak into tool processes.
	cs := connect(t, "streamable-http", g.url("secure"), alice, nil)
	if got := callText(t, cs, "env", map[string]any{"text": "BOB_GATEHOUSE_KEY"}); got != "" {
		t.Errorf("stdio upstream sees BOB_GATEHOUSE_KEY = %q", got)
	}

	// Anonymous virtual server: no credentials needed; a bad key is still
	// refused rather than ignored.
	anon := connect(t, "streamable-http", g.url("open"), "", nil)
	if got := callText(t, anon, "echo", map[string]any{"text": "anon"}); got != "[authy] anon" {
		t.Errorf("anonymous echo = %q", got)
	}
	if r := (&rawSession{url: g.url("open"), key: unknown}).post(t, init); r.status != http.StatusUnauthorized {
		t.Errorf("unknown key on the anonymous virtual server: %d, want 401", r.status)
	}

	// A session belongs to the agent that created it.
	sa := &rawSession{url: g.url("secure"), key: alice}
	sa.initialize(t)
	list := `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}`
	if r := sa.post(t, list); r.status != http.StatusOK || r.response(t, 7).Error != nil {
		t.Fatalf("alice's own session: %d %s", r.status, r.body)
	}
	hijack := &rawSession{url: g.url("secure"), key: bob, sid: sa.sid}
	r := hijack.post(t, list)
	t.Logf("bob with alice's session: %d %q", r.status, r.body)
	if r.status < 400 || r.status >= 500 {
		t.Errorf("bob using alice's session: %d %s, want 4xx", r.status, r.body)
	}
	if strings.Contains(r.body, `"tools"`) {
		t.Errorf("bob received alice's session's tools: %s", r.body)
	}
	if r := (&rawSession{url: g.url("secure"), sid: sa.sid}).post(t, list); r.status != http.StatusUnauthorized {
		t.Errorf("alice's session without a key: %d, want 401", r.status)
	}
	// A GET (standalone stream) and DELETE with another agent's key are
	// refused too, and the session survives them.
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		if st := hijack.do(t, method); st < 400 || st >= 500 {
			t.Errorf("%s of alice's session with bob's key: %d, want 4xx", method, st)
		}
	}
	if r := sa.post(t, list); r.status != http.StatusOK || r.response(t, 7).Error != nil {
		t.Errorf("alice's session after the hijack attempts: %d %s", r.status, r.body)
	}
	// On the anonymous virtual server too, a session alice opened with her
	// key cannot be used without it.
	so := &rawSession{url: g.url("open"), key: alice}
	so.initialize(t)
	if r := (&rawSession{url: g.url("open"), sid: so.sid}).post(t, list); r.status < 400 || r.status >= 500 {
		t.Errorf("alice's session on the anonymous virtual server, used without a key: %d %s, want 4xx", r.status, r.body)
	}
	if r := so.post(t, list); r.status != http.StatusOK || r.response(t, 7).Error != nil {
		t.Errorf("alice's session on the anonymous virtual server: %d %s", r.status, r.body)
	}

	// The legacy SSE transport: the agent is who the key says (not
	// anonymous), and its session is bound to it as well.
	alicesCalls := func() (n int) {
		for _, e := range logEntries(g) {
			if e["msg"] == "request" && e["method"] == "tools/call" && e["vs"] == "secure" && e["agent"] == "alice" && e["session"] != "" {
				n++
			}
		}
		return n
	}
	before := alicesCalls()
	sse := connect(t, "sse", g.sseURL("secure"), alice, nil)
	if got := callText(t, sse, "echo", map[string]any{"text": "over sse"}); got != "[authy] over sse" {
		t.Errorf("echo over legacy SSE = %q", got)
	}
	pollFor(t, 5*time.Second, "the SSE call logged as alice's, with its session", func() string {
		if n := alicesCalls(); n != before+1 {
			return fmt.Sprintf("%d tools/call of alice with a session logged, want %d", n, before+1)
		}
		return ""
	})
	endpoint := sseEndpoint(t, g.sseURL("secure"), alice)
	for _, tc := range []struct {
		who, key string
		want     int
	}{{"bob", bob, http.StatusForbidden}, {"nobody", "", http.StatusUnauthorized}, {"alice", alice, http.StatusAccepted}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+g.addr+endpoint, strings.NewReader(init))
		req.Header.Set("Content-Type", "application/json")
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s posting to alice's SSE session: %d %q, want %d", tc.who, resp.StatusCode, body, tc.want)
		}
	}

	out := g.Output()
	for name, k := range map[string]string{"alice": alice, "bob": bob, "carol": carol, "dave": dave, "unknown": unknown} {
		if strings.Contains(out, k) {
			t.Errorf("the gateway log contains %s's key", name)
		}
	}
	if !strings.Contains(out, "authentication failed") {
		t.Errorf("authentication failures were not logged")
	}
}

// Raw HTTP.

// rawSession speaks streamable HTTP by hand, to send what no SDK would.
type rawSession struct {
	url, key, sid string
	auth          string // overrides the Authorization header
}

type rawResp struct {
	status int
	header http.Header
	body   string
	msgs   []rpcMsg
}

type rpcMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// response returns the JSON-RPC response with the given id.
func (r rawResp) response(t testing.TB, id int) rpcMsg {
	t.Helper()
	for _, m := range r.msgs {
		if string(m.ID) == strconv.Itoa(id) && m.Method == "" {
			return m
		}
	}
	t.Fatalf("no response with id %d in HTTP %d %q", id, r.status, r.body)
	return rpcMsg{}
}

func (s *rawSession) request(ctx context.Context, method string, body io.Reader) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, method, s.url, body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", sessionProtocol)
	if s.sid != "" {
		req.Header.Set("Mcp-Session-Id", s.sid)
	}
	switch {
	case s.auth != "":
		req.Header.Set("Authorization", s.auth)
	case s.key != "":
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	return req
}

// post sends body and reads the whole answer; a hang fails the test.
func (s *rawSession) post(t testing.TB, body string) rawResp {
	t.Helper()
	return s.postReader(t, strings.NewReader(body))
}

func (s *rawSession) postReader(t testing.TB, body io.Reader) rawResp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(s.request(ctx, http.MethodPost, body))
	if err != nil {
		t.Fatalf("POST %s: %v", s.url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer (HTTP %d, %q so far): %v", resp.StatusCode, b, err)
	}
	r := rawResp{status: resp.StatusCode, header: resp.Header, body: string(b)}
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "text/event-stream"):
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.TrimSpace(data) != "" {
				var m rpcMsg
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					t.Fatalf("bad SSE data %q: %v", data, err)
				}
				r.msgs = append(r.msgs, m)
			}
		}
	case strings.HasPrefix(ct, "application/json"):
		var m rpcMsg
		if json.Unmarshal(b, &m) == nil {
			r.msgs = append(r.msgs, m)
		}
	}
	return r
}

// do sends a bodiless GET or DELETE and returns the status; a GET stream
// that opens is closed at once.
func (s *rawSession) do(t testing.TB, method string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(s.request(ctx, method, nil))
	if err != nil {
		t.Fatalf("%s %s: %v", method, s.url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// initialize opens a session: initialize, then notifications/initialized.
func (s *rawSession) initialize(t testing.TB) {
	t.Helper()
	r := s.post(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if r.status != http.StatusOK {
		t.Fatalf("initialize: HTTP %d %q", r.status, r.body)
	}
	if res := r.response(t, 1); res.Error != nil {
		t.Fatalf("initialize: %+v", res.Error)
	}
	s.sid = r.header.Get("Mcp-Session-Id")
	if s.sid == "" {
		t.Fatalf("initialize: no Mcp-Session-Id")
	}
	if r := s.post(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: HTTP %d %q", r.status, r.body)
	}
}

// ping checks that the session still answers.
func (s *rawSession) ping(t testing.TB, id int) {
	t.Helper()
	r := s.post(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, id))
	if r.status != http.StatusOK {
		t.Fatalf("ping: HTTP %d %q", r.status, r.body)
	}
	if m := r.response(t, id); m.Error != nil {
		t.Fatalf("ping: %+v", m.Error)
	}
}

// unsizedReader hides a reader's length, so the request goes out chunked,
// without Content-Length.
type unsizedReader struct{ r io.Reader }

func (c unsizedReader) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestBodyLimit sends bodies over limits.max_body_bytes: they are refused
// with 413 and a message naming the limit, and the gateway keeps serving.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	u, _ := demoHTTP(t, "streamable-http", "limity")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
limits: {max_body_bytes: 2048}
upstreams:
  - {name: d, transport: streamable-http, url: %q}
virtual_servers:
  - {name: vs, anonymous: true, include: [{upstream: d}]}
`, u))
	big := func(id int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":%q}}}`, id, strings.Repeat("x", 4096))
	}

	// With Content-Length, before a session exists: the gateway refuses it.
	s := &rawSession{url: g.url("vs")}
	r := s.post(t, big(1))
	t.Logf("oversized, Content-Length, no session: %d %q", r.status, r.body)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "2048") || !strings.Contains(r.body, "max_body_bytes") {
		t.Errorf("oversized POST: %d %q, want 413 naming the 2048-byte limit", r.status, r.body)
	}

	s.initialize(t)
	r = s.post(t, big(2))
	t.Logf("oversized, Content-Length, in session: %d %q", r.status, r.body)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "2048") {
		t.Errorf("oversized POST in a session: %d %q, want 413", r.status, r.body)
	}
	// Chunked, so only reading the body finds out.
	r = s.postReader(t, unsizedReader{strings.NewReader(big(3))})
	t.Logf("oversized, chunked, in session: %d %q", r.status, r.body)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "2048") || !strings.Contains(r.body, `"code":-32600`) {
		t.Errorf("oversized chunked POST: %d %q, want 413 with the JSON-RPC answer naming the limit", r.status, r.body)
	}
	// A chunked body under the limit is served as one with a length.
	r = s.postReader(t, unsizedReader{strings.NewReader(`{"jsonrpc":"2.0","id":31,"method":"logging/setLevel","params":{"level":"verbose"}}`)})
	if m := r.response(t, 31); m.Error == nil || m.Error.Code != jsonrpc.CodeInvalidParams || !strings.Contains(m.Error.Message, "emergency") {
		t.Errorf("chunked logging/setLevel with a bad level: %d %q, want -32602 naming the levels", r.status, r.body)
	}
	s.ping(t, 4)
	// Just under the limit passes.
	small := fmt.Sprintf(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":%q}}}`, strings.Repeat("y", 1500))
	if r := s.post(t, small); r.status != http.StatusOK || r.response(t, 5).Error != nil {
		t.Errorf("POST under the limit: %d %q", r.status, r.body)
	}

	// A go-sdk agent sending too much gets an error, not a hang; the gateway
	// goes on serving new sessions.
	cs := connect(t, "streamable-http", g.url("vs"), "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": strings.Repeat("z", 4096)}})
	t.Logf("go-sdk client, oversized call: %v", err)
	if err == nil || ctx.Err() != nil {
		t.Errorf("oversized call from the go-sdk client: err=%v ctx=%v, want a prompt error", err, ctx.Err())
	}
	if got, err := echoOnce(cs, "same session"); err != nil {
		t.Logf("the go-sdk client session after its oversized call: %v", err)
	} else if got != "[limity] same session" {
		t.Errorf("echo on the same session = %q", got)
	}
	cs2 := connect(t, "streamable-http", g.url("vs"), "", nil)
	if got := callText(t, cs2, "echo", map[string]any{"text": "after"}); got != "[limity] after" {
		t.Errorf("echo after the oversized requests = %q", got)
	}
}

// TestMalformedJSONRPC posts broken JSON-RPC to a live session: every case
// gets a prompt, clear refusal and the session keeps working.
func TestMalformedJSONRPC(t *testing.T) {
	t.Parallel()
	g := anonymousDemoGateway(t, "malformy")
	s := &rawSession{url: g.url("vs")}
	s.initialize(t)
	s.ping(t, 2)

	// Stateful streamable handler, MCP-Protocol-Version 2025-11-25:
	// transport-level rejections are HTTP 400 with a plain-text reason; a
	// call the handler refuses before dispatch (unknown method, missing
	// params) gets HTTP 400 with a JSON-RPC error carrying its ID (go-sdk
	// change 30); requests that reach the JSON-RPC layer get JSON-RPC
	// errors.
	for i, tc := range []struct {
		name, body string
		status     int
		code       int64  // JSON-RPC error code in the body, 0: none
		text       string // in the body
	}{
		{"invalid JSON", `{"jsonrpc":"2.0","id":10,"method":"ping"`, http.StatusBadRequest, 0, "malformed payload"},
		{"not an object", `"hello"`, http.StatusBadRequest, 0, "malformed payload"},
		{"wrong jsonrpc version", `{"jsonrpc":"1.0","id":11,"method":"ping"}`, http.StatusBadRequest, 0, "invalid message version tag"},
		{"no jsonrpc member", `{"id":12,"method":"ping"}`, http.StatusBadRequest, 0, "invalid message version tag"},
		{"missing method and id", `{"jsonrpc":"2.0","params":{}}`, http.StatusBadRequest, 0, "malformed payload"},
		{"batch", `[{"jsonrpc":"2.0","id":13,"method":"ping"},{"jsonrpc":"2.0","id":14,"method":"tools/list"}]`, http.StatusBadRequest, 0, "batching is not supported"},
		{"empty batch", `[]`, http.StatusBadRequest, 0, "empty batch"},
		{"unknown method", `{"jsonrpc":"2.0","id":15,"method":"no/such/method","params":{}}`, http.StatusBadRequest, jsonrpc.CodeMethodNotFound, "is not supported"},
		{"request without id", `{"jsonrpc":"2.0","method":"tools/list","params":{}}`, http.StatusBadRequest, 0, "missing id"},
		{"missing required params", `{"jsonrpc":"2.0","id":16,"method":"tools/call"}`, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "params"},
		{"empty body", ``, http.StatusBadRequest, 0, "non-empty body"},
		{"fractional id", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, http.StatusBadRequest, 0, "request ID 1.5 is not an integer"},
		{"id beyond 2^53", `{"jsonrpc":"2.0","id":9223372036854775808,"method":"ping"}`, http.StatusBadRequest, 0, "request ID ≈9.223372036854776e+18 is beyond ±(2^53-1)"},
		{"id 2^53+1", `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, http.StatusBadRequest, 0, "is beyond ±(2^53-1)"},
		{"tools/call params of the wrong type", `{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":42}}`, http.StatusOK, jsonrpc.CodeInvalidParams, "name: got number, want a string"},
		{"tools/call unknown tool", `{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":"nope"}}`, http.StatusOK, jsonrpc.CodeInvalidParams, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := s.post(t, tc.body)
			t.Logf("%s -> HTTP %d %q in %s", tc.name, r.status, strings.TrimSpace(r.body), time.Since(start).Round(time.Millisecond))
			if r.status != tc.status {
				t.Errorf("HTTP %d, want %d", r.status, tc.status)
			}
			if tc.code != 0 {
				if len(r.msgs) != 1 || r.msgs[0].Error == nil || r.msgs[0].Error.Code != tc.code {
					t.Errorf("messages %+v, want one error %d", r.msgs, tc.code)
				}
			}
			if !strings.Contains(r.body, tc.text) {
				t.Errorf("body %q does not contain %q", r.body, tc.text)
			}
			s.ping(t, 100+i)
		})
	}

	// A response-shaped message (id, no method) is taken as the client's
	// answer to a server request: accepted with 202 and dropped.
	r := s.post(t, `{"jsonrpc":"2.0","id":19}`)
	t.Logf("missing method (id only) -> HTTP %d %q", r.status, r.body)
	if r.status != http.StatusAccepted {
		t.Errorf("id-only message: HTTP %d %q, want 202", r.status, r.body)
	}
	s.ping(t, 200)

	// An unknown method under the sessionless protocol gets a JSON-RPC
	// -32601 (with HTTP 404) from the go-sdk, before the stateful handler
	// would reject the version.
	s26 := &rawSession{url: g.url("vs"), sid: s.sid}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := s26.request(ctx, http.MethodPost, strings.NewReader(`{"jsonrpc":"2.0","id":20,"method":"no/such/method","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`))
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("unknown method, protocol 2026-07-28 -> HTTP %d %q", resp.StatusCode, b)
	var m rpcMsg
	if err := json.Unmarshal(b, &m); err != nil || m.Error == nil || m.Error.Code != jsonrpc.CodeMethodNotFound {
		t.Errorf("unknown method under 2026-07-28: HTTP %d %q, want -32601", resp.StatusCode, b)
	}
	s.ping(t, 201)

	// The session still serves real work.
	r = s.post(t, `{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{"text":"still here"}}}`)
	if m := r.response(t, 21); m.Error != nil || !strings.Contains(string(m.Result), "[malformy] still here") {
		t.Errorf("echo after the malformed requests: %s", r.body)
	}
	// Malformed input to a path that is not a session: unknown session id.
	if r := (&rawSession{url: g.url("vs"), sid: "no-such-session"}).post(t, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); r.status != http.StatusNotFound {
		t.Errorf("unknown session id: HTTP %d %q, want 404", r.status, r.body)
	}
	// An unknown virtual server, without credentials: 401, as for one
	// without anonymous access (names are not told to strangers).
	if r := (&rawSession{url: "http://" + g.addr + "/mcp/no-such-vs"}).post(t, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); r.status != http.StatusUnauthorized {
		t.Errorf("unknown virtual server: HTTP %d %q, want 401", r.status, r.body)
	}
}

// TestToolNotInVirtualServer calls tools the virtual server does not
// expose: each is refused with a JSON-RPC error and never reaches the
// upstream.
func TestToolNotInVirtualServer(t *testing.T) {
	t.Parallel()
	u, up := demoHTTP(t, "streamable-http", "filtery")
	demo := filepath.Join(binDir, "demo-server")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: h, transport: streamable-http, url: %q}
  - {name: s, transport: stdio, command: %q, args: [-transport, stdio, -name, filtery-stdio]}
virtual_servers:
  - {name: only-echo, anonymous: true, include: [{upstream: h, tools: [echo], rename: {echo: say}}]}
  - {name: no-add, anonymous: true, include: [{upstream: s, exclude_tools: [add, env]}]}
`, u, demo))

	cs := connect(t, "streamable-http", g.url("only-echo"), "", nil)
	if got := callText(t, cs, "say", map[string]any{"text": "hi"}); got != "[filtery] hi" {
		t.Fatalf("say = %q", got)
	}
	if names := toolNames(t, cs); len(names) != 1 || names[0] != "say" {
		t.Errorf("tools = %v, want [say]", names)
	}
	for _, name := range []string{"add", "echo", "slow", "nonexistent"} {
		we := rpcError(t, callFails(t, cs, name, map[string]any{"a": 1, "b": 2, "text": "x", "millis": 1}))
		t.Logf("only-echo: call %s -> %d %q", name, we.Code, we.Message)
		if we.Code != jsonrpc.CodeInvalidParams || !strings.Contains(we.Message, name) {
			t.Errorf("call %s: %d %q, want -32602 naming the tool", name, we.Code, we.Message)
		}
	}
	// A raw request cannot get around the face either.
	s := &rawSession{url: g.url("only-echo")}
	s.initialize(t)
	r := s.post(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}`)
	if m := r.response(t, 2); m.Error == nil {
		t.Errorf("raw tools/call add: %s", r.body)
	}

	ss := connect(t, "streamable-http", g.url("no-add"), "", nil)
	if got := callText(t, ss, "echo", map[string]any{"text": "hi"}); got != "[filtery-stdio] hi" {
		t.Fatalf("echo via no-add = %q", got)
	}
	for _, name := range []string{"add", "env"} {
		we := rpcError(t, callFails(t, ss, name, map[string]any{"a": 1, "b": 2, "text": "PATH"}))
		if we.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("no-add: call %s: %d %q", name, we.Code, we.Message)
		}
	}

	// What reached the upstreams: the HTTP upstream's stderr is its process
	// output; the stdio upstream's is logged by the gateway.
	pollFor(t, 5*time.Second, "upstreams logged the allowed calls", func() string {
		if !strings.Contains(up.Output(), "demo-server filtery: tools/call echo") {
			return "HTTP upstream did not log tools/call echo"
		}
		if !strings.Contains(g.Output(), "demo-server filtery-stdio: tools/call echo") {
			return "stdio upstream did not log tools/call echo"
		}
		return ""
	})
	for _, line := range []string{"tools/call add", "tools/call slow", "tools/call nonexistent", "tools/call say"} {
		if strings.Contains(up.Output(), line) {
			t.Errorf("HTTP upstream received %q", line)
		}
	}
	for _, line := range []string{"filtery-stdio: tools/call add", "filtery-stdio: tools/call env"} {
		if strings.Contains(g.Output(), line) {
			t.Errorf("stdio upstream received %q", line)
		}
	}
	if n := strings.Count(up.Output(), "tools/call echo"); n != 1 {
		t.Errorf("HTTP upstream saw tools/call echo %d times, want 1 (only the allowed call)", n)
	}
}

// TestCancellation cancels a slow call: it returns promptly, the gateway
// records it as cancelled (not after the tool's 30s), and the session
// keeps working. Over an HTTP upstream (per-agent session) and a stdio one
// (shared session).
func TestCancellation(t *testing.T) {
	t.Parallel()
	u, _ := demoHTTP(t, "streamable-http", "cancelly")
	demo := filepath.Join(binDir, "demo-server")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: h, transport: streamable-http, url: %q}
  - {name: s, transport: stdio, command: %q, args: [-transport, stdio, -name, cancelly-stdio]}
virtual_servers:
  - {name: vs-http, anonymous: true, include: [{upstream: h}]}
  - {name: vs-stdio, anonymous: true, include: [{upstream: s}]}
`, u, demo))
	for _, tc := range []struct{ vs, name string }{{"vs-http", "cancelly"}, {"vs-stdio", "cancelly-stdio"}} {
		t.Run(tc.vs, func(t *testing.T) {
			cs := connect(t, "streamable-http", g.url(tc.vs), "", nil)
			for round := range 2 {
				ctx, cancel := context.WithCancel(context.Background())
				timer := time.AfterFunc(200*time.Millisecond, cancel)
				start := time.Now()
				_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"millis": 30000}})
				elapsed := time.Since(start)
				timer.Stop()
				cancel()
				if err == nil {
					t.Fatalf("cancelled slow call succeeded")
				}
				if !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled call error = %v, want context.Canceled", err)
				}
				if elapsed > 3*time.Second {
					t.Errorf("cancelled call returned after %s", elapsed)
				}
				if got := callText(t, cs, "echo", map[string]any{"text": fmt.Sprint(round)}); got != fmt.Sprintf("[%s] %d", tc.name, round) {
					t.Errorf("echo after cancellation = %q", got)
				}
			}
			// The gateway saw the cancellation and ended its upstream call
			// (it logs a request when it finishes, so a 30s wait would not
			// show up here within the deadline).
			pollFor(t, 5*time.Second, "the gateway logs the cancelled calls", func() string {
				n := 0
				for _, line := range strings.Split(g.Output(), "\n") {
					if strings.Contains(line, `"vs":"`+tc.vs+`"`) && strings.Contains(line, `"target":"slow"`) && strings.Contains(line, `"outcome":"cancelled"`) {
						n++
					}
				}
				if n < 2 {
					return fmt.Sprintf("%d cancelled slow calls logged", n)
				}
				return ""
			})
		})
	}
}

// TestShutdownDeliversCallsInFlight: a SIGTERM while calls run (over
// streamable HTTP and legacy SSE) refuses new connections at once, lets
// the calls finish and deliver their answers, then exits cleanly. The
// gateway used to close the agent sessions first: the upstream ran the
// call and the audit said ok, but the agent got a transport error, and a
// retry would run a non-idempotent tool twice.
func TestShutdownDeliversCallsInFlight(t *testing.T) {
	t.Parallel()
	g := anonymousDemoGateway(t, "drain")
	sessions := map[string]*mcp.ClientSession{
		"streamable-http": connect(t, "streamable-http", g.url("vs"), "", nil),
		"sse":             connect(t, "sse", g.sseURL("vs"), "", nil),
	}
	type answer struct {
		transport string
		res       *mcp.CallToolResult
		err       error
	}
	answers := make(chan answer, len(sessions))
	for transport, cs := range sessions {
		go func() {
			res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"millis": 2000}})
			answers <- answer{transport, res, err}
		}()
	}
	waitInFlight(t, g, 2)
	g.signal(syscall.SIGTERM)
	pollFor(t, 5*time.Second, "new connections refused", func() string {
		if _, err := http.Get("http://" + g.addr + "/healthz"); err == nil {
			return "a new connection was served"
		}
		return ""
	})
	for range sessions {
		a := <-answers
		if a.err != nil {
			t.Errorf("%s: the call in flight at SIGTERM failed: %v", a.transport, a.err)
			continue
		}
		if got := textOf(t, a.res); got != "done" {
			t.Errorf("%s: the call in flight at SIGTERM answered %q, want done", a.transport, got)
		}
	}
	select {
	case <-g.done:
		if code := g.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not exit within 30s of SIGTERM")
	}
}

// sseEndpoint opens a legacy SSE stream at url with key and returns the
// endpoint (path and query) it announces; the stream stays open until the
// test ends.
func sseEndpoint(t *testing.T, url, key string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && event == "endpoint" {
			return v
		}
	}
	t.Fatalf("SSE stream at %s (HTTP %d) announced no endpoint: %v", url, resp.StatusCode, sc.Err())
	return ""
}

// anonymousDemoGateway starts a demo upstream named name over streamable
// HTTP and a gateway whose anonymous virtual server "vs" exposes it.
func anonymousDemoGateway(t *testing.T, name string) *gateway {
	t.Helper()
	u, _ := demoHTTP(t, "streamable-http", name)
	return startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: d, transport: streamable-http, url: %q}
virtual_servers:
  - {name: vs, anonymous: true, include: [{upstream: d}]}
`, u))
}

// waitInFlight waits until the gateway handles n agent requests
// (gatehouse_requests_in_flight).
func waitInFlight(t *testing.T, g *gateway, n float64) {
	t.Helper()
	pollFor(t, 10*time.Second, fmt.Sprintf("%v requests in flight", n), func() string {
		if got := metricValue(t, metricsText(t, g), "gatehouse_requests_in_flight"); got != n {
			return fmt.Sprintf("gatehouse_requests_in_flight %v", got)
		}
		return ""
	})
}

// TestBodyReadTimeout: a client that stops sending its body mid-way is
// cut off at limits.body_read_timeout, with or without credentials, on
// the agents' endpoint and the admin API; calls that run longer than the
// timeout once their body is read, over HTTP/1.1 and legacy SSE, are not.
func TestBodyReadTimeout(t *testing.T) {
	t.Parallel()
	u, _ := demoHTTP(t, "streamable-http", "stall")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
limits: {body_read_timeout: 1s}
upstreams:
  - {name: d, transport: streamable-http, url: %q}
virtual_servers:
  - {name: closed, include: [{upstream: d}]}
  - {name: open, anonymous: true, include: [{upstream: d}]}
`, u))
	for _, tc := range []struct{ name, path, want string }{
		{"no credentials", "/mcp/closed", "HTTP/1.1 401"},
		{"anonymous agent", "/mcp/open", "HTTP/1.1 400"},
		{"admin API without a token", "/graphql", "HTTP/1.1 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jso", tc.path, g.addr)
			// Far more than the timeout, far less than forever.
			_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("the stalled request was neither answered nor closed: %v (read %q)", err, got)
			}
			if !strings.HasPrefix(string(got), tc.want) || !strings.Contains(string(got), "Connection: close") {
				t.Errorf("stalled request answered:\n%s\nwant %s and the connection closed", got, tc.want)
			}
		})
	}
	t.Run("calls longer than the timeout", func(t *testing.T) {
		t.Parallel()
		for _, transport := range []string{"streamable-http", "sse"} {
			url := g.url("open")
			if transport == "sse" {
				url = g.sseURL("open")
			}
			cs := connect(t, transport, url, "", nil)
			if got := callText(t, cs, "slow", map[string]any{"millis": 2500}); got != "done" {
				t.Errorf("%s: slow call: %q", transport, got)
			}
			if got := callText(t, cs, "echo", map[string]any{"text": "after"}); !strings.Contains(got, "after") {
				t.Errorf("%s: echo after the slow call: %q", transport, got)
			}
		}
	})
}

// TestRevokedKeyEndsItsStreams: an agent's key is revoked through the
// admin API while its session's listening stream (GET) is open, over
// streamable HTTP and legacy SSE. New requests are refused at once, and
// the open streams end too (found probing: they went on delivering the
// session's notifications for as long as the agent kept them).
func TestRevokedKeyEndsItsStreams(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: v, include: [{upstream: alpha, tools: [echo]}]}
agents:
  - {name: bot, api_keys: [{sha256: %s}]}
grants:
  - {subject: {agent: bot}, target: {virtual_server: v, tools: ["*"]}, effect: allow}
`, alphaURL, sha))

	// A streamable HTTP session and its listening stream.
	s := &rawSession{url: g.url("v"), key: key}
	r := s.post(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+sessionProtocol+`","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	s.sid = r.header.Get("Mcp-Session-Id")
	if s.sid == "" {
		t.Fatalf("initialize: HTTP %d %q", r.status, r.body)
	}
	s.post(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	ended := make(chan string, 2)
	openStream := func(name string, req *http.Request) {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d", name, resp.StatusCode)
		}
		go func() {
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			ended <- name
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	openStream("streamable HTTP GET", s.request(ctx, http.MethodGet, nil))
	sse, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.sseURL("v"), nil)
	sse.Header.Set("Authorization", "Bearer "+key)
	sse.Header.Set("Accept", "text/event-stream")
	openStream("legacy SSE", sse)
	select {
	case name := <-ended:
		t.Fatalf("%s ended before the key was revoked", name)
	case <-time.After(500 * time.Millisecond):
	}

	d := mustGQL(t, g, `query { apiKeys { edges { node { id } } } }`, nil)
	id := dig(d, "apiKeys", "edges", 0, "node", "id")
	mustGQL(t, g, `mutation($id: ID!) { updateAPIKey(id: $id, input: {revoked: true}) { id } }`, map[string]any{"id": id})

	for range 2 {
		select {
		case name := <-ended:
			t.Logf("%s ended", name)
		case <-time.After(15 * time.Second):
			t.Fatalf("an open stream of the revoked key is still open 15 s after the revocation")
		}
	}
	if r := s.post(t, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); r.status != http.StatusUnauthorized {
		t.Errorf("a request with the revoked key: HTTP %d, want 401", r.status)
	}
	if n := countMsg(g, "agent event stream closed: its credentials are no longer accepted"); n != 2 {
		t.Errorf("logged %d stream closings, want 2", n)
	}
}
