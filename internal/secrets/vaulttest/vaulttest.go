// Package vaulttest runs a real HashiCorp Vault dev server for tests: the
// binary that `make vault` builds into bin/vault, started in dev mode
// (in-memory storage, unsealed, KV v2 at secret/) on a loopback port, and
// stopped when the test ends.
//
// Code under test reaches Vault through a small TCP front proxy that the
// [Server] owns, at [Server.Addr]. [Server.Down] cuts the front (live
// connections are closed, new ones refused) and [Server.Up] restores it on
// the same address, so tests can play "Vault is down" and "Vault is back"
// while Vault itself keeps its in-memory data. Test setup ([Server.Client]
// and the helpers such as [Server.PutKV]) talks to Vault directly, so it
// works while the front is down.
//
// [StartTLS] starts the server with TLS instead, its certificate issued by
// a CA that Vault generates: [Server.CACert] is the CA's PEM file. The
// front passes TLS through untouched, so code under test verifies Vault's
// own certificate, valid for 127.0.0.1 and localhost.
//
// It is not a _test package so that tests of other packages, and the
// end-to-end tests of the gateway binary, can use it.
package vaulttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/gatehouse-dev/gatehouse/internal/freeport"
)

// EnvBin names the variable that, when set, is the path of the vault binary
// to run instead of bin/vault at the root of the Gatehouse module.
const EnvBin = "GATEHOUSE_VAULT_BIN"

// rootModule is the module path whose go.mod marks the checkout root, where
// bin/vault lives.
const rootModule = "github.com/gatehouse-dev/gatehouse"

// startTimeout bounds how long [Start] waits for Vault to be initialized
// and unsealed.
const startTimeout = 60 * time.Second

// opTimeout bounds each helper's calls to Vault.
const opTimeout = 30 * time.Second

// Server is a running Vault dev server. Its methods are safe for concurrent
// use.
type Server struct {
	t      testing.TB // of Start, for Up's errors
	scheme string     // http, or https for StartTLS
	direct string     // http(s)://127.0.0.1:PORT of Vault itself
	caCert string     // path of Vault's CA PEM; "" without TLS
	token  string
	front  *front
	out    *logBuffer
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	client *api.Client   // root client on direct, for the helpers
}

// Start starts a Vault dev server with a random root token and returns it
// once Vault reports itself initialized and unsealed. The server, and its
// front proxy, stop when the test ends; if the test failed, the tail of
// Vault's log is logged first.
//
// The binary is $GATEHOUSE_VAULT_BIN, or else bin/vault at the root of the
// Gatehouse checkout that contains the working directory. A missing binary
// fails the test (it never skips): run `make vault`.
func Start(t testing.TB) *Server {
	t.Helper()
	return startServer(t, false)
}

// StartTLS is [Start] with TLS: Vault generates a CA and a certificate for
// 127.0.0.1 and localhost (Vault's -dev-tls), [Server.Addr] and
// [Server.DirectAddr] are https URLs, and [Server.CACert] is the CA's PEM
// file. The helpers' client trusts that CA; no other client does unless
// configured with it.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return startServer(t, true)
}

func startServer(t testing.TB, withTLS bool) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}

	// The ports picked for Vault (PORT for the API, PORT+1 for its cluster
	// listener) may be taken again before Vault binds them; try a few times
	// when that happens.
	var s *Server
	for range 3 {
		s, err = start(t, bin, withTLS)
		if err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return s
}

var errAddrInUse = errors.New("address already in use")

func start(t testing.TB, bin string, withTLS bool) (*Server, error) {
	t.Helper()
	port, err := freeport.Pair() // Vault's cluster listener binds PORT+1
	if err != nil {
		return nil, fmt.Errorf("picking a port for vault: %w", err)
	}
	home := t.TempDir()
	hostPort := fmt.Sprintf("127.0.0.1:%d", port)
	s := &Server{
		t:      t,
		scheme: "http",
		token:  "root-" + rand.Text(),
		out:    &logBuffer{},
		exited: make(chan struct{}),
	}
	args := []string{"server", "-dev",
		"-dev-root-token-id=" + s.token,
		"-dev-listen-address=" + hostPort,
		"-dev-no-store-token",
	}
	if withTLS {
		// Vault writes vault-ca.pem, vault-cert.pem and vault-key.pem
		// there; the directory must exist.
		dir := filepath.Join(home, "tls")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("directory for vault's TLS files: %w", err)
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+dir)
		s.scheme, s.caCert = "https", filepath.Join(dir, "vault-ca.pem")
	}
	s.direct = s.scheme + "://" + hostPort
	cmd := exec.Command(bin, args...)
	// A minimal environment: no VAULT_* from the developer's shell, and a
	// private HOME so nothing reads or writes ~/.vault-token.
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "TMPDIR=" + home}
	cmd.Dir = home
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	setProcAttr(cmd)
	s.cmd = cmd
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-s.exited
	}

	if err := s.waitReady(); err != nil {
		stop()
		if strings.Contains(s.out.String(), "address already in use") {
			return nil, fmt.Errorf("vault on 127.0.0.1:%d: %w", port, errAddrInUse)
		}
		return nil, fmt.Errorf("%w\n--- vault output ---\n%s", err, s.out.Tail(8<<10))
	}
	t.Logf("vaulttest: vault dev server ready at %s in %v", s.direct, time.Since(began).Round(time.Millisecond))

	s.client, err = s.newClient(s.direct)
	if err != nil {
		stop()
		return nil, err
	}
	s.front, err = newFront(hostPort)
	if err != nil {
		stop()
		return nil, err
	}
	t.Cleanup(func() {
		s.front.close()
		stop()
		if t.Failed() {
			t.Logf("vaulttest: vault output (tail):\n%s", s.out.Tail(8<<10))
		}
	})
	return s, nil
}

// waitReady polls sys/health until Vault is initialized and unsealed, the
// process exits, or startTimeout passes.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	var hc *http.Client
	defer func() {
		if hc != nil {
			hc.CloseIdleConnections()
		}
	}()
	var last error
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-s.exited:
			return fmt.Errorf("vault exited during start-up: %v", s.cmd.ProcessState)
		default:
		}
		if hc == nil {
			// With TLS, the CA file appears once Vault has generated it.
			if hc, last = s.healthClient(); last != nil {
				continue
			}
		}
		var h struct {
			Initialized bool `json:"initialized"`
			Sealed      bool `json:"sealed"`
		}
		resp, err := hc.Get(s.direct + "/v1/sys/health")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err == nil && h.Initialized && !h.Sealed {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("initialized=%v sealed=%v", h.Initialized, h.Sealed)
			}
		}
		last = err
	}
	return fmt.Errorf("vault not ready after %v: %v", startTimeout, last)
}

// healthClient is the plain HTTP client of waitReady, trusting Vault's CA
// when there is one.
func (s *Server) healthClient() (*http.Client, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	if s.caCert == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(s.caCert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s (yet)", s.caCert)
	}
	hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return hc, nil
}

// findBinary returns $GATEHOUSE_VAULT_BIN or bin/vault of the checkout root
// above the working directory.
func findBinary() (string, error) {
	if bin := os.Getenv(EnvBin); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("vault binary from %s: %w (unset it to use bin/vault from `make vault`)", EnvBin, err)
		}
		return bin, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding bin/vault: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if isRoot(filepath.Join(dir, "go.mod")) {
			bin := filepath.Join(dir, "bin", "vault")
			if _, err := os.Stat(bin); err != nil {
				return "", fmt.Errorf("bin/vault missing: run `make vault` (looked for %s; or set %s)", bin, EnvBin)
			}
			return bin, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("bin/vault missing: run `make vault` (no go.mod of module %s above %s; or set %s)", rootModule, wd, EnvBin)
		}
	}
}

// isRoot reports whether the go.mod at path declares the Gatehouse module
// (not a nested one such as test/tools/vault).
func isRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == rootModule
		}
	}
	return false
}

// Addr is the base URL of the front proxy, http://127.0.0.1:PORT (https
// for [StartTLS]): what code under test should be configured with. It
// stays the same across [Server.Down] and [Server.Up].
func (s *Server) Addr() string { return s.scheme + "://" + s.front.addr }

// DirectAddr is the base URL of Vault itself, bypassing the front proxy.
func (s *Server) DirectAddr() string { return s.direct }

// CACert is the path of the PEM file of the CA that issued Vault's TLS
// certificate, for a server from [StartTLS]; "" for one from [Start].
func (s *Server) CACert() string { return s.caCert }

// RootToken is the dev server's root token.
func (s *Server) RootToken() string { return s.token }

// Down closes the front proxy's listener and every connection through it:
// requests to [Server.Addr] fail with "connection refused" until
// [Server.Up]. Vault keeps running, with its data. Down when already down
// does nothing.
func (s *Server) Down() { s.front.down() }

// Up listens on [Server.Addr] again after [Server.Down]. If the port cannot
// be bound again within a few seconds (another process took it), it marks
// the test given to [Start] as failed. Up when already up does nothing.
func (s *Server) Up() {
	if err := s.front.up(); err != nil {
		s.t.Errorf("vaulttest: %v", err)
	}
}

// Client returns a new Vault API client for Vault's direct address (not
// through the front proxy), with the root token, no namespace and no
// retries, trusting [Server.CACert] if set. The caller may change its
// token.
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	c, err := s.newClient(s.direct)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return c
}

func (s *Server) newClient(addr string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client config: %w", cfg.Error)
	}
	cfg.Address = addr
	cfg.MaxRetries = 0
	if s.caCert != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.caCert}); err != nil {
			return nil, fmt.Errorf("vault client TLS: %w", err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c.SetToken(s.token)
	c.ClearNamespace()
	return c, nil
}

// logBuffer collects the output of the vault process.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns at most the last n bytes, from a line start when it can.
func (b *logBuffer) Tail(n int) string {
	s := b.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}

// ctx returns the context helpers use for their calls to Vault.
func ctx(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), opTimeout)
}
