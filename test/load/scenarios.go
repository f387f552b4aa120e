package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The scenarios, in the order they run: direct first, so that the others
// can report their added latency against it.
var allScenarios = []string{"direct", "transparent", "full", "deny", "approval", "direct-bound", "transparent-bound", "half", "sessions"}

// payload is the benign ~1 KB text every call echoes (a sequence number is
// appended, so that no two calls are identical and approval scenarios get
// one approval per call).
var payload = strings.Repeat("The quarterly numbers look fine. ", 30)

// codeAccessDenied is the JSON-RPC error a call denied by policy gets.
const codeAccessDenied = -32052

// callTimeout bounds one call, so a stuck gateway shows up as errors
// rather than a hung harness.
const callTimeout = 30 * time.Second

// vsName is the virtual server every gateway scenario serves.
const vsName = "load"

// header's session cap is far above what -sessions asks for: the
// harness measures the gateway, not its limit.
const header = `listen: LISTEN
data_dir: DATA
log: {level: warn}
limits: {max_sessions: 1000000}
upstreams:
  - {name: alpha, transport: streamable-http, %s}
`

// upstreamYAML is the scenario configurations' upstream: its URL and, with
// h2c, cleartext HTTP/2 from the gateway (the demo upstream speaks both).
func upstreamYAML(url string, h2c bool) string {
	if h2c {
		return "url: " + url + ", h2c: true"
	}
	return "url: " + url
}

// transparentConfig: an anonymous virtual server over the upstream, one
// allow-all grant. deny adds a grant denying the harness's echo calls.
func transparentConfig(upstream string, deny bool) string {
	cfg := fmt.Sprintf(header+`virtual_servers:
  - {name: %s, anonymous: true, include: [{upstream: alpha}]}
grants:
  - {name: anyone, subject: {agent: anonymous}, target: {virtual_server: %[2]s, tools: ["*"]}, effect: allow}
`, upstream, vsName)
	if deny {
		// A deny grant without a condition would hide echo (answered as an
		// unknown tool); with one, echo stays visible and the call is
		// refused by the policy decision.
		cfg += fmt.Sprintf("  - {name: no-echo, subject: {agent: anonymous}, target: {virtual_server: %s, tools: [echo]}, effect: deny, when: 'has(args.text)'}\n", vsName)
	}
	return cfg
}

// fullConfig is a realistic rule set, after proxy/decision_bench_test.go:
// 10 agents with API keys (keySHA is loadbot's), 50 grants (15 with CEL
// conditions, 5 of them deny grants over every tool whose condition is
// false for the harness's calls; only the last grant allows echo) and 20
// guardrail rules over requests and responses.
func fullConfig(upstream, keySHA string) (string, error) {
	var y strings.Builder
	fmt.Fprintf(&y, header+"virtual_servers:\n  - {name: %s, include: [{upstream: alpha}]}\nagents:\n", upstream, vsName)
	fmt.Fprintf(&y, "  - {name: loadbot, team: team0, roles: [r0], api_keys: [{sha256: %s}]}\n", keySHA)
	for i := 1; i < 10; i++ {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("generating key hashes: %w", err)
		}
		fmt.Fprintf(&y, "  - {name: agent%d, team: team%d, roles: [r%d], api_keys: [{sha256: %s}]}\n", i, i%3, i%4, hex.EncodeToString(b))
	}
	y.WriteString("grants:\n")
	for i := range 49 {
		subject := fmt.Sprintf("{team: team%d}", i%3)
		if i%5 == 1 {
			subject = fmt.Sprintf("{role: r%d}", i%4)
		}
		tools := fmt.Sprintf(`["tool%d*", "read_*"]`, i%20)
		effect := "allow"
		if i%7 == 3 {
			effect = "deny"
		}
		when := ""
		switch {
		case i%10 == 4:
			tools, effect = `["*"]`, "deny"
			when = `, when: 'has(args.path) && args.path.startsWith("/etc/")'`
		case i%5 == 0:
			when = `, when: 'has(args.path) ? args.path.startsWith("/tmp/") : true'`
		}
		fmt.Fprintf(&y, "  - {name: g%d, subject: %s, target: {virtual_server: %s, tools: %s}, effect: %s%s}\n", i, subject, vsName, tools, effect, when)
	}
	fmt.Fprintf(&y, "  - {name: loadbot-echo, subject: {agent: loadbot}, target: {virtual_server: %s, tools: [echo]}, effect: allow, when: 'size(args.text) < 65536'}\n", vsName)
	y.WriteString("guardrails:\n")
	detectors := []string{"secrets", "pii", "injection", "regex", "denylist", "size"}
	directions := []string{"request", "response", "both"}
	for i := range 20 {
		d := detectors[i%len(detectors)]
		action := []string{"flag", "redact", "block"}[i%3]
		extra := ""
		switch d {
		case "regex":
			extra = `, pattern: '(?i)drop\s+table'`
		case "denylist":
			extra = ", terms: [confidential, internal-only]"
		case "size":
			extra, action = ", max_bytes: 1048576", "block"
		case "injection":
			action = "flag"
		}
		fmt.Fprintf(&y, "  - {name: r%d, direction: %s, detector: %s, action: %s%s}\n", i, directions[i%3], d, action, extra)
	}
	return y.String(), nil
}

// approvalConfig: loadbot may call echo, and the rule "all" holds every
// echo call for one approver of group bots.
func approvalConfig(upstream, keySHA string) string {
	return fmt.Sprintf(header+`virtual_servers:
  - {name: %s, include: [{upstream: alpha}]}
agents:
  - {name: loadbot, team: agents, api_keys: [{sha256: %s}]}
approval_rules:
  - {name: all, approver_groups: [bots], tools: [echo]}
grants:
  - {name: loadbot-echo, subject: {agent: loadbot}, target: {virtual_server: %[2]s, tools: [echo]}, effect: allow}
`, upstream, vsName, keySHA)
}

// bearer adds an Authorization header to every request.
type bearer struct {
	key  string
	base http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.base.RoundTrip(r)
}

// newHTTPClient is a client for one scenario's sessions: its own
// connection pool, large enough to keep every connection alive, sending
// key (if any) as a bearer token.
func newHTTPClient(key string) (*http.Client, func()) {
	return newHTTPClientProto(key, false)
}

// newHTTPClientProto is newHTTPClient speaking cleartext HTTP/2 (prior
// knowledge) when h2c is set: the sessions then share a few connections.
func newHTTPClientProto(key string, h2c bool) (*http.Client, func()) {
	tr := &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: 100000, IdleConnTimeout: 90 * time.Second}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	var rt http.RoundTripper = tr
	if key != "" {
		rt = bearer{key: key, base: tr}
	}
	return &http.Client{Transport: rt}, tr.CloseIdleConnections
}

// dial opens a client session. The session's streams live on the Connect
// context, so a timer, not a deadline, bounds the handshake.
func dial(ctx context.Context, hc *http.Client, url string) (*mcp.ClientSession, error) {
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	timer := time.AfterFunc(15*time.Second, cancel)
	stop := context.AfterFunc(ctx, cancel)
	c := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-load", Version: "1"}, nil)
	cs, err := c.Connect(sctx, tr, nil)
	stop()
	if !timer.Stop() && err == nil {
		_ = cs.Close()
		err = errors.New("handshake timed out")
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("connecting to %s: %w", url, err)
	}
	go func() { _ = cs.Wait(); cancel() }()
	return cs, nil
}

// target is what a load scenario calls.
type target struct {
	url string
	key string // API key; "" for anonymous
	gw  *proc  // the gateway, nil for direct
	up  *proc  // the upstream
	// denied: the expected outcome is the policy's access-denied error.
	denied bool
	// rounds > 0 calls the upstream's CPU-bound tool "work" with that many
	// SHA-256 rounds instead of echo.
	rounds int
	// rate > 0 paces the sessions to that many calls a second in all,
	// each on a fixed schedule; latency then counts from the scheduled
	// start, so a call delayed by a slow one before it is not hidden.
	rate float64
	// metrics, when set, is the gateway's /metrics URL, read for the
	// embedded audit engine's CPU time.
	metrics string
}

// call is the tools/call a session of t sends, the seq-th of the run.
func (t target) call(seq int64) *mcp.CallToolParams {
	if t.rounds > 0 {
		return &mcp.CallToolParams{Name: "work", Arguments: map[string]any{"rounds": t.rounds}}
	}
	return &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": fmt.Sprintf("%s#%d", payload, seq)}}
}

// result is one scenario's line in the table and the JSON.
type result struct {
	Scenario    string   `json:"scenario"`
	Concurrency int      `json:"concurrency"`
	OfferedRPS  float64  `json:"offered_requests_per_second,omitempty"` // paced runs
	Requests    int      `json:"requests"`
	Seconds     float64  `json:"seconds"`
	RPS         float64  `json:"requests_per_second"`
	P50         float64  `json:"p50_ms"`
	P90         float64  `json:"p90_ms"`
	P99         float64  `json:"p99_ms"`
	Max         float64  `json:"max_ms"`
	AddedP50    *float64 `json:"added_p50_ms,omitempty"`
	AddedP99    *float64 `json:"added_p99_ms,omitempty"`
	CPUPer1k    *float64 `json:"gateway_cpu_seconds_per_1000,omitempty"`
	PerCoreSec  *float64 `json:"requests_per_gateway_core_second,omitempty"`
	// GatewayCores is the gateway's CPU seconds per second of the window:
	// how busy its core was (1 = saturated, when it is pinned to one).
	GatewayCores *float64 `json:"gateway_cores_busy,omitempty"`
	// EngineCPUPer1k is the part of CPUPer1k that the embedded audit
	// engine used (gatehouse_audit_engine_cpu_seconds_total), for
	// scenarios that audit to it.
	EngineCPUPer1k *float64 `json:"audit_engine_cpu_seconds_per_1000,omitempty"`
	RSSMB          *float64 `json:"gateway_rss_mb,omitempty"`
	// StealGateway and StealOthers are the host's steal time over the
	// window on the gateway's cores and on the others (the load
	// generator's and the upstream's), in percent (see stealPercent).
	StealGateway *float64 `json:"host_steal_gateway_cores_pct,omitempty"`
	StealOthers  *float64 `json:"host_steal_other_cores_pct,omitempty"`
	UpCPUPer1k   float64  `json:"upstream_cpu_seconds_per_1000"`
	Errors       int      `json:"errors"`
	FirstError   string   `json:"first_error,omitempty"`
}

// errCounter counts failures and keeps the first.
type errCounter struct {
	mu    sync.Mutex
	n     int
	first string
}

func (e *errCounter) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.first == "" {
		e.first = err.Error()
	}
}

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// runLoad opens concurrency sessions to t, calls echo in a loop on each
// for warmup and then duration, and measures the calls that complete in
// the measured window, and the gateway's and upstream's CPU time over it.
func runLoad(ctx context.Context, name string, t target, pin pinning, concurrency int, warmup, duration time.Duration) (*result, error) {
	hc, closeIdle := newHTTPClient(t.key)
	defer closeIdle()
	sessions := make([]*mcp.ClientSession, concurrency)
	defer func() {
		for _, cs := range sessions {
			if cs != nil {
				_ = cs.Close()
			}
		}
	}()
	for i := range sessions {
		cs, err := dial(ctx, hc, t.url)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		sessions[i] = cs
	}

	var phase atomic.Int32
	var seq atomic.Int64
	var errs errCounter
	lat := make([][]time.Duration, concurrency)
	var wg sync.WaitGroup
	for i, cs := range sessions {
		wg.Go(func() {
			var interval time.Duration
			next := time.Now()
			if t.rate > 0 {
				interval = time.Duration(float64(concurrency) / t.rate * float64(time.Second))
				next = next.Add(time.Duration(i) * interval / time.Duration(concurrency)) // spread the sessions
			}
			for ctx.Err() == nil && phase.Load() != phaseStop {
				params := t.call(seq.Add(1))
				t0 := time.Now()
				if interval > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
					t0 = next
					next = next.Add(interval)
				}
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				res, err := cs.CallTool(cctx, params)
				d := time.Since(t0)
				cancel()
				if ctx.Err() != nil {
					return
				}
				if err = outcome(res, err, t.denied); err != nil {
					errs.add(err)
					continue
				}
				if phase.Load() == phaseMeasure {
					lat[i] = append(lat[i], d)
				}
			}
		})
	}

	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	sample := func() (gw, up, engine float64, err error) {
		if t.gw != nil {
			if gw, err = cpuSeconds(t.gw.pid()); err != nil {
				return 0, 0, 0, err
			}
		}
		if t.metrics != "" {
			var found bool
			if engine, found, err = metricSeconds(ctx, t.metrics, engineCPUMetric); err != nil {
				return 0, 0, 0, err
			}
			if !found {
				engine = math.NaN() // a build without the metric
			}
		}
		up, err = cpuSeconds(t.up.pid())
		return gw, up, engine, err
	}
	stop := func() { phase.Store(phaseStop); wg.Wait() }
	if err := wait(warmup); err != nil {
		stop()
		return nil, err
	}
	gw0, up0, engine0, err := sample()
	if err != nil {
		stop()
		return nil, err
	}
	ticks0, err := readCPUTicks()
	if err != nil {
		stop()
		return nil, err
	}
	t0 := time.Now()
	phase.Store(phaseMeasure)
	err = wait(duration)
	phase.Store(phaseStop)
	elapsed := time.Since(t0)
	gw1, up1, engine1, serr := sample()
	ticks1, terr := readCPUTicks()
	wg.Wait()
	if err = errors.Join(err, serr, terr); err != nil {
		return nil, err
	}

	all := slices.Concat(lat...)
	slices.Sort(all)
	r := &result{Scenario: name, Concurrency: concurrency, OfferedRPS: t.rate, Requests: len(all), Seconds: elapsed.Seconds(),
		Errors: errs.n, FirstError: errs.first}
	if len(pin.gateway) > 0 {
		r.StealGateway, r.StealOthers = stealPercent(ticks0, ticks1, pin.gateway), stealPercent(ticks0, ticks1, pin.others)
	} else {
		r.StealOthers = stealPercent(ticks0, ticks1, nil) // one set of cores for all
	}
	if len(all) == 0 {
		return r, nil
	}
	n := float64(len(all))
	r.RPS = n / elapsed.Seconds()
	r.P50, r.P90, r.P99, r.Max = ms(pct(all, 50)), ms(pct(all, 90)), ms(pct(all, 99)), ms(all[len(all)-1])
	r.UpCPUPer1k = (up1 - up0) / n * 1000
	if t.gw != nil {
		cpu := gw1 - gw0
		r.CPUPer1k = ptr(cpu / n * 1000)
		r.GatewayCores = ptr(cpu / elapsed.Seconds())
		if cpu > 0 {
			r.PerCoreSec = ptr(n / cpu)
		}
		rss, err := rssBytes(t.gw.pid())
		if err != nil {
			return nil, err
		}
		r.RSSMB = ptr(float64(rss) / (1 << 20))
	}
	if e := (engine1 - engine0) / n * 1000; t.metrics != "" && !math.IsNaN(e) {
		r.EngineCPUPer1k = ptr(e)
	}
	return r, nil
}

// outcome says whether a call ended as expected: a result that is not a
// tool error, or, for denied calls, the policy's access-denied error.
func outcome(res *mcp.CallToolResult, err error, denied bool) error {
	if denied {
		var je *jsonrpc.Error
		if errors.As(err, &je) && je.Code == codeAccessDenied {
			return nil
		}
		if err == nil {
			return errors.New("call was not denied")
		}
		return fmt.Errorf("call: want access denied (%d), got: %w", codeAccessDenied, err)
	}
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	if res.IsError {
		var text string
		if len(res.Content) > 0 {
			if tc, ok := res.Content[0].(*mcp.TextContent); ok {
				text = tc.Text
			}
		}
		return fmt.Errorf("call: tool error: %.200s", text)
	}
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ptr[T any](v T) *T { return &v }

// approverBot approves every pending approval as soon as it appears: it
// long-polls approvalChanged as its wake-up and approves what
// pendingApprovals lists, each approval in its own goroutine. It returns
// when ctx is done; failures go to errs.
func approverBot(ctx context.Context, g *gateway, token string, errs *errCounter) {
	hc, closeIdle := newHTTPClient("")
	defer closeIdle()
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	seen := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	fail := func(what string, err error) bool {
		if err == nil {
			return false
		}
		if ctx.Err() == nil {
			errs.add(fmt.Errorf("approver bot: %s: %w", what, err))
		}
		return true
	}
	for ctx.Err() == nil {
		var changed struct {
			ApprovalChanged struct{ Cursor string }
		}
		err := gql(ctx, hc, g, token, `query($s: Time) { approvalChanged(since: $s, waitSeconds: 5) { cursor } }`, map[string]any{"s": since}, &changed)
		if fail("approvalChanged", err) {
			return
		}
		since = changed.ApprovalChanged.Cursor
		var pending struct {
			PendingApprovals struct {
				Edges []struct {
					Node struct {
						ApprovalID string `json:"approvalID"`
					}
				}
			}
		}
		err = gql(ctx, hc, g, token, `{ pendingApprovals(first: 100) { edges { node { approvalID } } } }`, nil, &pending)
		if fail("pendingApprovals", err) {
			return
		}
		for _, edge := range pending.PendingApprovals.Edges {
			if id := edge.Node.ApprovalID; !seen[id] {
				seen[id] = true
				wg.Go(func() {
					err := gql(ctx, hc, g, token, `mutation($id: String!) { approveCall(id: $id, comment: "load harness") { state } }`, map[string]any{"id": id}, nil)
					fail("approveCall "+id, err)
				})
			}
		}
	}
}

// sessionsResult is the sessions scenario's report.
type sessionsResult struct {
	Sessions      int     `json:"sessions"`
	Protocol      string  `json:"protocol"` // agents' HTTP: "HTTP/1.1" or "h2c"
	OpenSeconds   float64 `json:"open_seconds"`
	RSSBeforeMB   float64 `json:"gateway_rss_before_mb"`
	RSSAfterMB    float64 `json:"gateway_rss_after_mb"`
	IdleSeconds   float64 `json:"idle_seconds_before_rss"`
	KBPerSession  float64 `json:"gateway_rss_kb_per_session"`
	OpenPerSecond float64 `json:"sessions_opened_per_second"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
}

// runSessions opens n agent sessions to the gateway (each: initialize and
// one call), keeps them all open and idle, and measures the time to open
// them and the gateway's RSS growth.
// With profileDir, the gateway's heap is written there while the sessions
// are open.
func runSessions(ctx context.Context, g *gateway, key string, n, parallel int, h2c bool, settle time.Duration, profileDir string) (*sessionsResult, error) {
	hc, closeIdle := newHTTPClientProto(key, h2c)
	defer closeIdle()
	open := func() (*mcp.ClientSession, error) {
		cs, err := dial(ctx, hc, g.url(vsName))
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hello"}})
		if err = outcome(res, err, false); err != nil {
			_ = cs.Close()
			return nil, err
		}
		return cs, nil
	}
	// One session first, so that the baseline has every code path loaded.
	cs, err := open()
	if err != nil {
		return nil, fmt.Errorf("sessions: first session: %w", err)
	}
	_ = cs.Close()
	time.Sleep(500 * time.Millisecond)
	before, err := rssBytes(g.pid())
	if err != nil {
		return nil, err
	}

	sessions := make([]*mcp.ClientSession, n)
	defer func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, parallel)
		for _, cs := range sessions {
			if cs != nil {
				sem <- struct{}{}
				wg.Go(func() { _ = cs.Close(); <-sem })
			}
		}
		wg.Wait()
	}()
	var errs errCounter
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range parallel {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				cs, err := open()
				if err != nil {
					errs.add(err)
					continue
				}
				sessions[i] = cs
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select { // let the gateway settle
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	after, err := rssBytes(g.pid())
	if err != nil {
		return nil, err
	}
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return nil, fmt.Errorf("profile dir: %w", err)
		}
		if err := g.fetchProfile(ctx, "heap?gc=1", filepath.Join(profileDir, "gateway-sessions-heap.pprof")); err != nil {
			return nil, fmt.Errorf("sessions: heap profile: %w", err)
		}
		if err := g.fetchProfile(ctx, "goroutine?debug=1", filepath.Join(profileDir, "gateway-sessions-goroutines.txt")); err != nil {
			return nil, fmt.Errorf("sessions: goroutine profile: %w", err)
		}
	}
	return &sessionsResult{
		IdleSeconds: settle.Seconds(), Sessions: n, Protocol: map[bool]string{false: "HTTP/1.1", true: "h2c"}[h2c], OpenSeconds: elapsed.Seconds(), OpenPerSecond: float64(n) / elapsed.Seconds(),
		RSSBeforeMB: float64(before) / (1 << 20), RSSAfterMB: float64(after) / (1 << 20),
		KBPerSession: float64(after-before) / 1024 / float64(n),
		Errors:       errs.n, FirstError: errs.first,
	}, nil
}
