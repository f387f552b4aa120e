package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate; edit fills in names and usages.
func (ca *testCA) issue(t *testing.T, edit func(*x509.Certificate)) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func (ca *testCA) client(t *testing.T, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	c, k := ca.issue(t, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		edit(c)
	})
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// mtlsServer writes the server's files, builds an MTLS and serves, over
// its TLSConfig, a handler that reports the authenticated principal.
type mtlsServer struct {
	m        *MTLS
	url      string
	dir      string
	serverCA *testCA
}

func startMTLS(t *testing.T, clientCA *testCA, agentFrom string, require bool) *mtlsServer {
	t.Helper()
	s := &mtlsServer{dir: t.TempDir(), serverCA: newTestCA(t, "server CA")}
	s.writeServerCert(t, "gatehouse-1")
	writeFile(t, filepath.Join(s.dir, "clients.pem"), clientCA.pem)
	m, err := NewMTLS(&config.MTLS{
		CertFile:     filepath.Join(s.dir, "server.pem"),
		KeyFile:      filepath.Join(s.dir, "server.key"),
		ClientCAFile: filepath.Join(s.dir, "clients.pem"),
		AgentFrom:    agentFrom,
		Require:      require,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.log = slog.New(slog.DiscardHandler)
	s.m = m
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := m.Authenticate(r.Context(), r)
			if err != nil {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, err.Error())
				return
			}
			_ = json.NewEncoder(w).Encode(p)
		}),
		ErrorLog: log.New(io.Discard, "", 0), // failed handshakes are the point
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, m.TLSConfig())) }()
	t.Cleanup(func() { _ = srv.Close() })
	s.url = "https://" + ln.Addr().String() + "/mcp/ops"
	return s
}

func (s *mtlsServer) writeServerCert(t *testing.T, cn string) {
	c, k := s.serverCA.issue(t, func(c *x509.Certificate) {
		c.Subject.CommonName = cn
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	writeFile(t, filepath.Join(s.dir, "server.pem"), c)
	writeFile(t, filepath.Join(s.dir, "server.key"), k)
}

// get connects afresh, with cert unless nil, and returns the status, the
// body and the server certificate's common name.
func (s *mtlsServer) get(t *testing.T, cert *tls.Certificate) (int, string, string, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(s.serverCA.cert)
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		// Sent even when the server asks for another CA's certificates
		// (Certificates would then send none).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(s.url)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.TLS.PeerCertificates[0].Subject.CommonName, nil
}

func TestMTLSAgentFrom(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "agents CA")
	full := ca.client(t, func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "cn-agent", Organization: []string{"corp"}}
		c.DNSNames = []string{"dns-agent.corp.example", "alt.corp.example"}
		c.URIs = []*url.URL{{Scheme: "spiffe", Host: "corp.example", Path: "/agent/uri-agent"}}
		c.EmailAddresses = []string{"email-agent@corp.example"}
	})
	bare := ca.client(t, func(c *x509.Certificate) { c.Subject = pkix.Name{Organization: []string{"corp"}} })
	for _, tc := range []struct{ from, agent string }{
		{"common_name", "cn-agent"},
		{"dns_san", "dns-agent.corp.example"},
		{"uri_san", "spiffe://corp.example/agent/uri-agent"},
		{"email_san", "email-agent@corp.example"},
	} {
		t.Run(tc.from, func(t *testing.T) {
			t.Parallel()
			s := startMTLS(t, ca, tc.from, false)
			status, body, _, err := s.get(t, &full)
			if err != nil || status != http.StatusOK {
				t.Fatalf("status %d, %q, %v", status, body, err)
			}
			var p Principal
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			if p.Agent != tc.agent || p.Method != "mtls" || len(p.KeyPrefix) != 16 {
				t.Errorf("principal = %+v", p)
			}
			if p.Claims["subject"] != "CN=cn-agent,O=corp" || p.Claims["issuer"] != "CN=agents CA" {
				t.Errorf("claims = %v", p.Claims)
			}
			sans, _ := p.Claims["sans"].(map[string]any)
			if fmt.Sprint(sans["dns"]) != "[dns-agent.corp.example alt.corp.example]" || fmt.Sprint(sans["email"]) != "[email-agent@corp.example]" {
				t.Errorf("sans = %v", sans)
			}

			// A certificate without the name refuses with the reason.
			status, body, _, err = s.get(t, &bare)
			if err != nil || status != http.StatusUnauthorized || !strings.Contains(body, "has no "+tc.from) {
				t.Errorf("bare certificate: status %d, %q, %v", status, body, err)
			}
		})
	}
}

func TestMTLSHandshake(t *testing.T) {
	t.Parallel()
	ca, other := newTestCA(t, "agents CA"), newTestCA(t, "other CA")
	good := ca.client(t, func(c *x509.Certificate) { c.Subject.CommonName = "bot" })
	foreign := other.client(t, func(c *x509.Certificate) { c.Subject.CommonName = "bot" })
	serverOnly := ca.client(t, func(c *x509.Certificate) {
		c.Subject.CommonName = "bot"
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	for _, require := range []bool{false, true} {
		t.Run(fmt.Sprintf("require=%v", require), func(t *testing.T) {
			t.Parallel()
			s := startMTLS(t, ca, "common_name", require)
			if status, body, _, err := s.get(t, &good); err != nil || status != http.StatusOK {
				t.Errorf("good certificate: %d %q %v", status, body, err)
			}
			if _, _, _, err := s.get(t, &foreign); err == nil {
				t.Error("certificate from another CA passed the handshake")
			}
			if _, _, _, err := s.get(t, &serverOnly); err == nil {
				t.Error("certificate without client-auth usage passed the handshake")
			}
			status, body, _, err := s.get(t, nil)
			if require {
				if err == nil {
					t.Errorf("no certificate with require: %d %q", status, body)
				}
			} else if err != nil || status != http.StatusUnauthorized || !strings.Contains(body, ErrNoCredentials.Error()) {
				t.Errorf("no certificate: %d %q %v", status, body, err)
			}
		})
	}
}

func TestMTLSReloadsServerCert(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "agents CA")
	s := startMTLS(t, ca, "common_name", false)
	s.m.mu.Lock()
	s.m.checkEvery = 0
	s.m.mu.Unlock()
	cert := ca.client(t, func(c *x509.Certificate) { c.Subject.CommonName = "bot" })
	if _, _, cn, err := s.get(t, &cert); err != nil || cn != "gatehouse-1" {
		t.Fatalf("server cert %q, %v", cn, err)
	}
	s.writeServerCert(t, "gatehouse-2")
	// Defeat coarse file timestamps.
	later := time.Now().Add(time.Minute)
	for _, f := range []string{"server.pem", "server.key"} {
		if err := os.Chtimes(filepath.Join(s.dir, f), later, later); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, cn, err := s.get(t, &cert); err != nil || cn != "gatehouse-2" {
		t.Errorf("after renewal: server cert %q, %v", cn, err)
	}
	// A broken pair keeps the previous certificate.
	writeFile(t, filepath.Join(s.dir, "server.key"), []byte("garbage"))
	if _, _, cn, err := s.get(t, &cert); err != nil || cn != "gatehouse-2" {
		t.Errorf("after a bad key: server cert %q, %v", cn, err)
	}
}

func TestMTLSNoTLS(t *testing.T) {
	t.Parallel()
	m := &MTLS{agentFrom: "common_name"}
	r, _ := http.NewRequestWithContext(context.Background(), "GET", "http://x/mcp/ops", nil)
	if _, err := m.Authenticate(r.Context(), r); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("plain HTTP: %v", err)
	}
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}
	if _, err := m.Authenticate(r.Context(), r); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("unverified certificate: %v", err)
	}
}

func TestNewMTLSErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	c, k := ca.issue(t, func(c *x509.Certificate) { c.Subject.CommonName = "s" })
	writeFile(t, filepath.Join(dir, "s.pem"), c)
	writeFile(t, filepath.Join(dir, "s.key"), k)
	writeFile(t, filepath.Join(dir, "ca.pem"), ca.pem)
	writeFile(t, filepath.Join(dir, "empty.pem"), []byte("nothing here"))
	for _, tc := range []struct {
		name string
		cfg  config.MTLS
		want string
	}{
		{"missing CA", config.MTLS{CertFile: "s.pem", KeyFile: "s.key", ClientCAFile: "nope.pem"}, "nope.pem"},
		{"CA without certificates", config.MTLS{CertFile: "s.pem", KeyFile: "s.key", ClientCAFile: "empty.pem"}, "empty.pem holds no PEM certificates"},
		{"missing cert", config.MTLS{CertFile: "gone.pem", KeyFile: "s.key", ClientCAFile: "ca.pem"}, "gone.pem"},
		{"key is not a key", config.MTLS{CertFile: "s.pem", KeyFile: "ca.pem", ClientCAFile: "ca.pem"}, "ca.pem"},
		{"bad agent_from", config.MTLS{CertFile: "s.pem", KeyFile: "s.key", ClientCAFile: "ca.pem", AgentFrom: "serial"}, "agent_from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			for _, f := range []*string{&cfg.CertFile, &cfg.KeyFile, &cfg.ClientCAFile} {
				*f = filepath.Join(dir, *f)
			}
			_, err := NewMTLS(&cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	m, err := NewMTLS(&config.MTLS{CertFile: filepath.Join(dir, "s.pem"), KeyFile: filepath.Join(dir, "s.key"), ClientCAFile: filepath.Join(dir, "ca.pem"), Require: true})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := m.TLSConfig(); cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS config = %+v", cfg)
	}
}
