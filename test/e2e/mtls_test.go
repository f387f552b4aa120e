package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMTLS serves HTTPS with client-certificate authentication: an agent
// named by its certificate's common name connects and calls a tool it is
// granted; a certificate from another CA is not taken for it; an agent
// without a certificate falls back to its API key.
func TestMTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, caKey := newCA(t, "agents-ca")
	other, otherKey := newCA(t, "other-ca")
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	srvCert, srvKey := issue(t, ca, caKey, "gateway", true)
	writePEM(t, filepath.Join(dir, "tls.crt"), "CERTIFICATE", srvCert.Raw)
	writeKey(t, filepath.Join(dir, "tls.key"), srvKey)
	robotCert, robotKey := issue(t, ca, caKey, "robot", false)
	strangerCert, strangerKey := issue(t, other, otherKey, "robot", false)

	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	addr := freeAddr(t)
	cfg := writeConfigFile(t, "gatehouse.yaml", fmt.Sprintf(`
listen: %s
data_dir: %s
log: {level: info}
auth:
  mtls: {cert_file: %s, key_file: %s, client_ca_file: %s, agent_from: common_name}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: v, include: [{upstream: alpha, tools: [echo, add]}]}
agents:
  - {name: keyed, api_keys: [{sha256: %s}]}
grants:
  - {subject: {agent: robot}, target: {virtual_server: v, tools: [echo]}, effect: allow}
  - {subject: {agent: keyed}, target: {virtual_server: v, tools: [add]}, effect: allow}
`, addr, filepath.Join(dir, "data"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.pem"), alphaURL, sha))
	// No audit (an embedded ClickHouse engine), as startGateway: it is not
	// what this test is about.
	p := startProc(t, filepath.Join(binDir, "gatehouse"), "serve", "--approvals=false", "--audit=off", "--config", cfg, "--admin-token-file", filepath.Join(dir, "admin.token"))

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	client := func(cert *x509.Certificate, k *ecdsa.PrivateKey, apiKey string) *http.Client {
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: k}}
		}
		var rt http.RoundTripper = &http.Transport{TLSClientConfig: tc}
		if apiKey != "" {
			rt = bearer{key: apiKey, base: rt}
		}
		return &http.Client{Transport: rt, Timeout: 10 * time.Second}
	}
	url := "https://" + addr + "/mcp/v"
	pollUntil(t, "the gateway to serve HTTPS", func() bool {
		select {
		case <-p.done:
			t.Fatalf("gateway exited:\n%s", p.Output())
		default:
		}
		resp, err := client(nil, nil, "").Get("https://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	robot := mcp.NewClient(&mcp.Implementation{Name: "robot", Version: "1"}, nil)
	cs, err := robot.Connect(ctxT(t), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: client(robotCert, robotKey, "")}, nil)
	if err != nil {
		t.Fatalf("robot connect: %v", err)
	}
	defer cs.Close()
	if got := toolNames(t, cs); len(got) != 1 || got[0] != "echo" {
		t.Errorf("robot tools/list = %v, want [echo]", got)
	}
	if got := callText(t, cs, "echo", map[string]any{"text": "by cert"}); got != "[alpha] by cert" {
		t.Errorf("robot echo = %q", got)
	}

	// HTTP/2 is negotiated over TLS (ALPN), and the certificate still
	// names the agent.
	h2 := client(robotCert, robotKey, "")
	h2.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	if resp, err := h2.Get("https://" + addr + "/readyz"); err != nil {
		t.Errorf("HTTP/2 over TLS: %v", err)
	} else if resp.Body.Close(); resp.Proto != "HTTP/2.0" {
		t.Errorf("protocol over TLS with ALPN = %s, want HTTP/2.0", resp.Proto)
	}
	cs2, err := robot.Connect(ctxT(t), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: h2}, nil)
	if err != nil {
		t.Fatalf("robot connect over HTTP/2: %v", err)
	}
	defer cs2.Close()
	if got := callText(t, cs2, "echo", map[string]any{"text": "over h2"}); got != "[alpha] over h2" {
		t.Errorf("robot echo over HTTP/2 = %q", got)
	}

	// A certificate of another CA with the same common name is not
	// accepted as robot (the client does not even offer it: the server
	// asks for its CA's certificates only).
	if st := func() int {
		resp, err := client(strangerCert, strangerKey, "").Post(url, "application/json", nil)
		if err != nil {
			return 0 // refused in the handshake: fine too
		}
		resp.Body.Close()
		return resp.StatusCode
	}(); st != 0 && st != http.StatusUnauthorized {
		t.Errorf("another CA's certificate: HTTP %d, want 401 or a refused handshake", st)
	}

	keyed := mcp.NewClient(&mcp.Implementation{Name: "keyed", Version: "1"}, nil)
	ks, err := keyed.Connect(ctxT(t), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: client(nil, nil, key)}, nil)
	if err != nil {
		t.Fatalf("keyed connect: %v", err)
	}
	defer ks.Close()
	if got := toolNames(t, ks); len(got) != 1 || got[0] != "add" {
		t.Errorf("keyed tools/list = %v, want [add]", got)
	}
	if st := func() int {
		resp, err := client(nil, nil, "").Post(url, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}(); st != http.StatusUnauthorized {
		t.Errorf("no certificate, no key: HTTP %d, want 401", st)
	}
}

func newCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, k *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "EC PRIVATE KEY", der)
}
