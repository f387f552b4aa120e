// Command load measures Gatehouse against the direct path in one run on
// one machine: the same go-sdk client load against the demo upstream
// directly and through gateways configured for each scenario (transparent,
// full policy, denied calls, human approval), plus a test of many idle
// sessions. It prints one table and writes the numbers as JSON to
// bench/results/<timestamp>.json.
//
// It runs the binaries `make build` leaves in bin/ as separate processes,
// and measures the gateway process's CPU time and RSS from /proc. Usage:
//
//	make bench
//	go run ./test/load -scenarios full,direct -duration 10s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	scenarios   []string
	sessions    int
	sessionsH2C bool
	upstreamH2C bool
	settle      time.Duration
	jsonDir     string
	binDir      string
	// upstreamDir holds the demo-server the run starts (default binDir;
	// in a comparison, the first build's for every run).
	upstreamDir string
	fullAudit   bool
	pin         bool
	boundRounds int
	halfRate    float64
	profileDir  string
	profileOf   string
	trace       bool
	// gatewayFlags are more `gatehouse serve` flags for every gateway.
	gatewayFlags []string
	// childLogs, when set, is where each gateway's output goes too.
	childLogs string
	// rp calibrates the reverseproxy@half hop.
	rp rpCalibration
}

func main() {
	os.Exit(run())
}

// profiledScenarios are the scenarios -profile can profile (those with a
// gateway under load); profileable lists them for messages.
var (
	profiledScenarios = []string{"transparent", "full", "deny", "transparent@half", "full@half"}
	profileable       = strings.Join(profiledScenarios[:len(profiledScenarios)-1], ", ") + " or " + profiledScenarios[len(profiledScenarios)-1]
)

func run() int {
	var o options
	var scenarios, against string
	var rounds int
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per scenario")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up time per scenario, not measured")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent client sessions, each calling in a loop")
	flag.Float64Var(&o.halfRate, "half-rate", 0, "calls per second of the half scenario (default: half of the full scenario's throughput in the same run)")
	flag.IntVar(&o.boundRounds, "bound-rounds", 5000, "SHA-256 rounds the upstream computes per call in the direct-bound and transparent-bound scenarios (its CPU is then the bottleneck)")
	flag.BoolVar(&o.pin, "pin", true, "pin the gateway to the upper half of the cores and the load generator and demo upstream to the lower half (needs 2 or more cores)")
	flag.BoolVar(&o.fullAudit, "full-audit", true, "audit every request of the full scenario to the embedded ClickHouse engine (false: measure full without audit)")
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	flag.IntVar(&o.sessions, "sessions", 10000, "agent sessions held open by the sessions scenario")
	flag.DurationVar(&o.settle, "sessions-idle", time.Second, "how long the sessions scenario's sessions stay idle before the gateway's RSS is read (the runtime returns garbage and shrinks idle goroutines' stacks at its periodic collection, every 2 minutes)")
	flag.BoolVar(&o.sessionsH2C, "sessions-h2c", true, "the sessions scenario's agents speak cleartext HTTP/2 to the gateway, so their event streams share connections (false: HTTP/1.1, a connection and a file descriptor per session in both processes)")
	flag.BoolVar(&o.upstreamH2C, "upstream-h2c", true, "the gateway speaks cleartext HTTP/2 to the demo upstream (h2c: true), so agent sessions share upstream connections (false: HTTP/1.1, one connection per session's upstream event stream)")
	flag.StringVar(&o.jsonDir, "json", "bench/results", "directory for the JSON results (empty: none)")
	flag.StringVar(&o.binDir, "bin", "bin", "directory holding gatehouse and demo-server (make build)")
	flag.StringVar(&against, "against", "", "compare: a `directory` holding a second gatehouse build (B) to measure in turns with -bin's (A), -rounds times each, and summarise (medians, ranges, in how many rounds B did better)")
	flag.IntVar(&rounds, "rounds", 1, "runs of every build, in turns (the order flips every round); above 1, or with -against, the runs are summarised side by side")
	flag.Func("gateway-flags", "more gatehouse serve `flags` for every gateway the harness starts, space-separated (to measure a setting, e.g. \"--audit-batch-wait=60s\")", func(v string) error {
		o.gatewayFlags = append(o.gatewayFlags, strings.Fields(v)...)
		return nil
	})
	flag.StringVar(&o.profileDir, "profile", "", "write the gateway's CPU (measured window) and allocation profiles of one scenario (-profile-scenario) into this directory (make bench PROFILE=1: bench/profiles)")
	flag.StringVar(&o.profileOf, "profile-scenario", "full", "the scenario -profile profiles: "+profileable)
	flag.StringVar(&o.childLogs, "child-logs", "", "also write each gateway's output (and the reverse proxy's) to a file in this directory, e.g. to read GODEBUG=gctrace=1 lines")
	flag.DurationVar(&o.rp.work, "reverse-proxy-work", 0, "calibration: the reverseproxy@half proxy spins this long on the CPU for every POST before passing it on (e.g. 80us, so that it costs what a gateway hop costs: does the load on the core alone explain a hop's tail?)")
	flag.IntVar(&o.rp.heapMiB, "reverse-proxy-heap", 0, "calibration: the reverseproxy@half proxy holds this many MiB of pointer-dense live heap and tunes its collector as the gateway does (internal/gctune), so that it collects at the gateway's cadence with mark phases as long (≈ 20: does the collector alone explain a hop's tail?)")
	var rpAddr, rpUpstream string
	flag.StringVar(&rpAddr, "serve-reverse-proxy", "", "internal: run the reverseproxy@half scenario's proxy on this address (the harness starts itself so)")
	flag.StringVar(&rpUpstream, "reverse-proxy-upstream", "", "internal: with -serve-reverse-proxy, the upstream's URL")
	flag.BoolVar(&o.trace, "trace", false, "with -profile, also write the gateway's execution trace of the same window (gateway.trace, for go tool trace: where slow calls waited); the tracer costs CPU, so the profiled scenario's numbers are then not comparable")
	flag.Parse()
	if rpAddr != "" {
		fmt.Fprintf(os.Stderr, "load: reverse proxy: %v\n", serveReverseProxy(rpAddr, rpUpstream, o.rp))
		return 1
	}
	for s := range strings.SplitSeq(scenarios, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			fmt.Fprintf(os.Stderr, "load: unknown scenario %q (have %s)\n", s, strings.Join(allScenarios, ", "))
			return 2
		}
		o.scenarios = append(o.scenarios, s)
	}
	if !slices.Contains(profiledScenarios, o.profileOf) {
		fmt.Fprintf(os.Stderr, "load: -profile-scenario %q: only %s can be profiled\n", o.profileOf, profileable)
		return 2
	}
	if len(o.scenarios) == 0 || o.concurrency < 1 || o.sessions < 1 || o.duration <= 0 {
		fmt.Fprintln(os.Stderr, "load: need at least one scenario, -concurrency ≥ 1, -sessions ≥ 1 and -duration > 0")
		return 2
	}
	for _, b := range []string{"gatehouse", "demo-server"} {
		if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
			fmt.Fprintf(os.Stderr, "load: %s is missing: run `make build` first (or pass -bin)\n", filepath.Join(o.binDir, b))
			return 1
		}
	}
	o.upstreamDir = o.binDir
	if rounds < 1 {
		fmt.Fprintln(os.Stderr, "load: -rounds must be 1 or more")
		return 2
	}
	if against != "" || rounds > 1 {
		if o.profileDir != "" {
			fmt.Fprintln(os.Stderr, "load: -profile takes one run: drop -against and -rounds to profile")
			return 2
		}
		builds := []build{{Label: "A", Dir: o.binDir}}
		if against != "" {
			if _, err := os.Stat(filepath.Join(against, "gatehouse")); err != nil {
				fmt.Fprintf(os.Stderr, "load: -against: %s is missing\n", filepath.Join(against, "gatehouse"))
				return 1
			}
			builds = append(builds, build{Label: "B", Dir: against})
		}
		for i := range builds {
			builds[i].Gatehouse = version(builds[i].Dir)
		}
		return runComparison(o, builds, rounds)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := measure(ctx, o)
	if err != nil {
		return failed(ctx, err)
	}
	rep.print(os.Stdout)
	if r := rep.get(o.profileOf); o.profileDir != "" && r != nil {
		// What each part of a call cost the gateway in the profiled window.
		c, err := readCPUParts(filepath.Join(o.profileDir, "gateway-cpu.pprof"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "load: %v\n", err)
			return 1
		}
		c.print(os.Stdout, r.RPS)
		if o.trace {
			// Where the traced scenario's calls moved between goroutines.
			h, err := readHandoffs(filepath.Join(o.profileDir, "gateway.trace"))
			if err != nil {
				fmt.Fprintf(os.Stderr, "load: %v\n", err)
				return 1
			}
			h.print(os.Stdout, r.RPS, 15)
		}
	}
	return finish(o.jsonDir, rep.write, rep.errors())
}

// failed reports a measurement that could not finish and returns the
// exit code (130 when interrupted).
func failed(ctx context.Context, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "load: interrupted")
		return 130
	}
	fmt.Fprintf(os.Stderr, "load: %v\n", err)
	return 1
}

// finish writes the results with write into jsonDir (unless it is
// empty) and returns the exit code: 1 if any call failed.
func finish(jsonDir string, write func(dir string) (string, error), errors int) int {
	if jsonDir != "" {
		path, err := write(jsonDir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "load: %v\n", err)
			return 1
		}
		fmt.Printf("results: %s\n", path)
	}
	if errors > 0 {
		fmt.Printf("\n!!!!! %d ERRORS: the numbers above are not valid (first errors listed in the JSON and above) !!!!!\n", errors)
		return 1
	}
	return 0
}

// report is one run's results.
type report struct {
	Time        time.Time `json:"time"`
	Gatehouse   string    `json:"gatehouse"`
	Machine     string    `json:"machine"`
	Cores       int       `json:"cores"`
	Pinning     string    `json:"pinning"`
	Upstream    string    `json:"gateway_to_upstream"`
	Concurrency int       `json:"concurrency"`
	Warmup      string    `json:"warmup"`
	Duration    string    `json:"duration"`
	Results     []*result `json:"scenarios"`
	// Calibration says how reverseproxy@half was made to cost like a
	// gateway hop (-reverse-proxy-work, -reverse-proxy-heap), if it was.
	Calibration string          `json:"reverse_proxy_calibration,omitempty"`
	Sessions    *sessionsResult `json:"sessions,omitempty"`
}

// measure starts the upstream and runs each scenario (each gateway
// scenario on a fresh gateway, stopped afterwards). Child processes and
// the temporary directory are removed on every return.
func measure(ctx context.Context, o options) (rep *report, err error) {
	tmp, err := os.MkdirTemp("", "gatehouse-load-")
	if err != nil {
		return nil, fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	ps := &procs{pin: choosePinning(runtime.NumCPU(), o.pin), logDir: o.childLogs}
	if err := ps.pin.pinSelf(); err != nil {
		return nil, err
	}
	defer ps.stopAll()

	up, upURL, err := startUpstream(ctx, ps, o.upstreamDir)
	if err != nil {
		return nil, err
	}
	key, keySHA, err := keygen(o.binDir)
	if err != nil {
		return nil, err
	}
	upYAML := upstreamYAML(upURL, o.upstreamH2C)
	fullCfg, err := fullConfig(upYAML, keySHA)
	if err != nil {
		return nil, err
	}
	rep = &report{Time: time.Now().UTC(), Gatehouse: version(o.binDir), Machine: machine(), Cores: runtime.NumCPU(), Pinning: ps.pin.String(),
		Upstream:    map[bool]string{true: "h2c", false: "HTTP/1.1"}[o.upstreamH2C],
		Concurrency: o.concurrency, Warmup: o.warmup.String(), Duration: o.duration.String(), Calibration: o.rp.String()}
	load := func(name string, t target) (*result, error) {
		return runLoad(ctx, name, t, ps.pin, o.concurrency, o.warmup, o.duration)
	}
	// gatewayLoad runs t (its key, denied, rounds and rate) against a fresh
	// gateway with configuration cfg.
	gatewayLoad := func(name, cfg string, t target) (*result, error) {
		// full records every request in the audit trail (embedded engine).
		full := strings.HasPrefix(name, "full")
		prof := name == o.profileOf && o.profileDir != ""
		g, err := startGateway(ctx, ps, o.binDir, tmp, cfg, false, full && o.fullAudit, prof, o.gatewayFlags)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer ps.stop(g.proc)
		var profiled <-chan error
		if prof {
			profiled = g.profile(ctx, o.profileDir, o.warmup, o.duration, o.trace)
		}
		t.url, t.gw, t.up = g.url(vsName), g.proc, up
		if full && o.fullAudit {
			t.metrics = "http://" + g.addr + "/metrics"
		}
		r, err := load(name, t)
		if err == nil && full {
			err = checkMetrics(ctx, g)
		}
		if profiled != nil && err == nil {
			err = <-profiled
		}
		return r, gatewayErr(name, g, err)
	}
	// Scenarios run in the order of allScenarios, direct first.
	for _, name := range allScenarios {
		if !slices.Contains(o.scenarios, name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "load: %s ...\n", name)
		var r *result
		switch name {
		case "direct":
			r, err = load(name, target{url: upURL, up: up})
		case "direct-bound":
			r, err = load(name, target{url: upURL, up: up, rounds: o.boundRounds})
		case "transparent", "deny":
			r, err = gatewayLoad(name, transparentConfig(upYAML, name == "deny"), target{denied: name == "deny"})
		case "transparent-bound":
			r, err = gatewayLoad(name, transparentConfig(upYAML, false), target{rounds: o.boundRounds})
		case "full":
			r, err = gatewayLoad(name, fullCfg, target{key: key})
		case "half":
			// direct and full paced at half of full's saturation throughput
			// (this run's, unless -half-rate says otherwise).
			rate := o.halfRate
			if f := rep.get("full"); rate == 0 && f != nil {
				rate = f.RPS / 2
			}
			if rate <= 0 {
				return nil, errors.New("half: run full in the same run (-scenarios full,half) or give -half-rate")
			}
			if r, err = load("direct@half", target{url: upURL, up: up, rate: rate}); err != nil {
				return nil, err
			}
			rep.Results = append(rep.Results, r)
			// The same rate through the standard library's reverse proxy
			// and through transparent: what a bare Go proxy hop adds on
			// this machine, and what the gateway's hop with the least work
			// per call adds.
			if r, err = reverseProxyLoad(ctx, ps, upURL, o.rp, target{up: up, rate: rate}, load); err != nil {
				return nil, err
			}
			rep.Results = append(rep.Results, r)
			if r, err = gatewayLoad("transparent@half", transparentConfig(upYAML, false), target{rate: rate}); err != nil {
				return nil, err
			}
			rep.Results = append(rep.Results, r)
			r, err = gatewayLoad("full@half", fullCfg, target{key: key, rate: rate})
		case "approval":
			r, err = approvalLoad(ctx, ps, o, tmp, approvalConfig(upYAML, keySHA), key, up)
		case "sessions":
			rep.Sessions, err = sessionsLoad(ctx, ps, o, tmp, fullCfg, key)
		}
		if err != nil {
			return nil, err
		}
		if r != nil {
			rep.Results = append(rep.Results, r)
			if r.Errors > 0 {
				fmt.Fprintf(os.Stderr, "load: %s: %d ERRORS, first: %s\n", name, r.Errors, r.FirstError)
			}
		}
	}
	rep.addedLatency()
	return rep, nil
}

// gatewayErr adds the gateway's log tail to err if the gateway died.
func gatewayErr(name string, g *gateway, err error) error {
	if err == nil {
		return nil
	}
	if g.exited() {
		return fmt.Errorf("%s: gateway exited: %w; its log:\n%s", name, err, g.tail(40))
	}
	return fmt.Errorf("%s: %w", name, err)
}

// approvalLoad runs the approval scenario: every call is held until an
// approver bot approves it through GraphQL.
func approvalLoad(ctx context.Context, ps *procs, o options, tmp, cfg, key string, up *proc) (*result, error) {
	g, err := startGateway(ctx, ps, o.binDir, tmp, cfg, true, false, false, o.gatewayFlags)
	if err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	defer ps.stop(g.proc)
	var tok struct {
		CreateAdminToken struct{ Token string }
	}
	err = gql(ctx, http.DefaultClient, g, g.adminToken,
		`mutation { createAdminToken(input: {name: "load-bot", roles: ["approver"], groups: ["bots"], team: "approvers"}) { token } }`, nil, &tok)
	if err != nil {
		return nil, fmt.Errorf("approval: creating the approver token: %w", err)
	}
	bctx, cancel := context.WithCancel(ctx)
	var botErrs errCounter
	done := make(chan struct{})
	go func() { approverBot(bctx, g, tok.CreateAdminToken.Token, &botErrs); close(done) }()
	r, err := runLoad(ctx, "approval", target{url: g.url(vsName), key: key, gw: g.proc, up: up}, ps.pin, o.concurrency, o.warmup, o.duration)
	cancel()
	<-done
	if err != nil {
		return nil, gatewayErr("approval", g, err)
	}
	if botErrs.n > 0 {
		r.Errors += botErrs.n
		if r.FirstError == "" {
			r.FirstError = botErrs.first
		}
	}
	return r, nil
}

// sessionsLoad runs the sessions scenario on a gateway with the full
// configuration (agents authenticate with an API key).
func sessionsLoad(ctx context.Context, ps *procs, o options, tmp, cfg, key string) (*sessionsResult, error) {
	// Over HTTP/1.1 each session's event streams hold connections: the
	// upstream's (a descriptor in the gateway and one in the upstream)
	// and the agent's (one more in the gateway, one in the load
	// generator). Over h2c they share a few.
	perSession := 0
	if !o.sessionsH2C {
		perSession++
	}
	if !o.upstreamH2C {
		perSession++
	}
	var lim syscall.Rlimit
	if need := o.sessions*perSession + 1000; syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && uint64(need) > lim.Max {
		fmt.Fprintf(os.Stderr, "load: sessions: %d sessions need about %d file descriptors in the gateway, the limit is %d (raise ulimit -n, or use -sessions-h2c and -upstream-h2c)\n",
			o.sessions, need, lim.Max)
	}
	g, err := startGateway(ctx, ps, o.binDir, tmp, cfg, false, false, o.profileDir != "", o.gatewayFlags)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	defer ps.stop(g.proc)
	r, err := runSessions(ctx, g, key, o.sessions, 64, o.sessionsH2C, o.settle, o.profileDir)
	return r, gatewayErr("sessions", g, err)
}

// engineCPUMetric is the gateway's counter of its embedded audit
// engine's CPU time.
const engineCPUMetric = "gatehouse_audit_engine_cpu_seconds_total"

// metricSeconds reads the unlabelled metric name from the /metrics at url;
// found is false when the gateway has no such metric (an older build).
func metricSeconds(ctx context.Context, url, name string) (v float64, found bool, err error) {
	m, err := readMetrics(ctx, url)
	if err != nil {
		return 0, false, err
	}
	for line := range strings.Lines(m) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			v, err := strconv.ParseFloat(s, 64)
			return v, err == nil, err
		}
	}
	return 0, false, nil
}

// checkMetrics makes sure the gateway served /metrics with its request
// counter during the run.
func checkMetrics(ctx context.Context, g *gateway) error {
	m, err := readMetrics(ctx, "http://"+g.addr+"/metrics")
	if err != nil {
		return err
	}
	if !strings.Contains(m, "gatehouse_requests_total{") {
		return errors.New("/metrics has no gatehouse_requests_total")
	}
	return nil
}

// readMetrics fetches the /metrics text at url.
func readMetrics(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading %s: HTTP %d, %v", url, resp.StatusCode, err)
	}
	return string(b), nil
}

// addedLatency fills in each gateway scenario's latency over direct (the
// -bound ones' over direct-bound).
func (rep *report) addedLatency() {
	for _, r := range rep.Results {
		base := "direct"
		switch {
		case strings.HasSuffix(r.Scenario, "-bound"):
			base = "direct-bound"
		case strings.HasSuffix(r.Scenario, "@half"):
			base = "direct@half"
		}
		d := rep.get(base)
		if d == nil || r == d || d.Requests == 0 || r.Requests == 0 {
			continue
		}
		r.AddedP50, r.AddedP99 = ptr(r.P50-d.P50), ptr(r.P99-d.P99)
	}
}

func (rep *report) errors() int {
	n := 0
	for _, r := range rep.Results {
		n += r.Errors
	}
	if rep.Sessions != nil {
		n += rep.Sessions.Errors
	}
	return n
}

func (rep *report) get(name string) *result {
	for _, r := range rep.Results {
		if r.Scenario == name {
			return r
		}
	}
	return nil
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nGatehouse load: %d cores (%s); pinning: %s; gateway to upstream over %s; %d concurrent sessions; %s measured after %s warm-up\n\n",
		rep.Cores, rep.Machine, rep.Pinning, rep.Upstream, rep.Concurrency, rep.Duration, rep.Warmup)
	rep.printTable(w)
	fmt.Fprint(w, legend)
	if rep.Calibration != "" {
		fmt.Fprintf(w, "- calibrated: this run's reverse proxy %s\n", rep.Calibration)
	}
}

// printTable writes the run's table, ratios and core utilisation.
func (rep *report) printTable(w io.Writer) {
	if len(rep.Results) > 0 {
		fmt.Fprintf(w, "%-17s %8s %7s %7s %7s %7s %8s %8s %9s %11s %7s %7s\n",
			"scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "+p50 ms", "+p99 ms", "cpu-s/1k", "req/core-s", "rss MB", "errors")
		opt := func(v *float64, format string) string {
			if v == nil {
				return "-"
			}
			return fmt.Sprintf(format, *v)
		}
		for _, r := range rep.Results {
			fmt.Fprintf(w, "%-17s %8.0f %7.2f %7.2f %7.2f %7.1f %8s %8s %9s %11s %7s %7d\n",
				r.Scenario, r.RPS, r.P50, r.P90, r.P99, r.Max, opt(r.AddedP50, "%.2f"), opt(r.AddedP99, "%.2f"),
				opt(r.CPUPer1k, "%.3f"), opt(r.PerCoreSec, "%.0f"), opt(r.RSSMB, "%.0f"), r.Errors)
		}
	}
	if s := rep.Sessions; s != nil {
		fmt.Fprintf(w, "sessions          %d agent sessions (%s) opened (initialize + 1 call each, 64 at a time) in %.1f s (%.0f/s), then idle %.0f s: gateway RSS %.0f → %.0f MB, %.0f KB per session; errors %d\n",
			s.Sessions, s.Protocol, s.OpenSeconds, s.OpenPerSecond, s.IdleSeconds, s.RSSBeforeMB, s.RSSAfterMB, s.KBPerSession, s.Errors)
	}
	var ratios []string
	ratio := func(a, b string) {
		if ra, rb := rep.get(a), rep.get(b); ra != nil && rb != nil && rb.RPS > 0 {
			ratios = append(ratios, fmt.Sprintf("%s/%s %.2f×", a, b, ra.RPS/rb.RPS))
		}
	}
	ratio("transparent", "direct")
	ratio("full", "direct")
	ratio("full", "transparent")
	ratio("deny", "direct")
	ratio("approval", "direct")
	ratio("transparent-bound", "direct-bound")
	if len(ratios) > 0 {
		fmt.Fprintf(w, "\nthroughput: %s\n", strings.Join(ratios, ", "))
	}
	var busy []string
	for _, r := range rep.Results {
		if r.GatewayCores != nil {
			busy = append(busy, fmt.Sprintf("%s %.2f", r.Scenario, *r.GatewayCores))
		}
	}
	if len(busy) > 0 {
		fmt.Fprintf(w, "gateway cores busy (its CPU seconds per second): %s\n", strings.Join(busy, ", "))
	}
	var engine []string
	for _, r := range rep.Results {
		if r.EngineCPUPer1k != nil && r.CPUPer1k != nil && *r.CPUPer1k > 0 {
			engine = append(engine, fmt.Sprintf("%s %.3f (%.0f %%)", r.Scenario, *r.EngineCPUPer1k, 100**r.EngineCPUPer1k / *r.CPUPer1k))
		}
	}
	if len(engine) > 0 {
		fmt.Fprintf(w, "audit engine, part of the gateway's cpu-s/1k: %s\n", strings.Join(engine, ", "))
	}
	if steal := rep.stealLine(); steal != "" {
		fmt.Fprintf(w, "host steal, %% of the window: %s\n", steal)
	}
}

// stealLine lists each scenario's host steal: the gateway's cores, then
// the others' ("-", then all cores, when the run was not pinned). It is
// empty when the host reported none in any scenario (or the runs predate
// the reading).
func (rep *report) stealLine() string {
	var parts []string
	var some bool
	for _, r := range rep.Results {
		if r.StealOthers == nil {
			continue
		}
		gw := "-"
		if r.StealGateway != nil {
			gw = fmt.Sprintf("%.1f", *r.StealGateway)
			some = some || *r.StealGateway > 0
		}
		some = some || *r.StealOthers > 0
		parts = append(parts, fmt.Sprintf("%s %s/%.1f", r.Scenario, gw, *r.StealOthers))
	}
	if !some {
		return ""
	}
	return strings.Join(parts, ", ")
}

// legend explains the table's columns and scenarios.
const legend = `
- each call: tools/call echo of ~1 KB text over streamable HTTP (go-sdk client); latency is per call at the client
- +p50/+p99: over direct at the same concurrency; cpu-s/1k, req/core-s, rss: the gateway process only (utime+stime, VmRSS from /proc)
- gateway cores busy: the gateway's CPU seconds per second of the window; pinned to one core, an @half scenario's value is that core's
  utilisation u; a stall of t ms on it (a collector slice, a kernel thread) delays the calls that arrive in the next ≈ t/(1-u) ms
- audit engine: the part of a full scenario's cpu-s/1k that the embedded ClickHouse engine used in the window
  (gatehouse_audit_engine_cpu_seconds_total: the threads calling it and its own, read at the window's start and end)
- host steal: of the window's time on the gateway's cores / on the load generator's and upstream's, the share the hypervisor
  ran something else while the VM's CPU wanted to run (/proc/stat); a thread then neither runs nor uses CPU time, and a
  call it holds waits (printed when any scenario had some)
- transparent: anonymous virtual server, one allow-all grant
- full: API key, 50 grants (15 with CEL conditions), 20 guardrail rules (request and response), /metrics on,
  every request audited (spool, fsync interval, shipped to the embedded ClickHouse engine in the gateway process)
- deny: a deny grant; the expected access-denied error (-32052) counts as success, the upstream is not called
- approval: every call held on the embedded Temporal server until an approver bot (long-polling approvalChanged) approves it through GraphQL
- direct-bound, transparent-bound: as direct and transparent, but each call makes the upstream compute -bound-rounds SHA-256
  rounds, so that the upstream's core is the bottleneck; +p50/+p99 are over direct-bound
- direct@half, transparent@half, full@half (scenario half): direct, transparent and full paced to half of full's throughput
  above, each session on a fixed schedule, latency counted from the scheduled start; +p50/+p99 are over direct@half at the
  same offered load (transparent@half: what one hop through the gateway adds with the least work per call)
- reverseproxy@half: the same paced calls through the standard library's httputil.ReverseProxy (h2c to the upstream, pinned
  where the gateway runs), a hop that passes bytes on: what any Go proxy hop adds on this machine
`

// write saves the report as DIR/<timestamp>.json.
func (rep *report) write(dir string) (string, error) {
	return writeJSON(dir, rep.Time.Format("20060102T150405Z")+".json", rep)
}

// writeJSON saves v, indented, as DIR/name.
func writeJSON(dir, name string, v any) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("writing results: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("writing results: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("writing results: %w", err)
	}
	return path, nil
}

// version is what `gatehouse version` prints.
func version(binDir string) string {
	out, err := exec.Command(filepath.Join(binDir, "gatehouse"), "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// machine names the CPU model, from /proc/cpuinfo.
func machine() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
