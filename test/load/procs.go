package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/freeport"
	"github.com/gatehouse-dev/gatehouse/internal/procstat"
)

// logTail is how much of a child's output is kept for failure reports.
const logTail = 64 << 10

// proc is a child process whose output is kept (its last [logTail] bytes)
// for failure reports. It runs in its own process group, and dies with the
// harness (Pdeathsig) even if the harness is killed.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []byte
	done chan struct{}
	// log is the copy of the output in -child-logs, if any.
	log *os.File
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = append(p.out, b...)
	if len(p.out) > 2*logTail {
		p.out = append(p.out[:0], p.out[len(p.out)-logTail:]...)
	}
	return len(b), nil
}

// tail returns the last n lines of the process's output.
func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(p.out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// procs tracks every child so that one call stops them all, on any exit
// path.
type procs struct {
	pin pinning
	// logDir, when set, gets a copy of each gateway's output (see start).
	logDir string
	mu     sync.Mutex
	list   []*proc
}

// start runs name with args on the cores of role (see pinning).
func (ps *procs) start(role, name string, args ...string) (*proc, error) {
	cmd, cargs := ps.pin.command(role, name, args)
	p := &proc{name: filepath.Base(name), cmd: exec.Command(cmd, cargs...), done: make(chan struct{})}
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	if ps.logDir != "" && role == "gateway" {
		// Named by start time, so that they sort in the run's order.
		f, err := os.Create(filepath.Join(ps.logDir, fmt.Sprintf("%s-%s.log", time.Now().Format("150405.000"), p.name)))
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", name, err)
		}
		p.log = f
		p.cmd.Stdout = io.MultiWriter(p, f)
		p.cmd.Stderr = p.cmd.Stdout
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		if p.log != nil {
			_ = p.log.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		if p.log != nil {
			_ = p.log.Close()
		}
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// stop kills p's process group and waits for it.
func (ps *procs) stop(p *proc) {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		ps.stop(p)
	}
	ps.list = nil
}

// freeAddr is a loopback address for a child process to listen on,
// outside the ephemeral range the sessions scenario's 10,000 connections
// draw from (package freeport).
func freeAddr() (string, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	return addr, nil
}

// startUpstream starts the demo server over streamable HTTP and returns
// its MCP URL once it accepts connections.
func startUpstream(ctx context.Context, ps *procs, binDir string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := ps.start("upstream", filepath.Join(binDir, "demo-server"), "-transport", "streamable-http", "-addr", addr, "-name", "alpha", "-bench-tools")
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, p, addr); err != nil {
		return nil, "", err
	}
	return p, "http://" + addr + "/mcp", nil
}

// waitListening waits up to 15 s for p to accept connections on addr.
func waitListening(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not come up on %s:\n%s", p.name, addr, p.tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gateway is a running `gatehouse serve`.
type gateway struct {
	*proc
	addr       string
	debugAddr  string // --debug-listen, when profiled
	adminToken string
}

func (g *gateway) url(vs string) string { return "http://" + g.addr + "/mcp/" + vs }

// startGateway writes cfg (with LISTEN and DATA replaced) into a fresh
// directory under tmp and runs the gateway until /readyz answers 200 (and,
// with approvals, reports them ready). On failure the error carries the
// gateway's log tail.
// extra are more serve flags (the harness's -gateway-flags).
func startGateway(ctx context.Context, ps *procs, binDir, tmp, cfg string, approvals, audited, profiled bool, extra []string) (*gateway, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var debugAddr string
	if profiled {
		if debugAddr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(tmp, "gw-")
	if err != nil {
		return nil, fmt.Errorf("creating gateway dir: %w", err)
	}
	cfg = strings.NewReplacer("LISTEN", addr, "DATA", filepath.Join(dir, "data")).Replace(cfg)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("writing gateway config: %w", err)
	}
	tokenFile := filepath.Join(dir, "admin.token")
	args := []string{"serve", "--config", path, "--admin-token-file", tokenFile, "--approvals=false"}
	if approvals {
		args = append(args[:len(args)-1], "--approvals=true", "--approval-hold", "1m")
	}
	if !audited {
		args = append(args, "--audit=off")
	}
	if debugAddr != "" {
		args = append(args, "--debug-listen", debugAddr)
	}
	args = append(args, extra...)
	p, err := ps.start("gateway", filepath.Join(binDir, "gatehouse"), args...)
	if err != nil {
		return nil, err
	}
	g := &gateway{proc: p, addr: addr, debugAddr: debugAddr}
	fail := func(why string) (*gateway, error) {
		ps.stop(p)
		return nil, fmt.Errorf("gateway %s; its log:\n%s", why, p.tail(40))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ready, _ := g.ready(approvals); ready {
			break
		}
		switch {
		case ctx.Err() != nil:
			return fail("start interrupted")
		case p.exited():
			return fail("exited while starting")
		case time.Now().After(deadline):
			return fail("not ready after 60s")
		}
		time.Sleep(25 * time.Millisecond)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return fail("wrote no admin token file")
	}
	g.adminToken = strings.TrimSpace(string(token))
	return g, nil
}

func (g *gateway) ready(approvals bool) (bool, error) {
	resp, err := http.Get("http://" + g.addr + "/readyz")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode == http.StatusOK && (!approvals || body["approvals"] == "ready"), nil
}

// keygen runs `gatehouse keygen` and returns the key and its SHA-256.
func keygen(binDir string) (key, sha string, err error) {
	out, err := exec.Command(filepath.Join(binDir, "gatehouse"), "keygen").Output()
	if err != nil {
		return "", "", fmt.Errorf("running gatehouse keygen: %w", err)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch strings.TrimSpace(k) {
		case "key":
			key = strings.TrimSpace(v)
		case "sha256":
			sha = strings.TrimSpace(v)
		}
	}
	if key == "" || len(sha) != 64 {
		return "", "", fmt.Errorf("gatehouse keygen printed no key and sha256: %q", out)
	}
	return key, sha, nil
}

// gql runs a GraphQL request as token and decodes its data into out
// (which may be nil). GraphQL errors are returned as an error.
func gql(ctx context.Context, hc *http.Client, g *gateway, token, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+g.addr+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("graphql: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("graphql: reading response: %w", err)
	}
	var r struct {
		Data   json.RawMessage
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("graphql: HTTP %d: %w", resp.StatusCode, err)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql: %s (%v)", r.Errors[0].Message, r.Errors[0].Extensions["code"])
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

// cpuSeconds is the user+system CPU time of process pid (not its
// children) from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	n, err := procstat.CPUTicks(b)
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	return float64(n) / procstat.ClockTicks, nil
}

// rssBytes is VmRSS of process pid from /proc/PID/status.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading RSS: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading RSS: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("reading RSS: no VmRSS in /proc status")
}
