// Package e2e runs the real gatehouse binary against real MCP servers and
// clients: the demo server (all three transports), the go-sdk
// everything-server, and npm's @modelcontextprotocol/server-memory.
//
// Non-Go fixtures are installed by `make test-tools` (test/scripts/tools.sh)
// into .cache/; the tests fail, not skip, when they are missing.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/freeport"
)

var (
	binDir   string // gatehouse and demo-server, built once
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	dir, err := os.MkdirTemp("", "gatehouse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	// Gateways started outside the checkout (runGatehouse runs in a
	// temporary directory) find the embedded ClickHouse engine here.
	if lib := filepath.Join(repoRoot, ".cache/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"); os.Getenv("GATEHOUSE_CHDB_LIB") == "" {
		os.Setenv("GATEHOUSE_CHDB_LIB", lib)
	}
	for name, pkg := range map[string]string{"gatehouse": "./cmd/gatehouse", "demo-server": "./test/fixtures/demo-server"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			return 1
		}
	}
	return m.Run()
}

// tool returns the path of a fixture installed under .cache by tools.sh.
func tool(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(repoRoot, ".cache", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make test-tools` (test/scripts/tools.sh) first", p)
	}
	return p
}

// freeAddr is a loopback address for a child process to listen on (see
// package freeport: outside the ephemeral range, so no connection takes it
// while the child starts).
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// proc is a child process whose output is kept for failure reports.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, nil, name, args...)
}

// startProcEnv starts name with the test's environment plus env.
func startProcEnv(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- output of %s %v:\n%s", filepath.Base(name), args, p.Output())
		}
	})
	return p
}

// stop kills the process group and waits.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// demoHTTP starts the demo server on a free port over an HTTP transport and
// returns its MCP URL.
func demoHTTP(t testing.TB, transport, name string) (string, *proc) {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, filepath.Join(binDir, "demo-server"), "-transport", transport, "-addr", addr, "-name", name)
	path := "/mcp"
	if transport == "sse" {
		path = "/sse"
	}
	waitTCP(t, addr)
	return "http://" + addr + path, p
}

func waitTCP(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not come up", addr)
}

// gateway is a running `gatehouse serve`.
type gateway struct {
	*proc
	addr   string
	config string
	// adminToken is the bootstrap admin token, from --admin-token-file.
	adminToken string
}

func (g *gateway) url(vs string) string { return "http://" + g.addr + "/mcp/" + vs }
func (g *gateway) sseURL(vs string) string {
	return "http://" + g.addr + "/sse/" + vs
}

// startGateway writes cfg (with LISTEN replaced by a free address) and runs
// the gateway until it reports ready.
func startGateway(t testing.TB, cfg string, env ...string) *gateway {
	t.Helper()
	return startGatewayArgs(t, cfg, nil, env...)
}

// startGatewayArgs is startGateway with extra serve flags.
func startGatewayArgs(t testing.TB, cfg string, args []string, env ...string) *gateway {
	t.Helper()
	addr := freeAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	cfg = strings.ReplaceAll(cfg, "LISTEN", addr)
	if !strings.Contains(cfg, "data_dir:") {
		cfg = "data_dir: " + filepath.Join(dir, "data") + "\n" + cfg
	}
	cfg = withAllowAll(cfg)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "admin.token")
	// Approval workflows (an embedded Temporal server per gateway) only
	// where a test asks for them.
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--approvals") || strings.HasPrefix(a, "--temporal") }) {
		args = append([]string{"--approvals=false"}, args...)
	}
	// Likewise the audit trail (an embedded ClickHouse engine per gateway).
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--audit") || strings.HasPrefix(a, "--clickhouse") }) {
		args = append([]string{"--audit=off"}, args...)
	}
	p := startProcEnv(t, env, filepath.Join(binDir, "gatehouse"),
		append([]string{"serve", "--config", path, "--admin-token-file", tokenFile}, args...)...)
	g := &gateway{proc: p, addr: addr, config: path}
	waitReady(t, g)
	// A gateway on a store that already has admin tokens (a second
	// replica) writes no file.
	if token, err := os.ReadFile(tokenFile); err == nil {
		g.adminToken = strings.TrimSpace(string(token))
	}
	return g
}

func waitReady(t testing.TB, g *gateway) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + g.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-g.done:
			t.Fatalf("gateway exited:\n%s", g.Output())
		default:
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("gateway not ready:\n%s", g.Output())
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

func httpClient(key string) *http.Client {
	if key == "" {
		return http.DefaultClient
	}
	return &http.Client{Transport: bearer{key: key, base: http.DefaultTransport}}
}

// connect opens a go-sdk client session to url over the given agent
// transport ("streamable-http" or "sse").
func connect(t testing.TB, transport, url, key string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	cs, err := dial(transport, url, key, opts)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func dial(transport, url, key string, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	var tr mcp.Transport
	switch transport {
	case "sse":
		tr = &mcp.SSEClientTransport{Endpoint: url, HTTPClient: httpClient(key)}
	default:
		tr = &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: httpClient(key), MaxRetries: -1}
	}
	// The legacy SSE transport ties its stream to the Connect context, so
	// that context must live as long as the session; a timer bounds the
	// handshake instead.
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(15*time.Second, cancel)
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, opts)
	cs, err := c.Connect(ctx, tr, nil)
	if !timer.Stop() || err != nil {
		cancel()
		if err == nil {
			_ = cs.Close()
			err = context.DeadlineExceeded
		}
		return nil, err
	}
	go func() { _ = cs.Wait(); cancel() }()
	return cs, nil
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// textOf returns the text of a tool result's first content block.
func textOf(t testing.TB, res *mcp.CallToolResult) string {
	t.Helper()
	if res == nil || len(res.Content) == 0 {
		t.Fatalf("empty result: %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("first content is %T, want text", res.Content[0])
	}
	return tc.Text
}

func callText(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	return textOf(t, res)
}

func toolNames(t testing.TB, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctxT(t), nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// connectClient is connect for a caller-built client (so the test can add
// roots or handlers to it) over streamable HTTP, asking for protocol
// version (empty: the go-sdk's latest).
func connectClient(t testing.TB, c *mcp.Client, url, key, version string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: httpClient(key), MaxRetries: -1}
	// As in dial: the session's streams live on the Connect context, so a
	// timer, not a deadline, bounds the handshake.
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(15*time.Second, cancel)
	cs, err := c.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if !timer.Stop() && err == nil {
		_ = cs.Close()
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		t.Fatalf("connect %s (protocol %q): %v", url, version, err)
	}
	go func() { _ = cs.Wait(); cancel() }()
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// withAllowAll gives a configuration that has no grants one allowing every
// agent (and anonymous callers) everything in each virtual server, so tests
// of routing, relays and failures need not restate access control. Tests of
// access control write their own grants.
func withAllowAll(cfg string) string {
	if strings.Contains(cfg, "\ngrants:") {
		return cfg
	}
	var doc struct {
		VirtualServers []struct {
			Name string `yaml:"name"`
		} `yaml:"virtual_servers"`
	}
	if yaml.Unmarshal([]byte(cfg), &doc) != nil || len(doc.VirtualServers) == 0 {
		return cfg
	}
	var b strings.Builder
	b.WriteString(cfg)
	if !strings.HasSuffix(cfg, "\n") {
		b.WriteString("\n")
	}
	b.WriteString("grants:\n")
	for _, vs := range doc.VirtualServers {
		for _, who := range []string{`"*"`, "anonymous"} {
			fmt.Fprintf(&b, "  - {subject: {agent: %s}, target: {virtual_server: %q, tools: [\"*\"], resources: [\"*\"], prompts: [\"*\"]}, effect: allow}\n", who, vs.Name)
		}
	}
	return b.String()
}
