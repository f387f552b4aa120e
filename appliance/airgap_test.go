package appliance

// The air-gap boot test: the built full image, unpacked the way a
// container runtime would (skopeo, umoci), runs its entrypoint as its
// user in fresh network, mount and PID namespaces where only loopback
// exists, boots on an empty data volume, serves an agent's tool call
// through an upstream registered over GraphQL, audits it in the embedded
// ClickHouse engine, and attempts no connection beyond loopback.
//
// `make appliance-test` builds the images and sets the variables below;
// without them the tests skip. They need root (namespaces, chroot), and
// skopeo, umoci and iptables.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Set by `make appliance-test`.
const (
	// EnvTestDist is the directory with the built archives and bundle.
	envTestDist = "GATEHOUSE_APPLIANCE_DIST"
	// EnvTestVersion is the version they were built as.
	envTestVersion = "GATEHOUSE_APPLIANCE_VERSION"
	// envInside carries the unpacked runtime bundle's directory to the
	// test binary re-executed inside the namespaces.
	envInside = "GATEHOUSE_AIRGAP_INSIDE"
)

// builtArchive returns the path of a flavour's archive made by make
// appliance, or skips.
func builtArchive(t *testing.T, f Flavour) (dist, version, archive string) {
	t.Helper()
	dist, version = os.Getenv(envTestDist), os.Getenv(envTestVersion)
	if dist == "" || version == "" {
		t.Skipf("no built appliance: run `make appliance-test` (sets %s and %s)", envTestDist, envTestVersion)
	}
	o := Options{Version: version}
	archive = filepath.Join(dist, o.ArchiveName(f))
	if _, err := os.Stat(archive); err != nil {
		t.Fatalf("%s: %v (make appliance)", archive, err)
	}
	return dist, version, archive
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestBuiltArchives: skopeo reads both flavours as OCI and as docker
// archives, and the labels carry the version.
func TestBuiltArchives(t *testing.T) {
	for _, f := range Flavours {
		_, version, archive := builtArchive(t, f)
		for _, transport := range []string{"oci-archive", "docker-archive"} {
			var info struct{ Labels map[string]string }
			if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", transport+":"+archive)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Labels["org.opencontainers.image.version"] != version || info.Labels["dev.gatehouse.flavour"] != string(f) {
				t.Errorf("%s %s: labels %v", transport, archive, info.Labels)
			}
		}
	}
}

// TestPodmanLoads: `podman load` takes the slim archive, with the
// manifest digest the build reported. Podman is optional here (it is not
// in the test setup): skipped where it is not installed.
func TestPodmanLoads(t *testing.T) {
	_, version, archive := builtArchive(t, Slim)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (optional: apt-get install podman)")
	}
	dir := t.TempDir()
	podman := func(args ...string) string {
		return run(t, "podman", append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}, args...)...)
	}
	ref := Repository + ":" + version + "-slim"
	if out := podman("load", "-i", archive); !strings.Contains(out, ref) {
		t.Fatalf("podman load: %s", out)
	}
	var info struct{ Digest string }
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "oci-archive:"+archive)), &info); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(podman("images", "--format", "{{.Digest}}", ref)); got != info.Digest {
		t.Errorf("podman has %s with digest %q, the archive %q", ref, got, info.Digest)
	}
}

// TestBuiltBundleVerifies runs the image's own gatehouse on the built
// bundle: `gatehouse bundle verify` accepts it.
func TestBuiltBundleVerifies(t *testing.T) {
	dist, version, _ := builtArchive(t, Slim)
	work := t.TempDir()
	rootfs := unpack(t, filepath.Join(dist, (&Options{Version: version}).ArchiveName(Slim)), work)
	out := run(t, filepath.Join(rootfs, BinaryPath), "bundle", "verify", filepath.Join(dist, Repository+"-"+version+"-bundle.tar"))
	if !strings.HasPrefix(out, "ok: ") {
		t.Errorf("bundle verify: %s", out)
	}
}

// unpack unpacks an image archive into a runtime bundle under work and
// returns its root file system. As root, umoci keeps the layers' owners.
func unpack(t *testing.T, archive, work string) string {
	t.Helper()
	run(t, "skopeo", "copy", "--quiet", "oci-archive:"+archive, "oci:"+filepath.Join(work, "oci")+":gatehouse")
	args := []string{"unpack", "--image", filepath.Join(work, "oci") + ":gatehouse", filepath.Join(work, "bundle")}
	if os.Geteuid() != 0 {
		args = append([]string{"unpack", "--rootless"}, args[1:]...)
	}
	run(t, "umoci", args...)
	return filepath.Join(work, "bundle", "rootfs")
}

// runtimeConfig is the part of the OCI runtime configuration (umoci's
// config.json, made from the image config) the test runs the process by.
type runtimeConfig struct {
	Process struct {
		Args []string
		Env  []string
		Cwd  string
		User struct{ UID, GID uint32 }
	}
}

func TestAirGapBoot(t *testing.T) {
	if dir := os.Getenv(envInside); dir != "" {
		airGapInside(t, dir)
		return
	}
	_, _, archive := builtArchive(t, Full)
	if os.Geteuid() != 0 {
		t.Fatal("the air-gap boot test needs root (network and mount namespaces, chroot)")
	}
	work := t.TempDir()
	start := time.Now()
	rootfs := unpack(t, archive, work)
	t.Logf("unpacked %s in %s", filepath.Base(archive), time.Since(start).Round(time.Millisecond))
	// The demo MCP server, a static binary, joins the root file system for
	// this test only: the upstream the appliance runs over stdio.
	demo := buildStatic(t, t.TempDir())
	if err := os.MkdirAll(filepath.Join(rootfs, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", demo, filepath.Join(rootfs, "usr/local/bin/demo-server"))

	// Re-run this test inside new network, mount and PID namespaces.
	cmd := exec.Command("unshare", "--net", "--mount", "--pid", "--uts", "--fork", "--kill-child", "--",
		os.Args[0], "-test.run", "^TestAirGapBoot$", "-test.v", "-test.timeout", "150s")
	cmd.Env = append(os.Environ(), envInside+"="+filepath.Join(work, "bundle"))
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("inside the namespaces:\n%s", out)
	}
	if err != nil {
		t.Fatalf("air-gap boot failed: %v", err)
	}
}

// airGapInside runs as PID 1 of the new namespaces.
func airGapInside(t *testing.T, bundleDir string) {
	rootfs := filepath.Join(bundleDir, "rootfs")
	var cfg runtimeConfig
	b, err := os.ReadFile(filepath.Join(bundleDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	isolate(t)
	dns := startDNSSink(t)
	mountRuntime(t, rootfs, bundleDir)

	// The entrypoint, as the image's user, in its working directory, with
	// the image's environment and nothing of the test's.
	gw := &output{}
	p := cfg.Process
	cmd := &exec.Cmd{
		Path: p.Args[0], Args: p.Args, Env: p.Env, Dir: p.Cwd, Stdout: gw, Stderr: gw,
		SysProcAttr: &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: p.User.UID, Gid: p.User.GID, Groups: []uint32{}}},
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", p.Args, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("gateway output:\n%s", gw)
		}
	}()
	base := "http://127.0.0.1:8080"
	waitReady(t, base, exited)
	t.Logf("first boot: ready in %s", time.Since(start).Round(time.Millisecond))

	tokens := regexp.MustCompile(`gha_[A-Za-z0-9_-]{20,}`).FindAllString(gw.String(), -1)
	if len(tokens) != 1 {
		t.Fatalf("want the bootstrap admin token printed once, found %d times", len(tokens))
	}
	admin := tokens[0]
	for _, f := range []string{"gatehouse.db", "temporal", "audit/chdb"} {
		st, err := os.Stat(filepath.Join(rootfs, DataDir, f))
		if err != nil {
			t.Fatalf("first boot did not initialize %s: %v", f, err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != p.User.UID {
			t.Errorf("%s belongs to uid %d, want %d", f, uid, p.User.UID)
		}
	}

	// Configure through GraphQL: a stdio upstream, a virtual server, an
	// agent with a key, a grant.
	gql := func(query string, vars map[string]any) map[string]any {
		t.Helper()
		return graphQL(t, base, admin, query, vars)
	}
	up := gql(`mutation { createUpstream(input: {name: "demo", transport: stdio, command: "/usr/local/bin/demo-server", args: ["-transport", "stdio", "-name", "airgap"]}) { id } }`, nil)
	vs := gql(`mutation { createVirtualServer(input: {name: "airgap"}) { id } }`, nil)
	gql(`mutation($vs: ID!, $up: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up, position: 0}) { id } }`,
		map[string]any{"vs": dig(vs, "createVirtualServer", "id"), "up": dig(up, "createUpstream", "id")})
	team := gql(`mutation { createTeam(input: {name: "ops"}) { id } }`, nil)
	agent := gql(`mutation($team: ID!) { createAgent(input: {name: "airgap-bot", teamID: $team}) { id } }`, map[string]any{"team": dig(team, "createTeam", "id")})
	key, _ := dig(gql(`mutation($a: ID!) { rotateAgentKey(agent: $a) { key } }`, map[string]any{"a": dig(agent, "createAgent", "id")}), "rotateAgentKey", "key").(string)
	gql(`mutation($vs: ID!) { createGrant(input: {virtualServerID: $vs, name: "airgap-echo", subjectKind: agent, subject: "airgap-bot", tools: ["echo"], effect: allow}) { id } }`,
		map[string]any{"vs": dig(vs, "createVirtualServer", "id")})

	// An agent calls a tool through the MCP endpoint.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "airgap-test", Version: "1"}, nil)
	var cs *mcp.ClientSession
	// Admin changes reach the data path asynchronously (live apply), one
	// committed mutation after another: the virtual server answers 404 (401
	// while the key is not in force either), the new key 401, and echo is
	// an unknown tool until the grant is in force.
	for {
		cs, err = client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp/airgap", HTTPClient: bearerClient(key), MaxRetries: -1}, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "Not Found") && !strings.Contains(err.Error(), "Unauthorized") {
			t.Fatalf("connect as the agent: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var res *mcp.CallToolResult
	for {
		res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "air-gapped hello"}})
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), `unknown tool "echo"`) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("tools/call echo: %v %+v", err, res)
	}
	if text, _ := res.Content[0].(*mcp.TextContent); text == nil || !strings.Contains(text.Text, "air-gapped hello") {
		t.Fatalf("echo answered %+v", res.Content[0])
	}
	_ = cs.Close()

	// The call is in the audit trail (embedded ClickHouse engine).
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n == 0; {
		n = auditCount(t, base, admin, `SELECT count() AS n FROM audit_events WHERE kind = 'request' AND method = 'tools/call'
			AND target = 'echo' AND agent = 'airgap-bot' AND virtual_server = 'airgap' AND decision = 'allow' AND outcome = 'ok'`)
		if n == 0 && time.Now().After(deadline) {
			t.Fatal("the tool call did not reach the audit trail in 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// SIGTERM drains and exits cleanly.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM the gateway exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the gateway did not exit within 30s of SIGTERM")
		_ = cmd.Process.Kill()
	}
	checkNoEgress(t, gw.String())
	if names := dns.asked(); len(names) > 0 {
		t.Errorf("the appliance resolved names through DNS (on a network, these would leave the host): %v", names)
	}
}

// isolate checks that the network namespace has loopback only, brings it
// up, and makes every attempt to leave it visible: a default route over
// loopback lets a connection to any other address become a packet, which
// netfilter counts and drops. Without the route, such attempts would fail
// inside connect(2) and leave no trace.
func isolate(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Fatalf("the network namespace has %v, want only lo", ifs)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "route", "add", "default", "dev", "lo"},
		{"ip", "-6", "route", "add", "default", "dev", "lo"},
		{"iptables", "-A", "OUTPUT", "!", "-d", "127.0.0.0/8", "-j", "DROP"},
		{"ip6tables", "-A", "OUTPUT", "!", "-d", "::1/128", "-j", "DROP"},
	} {
		run(t, c[0], c[1:]...)
	}
}

// dnsSink listens where a resolver without /etc/resolv.conf asks
// (127.0.0.1:53 and [::1]:53, UDP), answers nothing, and records the
// names asked for.
type dnsSink struct {
	mu    sync.Mutex
	names []string
}

func startDNSSink(t *testing.T) *dnsSink {
	d := &dnsSink{}
	for _, addr := range []string{"127.0.0.1:53", "[::1]:53"} {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("DNS sink: %v", err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				d.mu.Lock()
				d.names = append(d.names, queryName(buf[:n]))
				d.mu.Unlock()
			}
		}()
	}
	return d
}

func (d *dnsSink) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Compact(slices.Sorted(slices.Values(d.names)))
}

// queryName reads the first question's name of a DNS message.
func queryName(msg []byte) string {
	var labels []string
	for i := 12; i < len(msg) && msg[i] != 0; i += 1 + int(msg[i]) {
		if i+1+int(msg[i]) > len(msg) {
			break
		}
		labels = append(labels, string(msg[i+1:i+1+int(msg[i])]))
	}
	return strings.Join(labels, ".")
}

// dropCounts returns the packets each DROP rule counted, if any.
func dropCounts(t *testing.T) string {
	var b strings.Builder
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, line := range strings.Split(run(t, cmd, "-L", "OUTPUT", "-v", "-n", "-x"), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[2] == "DROP" && f[0] != "0" {
				fmt.Fprintf(&b, "%s: %s\n", cmd, strings.Join(f, " "))
			}
		}
	}
	return b.String()
}

// egressInLog matches what a dial or a name lookup that left loopback
// leaves in the gateway's log.
var egressInLog = regexp.MustCompile(`(?i)dial (?:tcp|udp)[46]? ([^\s,"]+)|lookup ([^\s:"]+)|network is unreachable|no such host|connect: [^"]*(?:unreachable|not permitted)`)

// checkNoEgress fails on any packet counted leaving loopback and on any
// dial or lookup of a non-loopback address in the log.
func checkNoEgress(t *testing.T, log string) {
	if c := dropCounts(t); c != "" {
		t.Errorf("the appliance attempted connections beyond loopback:\n%s", c)
	}
	for _, m := range egressInLog.FindAllStringSubmatch(log, -1) {
		host := m[1]
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if ip := net.ParseIP(strings.Trim(host, "[]")); m[1] != "" && ip != nil && ip.IsLoopback() {
			continue
		}
		if m[2] == "localhost" {
			continue
		}
		t.Errorf("the gateway's log shows an attempt to leave loopback: %q", m[0])
	}
}

// mountRuntime gives the root file system what a container runtime
// mounts: /proc of the new PID namespace, a /dev with the usual devices,
// /sys read-only (the engine reads its cgroup limits there), and an
// /etc/hosts that names the container's own host name (set here in the
// new UTS namespace), so that looking it up (the engine does) needs no
// DNS, as under Docker, Podman or Kubernetes.
func mountRuntime(t *testing.T, rootfs, bundleDir string) {
	must := func(err error, what string) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must(syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""), "make mounts private")
	const hostname = "gatehouse-airgap"
	must(syscall.Sethostname([]byte(hostname)), "set the host name")
	hosts := filepath.Join(bundleDir, "hosts")
	must(os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost "+hostname+"\n::1\tlocalhost ip6-localhost ip6-loopback\n"), 0o644), "write hosts")
	must(syscall.Mount(hosts, filepath.Join(rootfs, "etc/hosts"), "", syscall.MS_BIND, ""), "bind /etc/hosts")
	for _, d := range []string{"proc", "dev", "sys"} {
		must(os.MkdirAll(filepath.Join(rootfs, d), 0o755), "mkdir "+d)
	}
	must(syscall.Mount("proc", filepath.Join(rootfs, "proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""), "mount /proc")
	must(syscall.Mount("tmpfs", filepath.Join(rootfs, "dev"), "tmpfs", syscall.MS_NOSUID, "mode=755"), "mount /dev")
	for _, d := range []string{"null", "zero", "full", "random", "urandom"} {
		target := filepath.Join(rootfs, "dev", d)
		must(os.WriteFile(target, nil, 0o666), "create /dev/"+d)
		must(syscall.Mount("/dev/"+d, target, "", syscall.MS_BIND, ""), "bind /dev/"+d)
	}
	sys := filepath.Join(rootfs, "sys")
	must(syscall.Mount("/sys", sys, "", syscall.MS_BIND|syscall.MS_REC, ""), "bind /sys")
	must(syscall.Mount("", sys, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""), "remount /sys read-only")
}

func waitReady(t *testing.T, base string, exited <-chan error) {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("the gateway exited during first boot: %v", err)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var rd struct{ Status, Audit, Approvals string }
				if err := json.Unmarshal(body, &rd); err != nil || rd.Audit != "ok" || rd.Approvals != "ready" {
					t.Fatalf("/readyz: %s (want the embedded audit engine and approvals up)", body)
				}
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the gateway was not ready within 90s")
}

func graphQL(t *testing.T, base, token, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("graphql: %v", err)
	}
	defer resp.Body.Close()
	var r struct {
		Data   map[string]any
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Errors) > 0 {
		t.Fatalf("graphql %s: HTTP %d %v %+v", query, resp.StatusCode, err, r.Errors)
	}
	return r.Data
}

func auditCount(t *testing.T, base, token, query string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, _ := http.NewRequest(http.MethodPost, base+"/audit/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("audit query: %v", err)
	}
	defer resp.Body.Close()
	var r struct{ Rows [][]any }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK || len(r.Rows) != 1 {
		t.Fatalf("audit query: HTTP %d %v %+v", resp.StatusCode, err, r)
	}
	var n int
	fmt.Sscan(fmt.Sprint(r.Rows[0][0]), &n)
	return n
}

// dig walks decoded JSON along map keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

func bearerClient(key string) *http.Client { return &http.Client{Transport: bearer{key}} }

// output collects a process's output safely across goroutines.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
