package identity

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// certCheckEvery bounds how often the server certificate files are
// stat'ed for changes.
const certCheckEvery = time.Second

// MTLS maps verified client certificates to agents. It also provides the
// listener's TLS configuration, so that the certificates it maps are the
// ones the handshake verified against the client CAs.
type MTLS struct {
	agentFrom string
	require   bool
	pool      *x509.CertPool
	certFile  string
	keyFile   string
	log       *slog.Logger

	mu         sync.Mutex
	cert       *tls.Certificate
	certStamp  [2]fileStamp // cert and key file when cert was loaded
	lastCheck  time.Time
	checkEvery time.Duration
}

type fileStamp struct {
	mod  time.Time
	size int64
}

var _ Authenticator = (*MTLS)(nil)

// NewMTLS loads the server certificate and key and the client CA pool.
// Errors name the file at fault.
func NewMTLS(cfg *config.MTLS) (*MTLS, error) {
	if cfg == nil {
		return nil, errors.New("mtls: no configuration")
	}
	m := &MTLS{
		agentFrom:  cfg.AgentFrom,
		require:    cfg.Require,
		certFile:   cfg.CertFile,
		keyFile:    cfg.KeyFile,
		log:        slog.Default(),
		checkEvery: certCheckEvery,
	}
	switch m.agentFrom {
	case "":
		m.agentFrom = "common_name"
	case "common_name", "dns_san", "uri_san", "email_san":
	default:
		return nil, fmt.Errorf("mtls: agent_from must be common_name, dns_san, uri_san or email_san, got %q", cfg.AgentFrom)
	}
	pem, err := os.ReadFile(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: reading client CA file: %w", err)
	}
	m.pool = x509.NewCertPool()
	if !m.pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("mtls: client CA file %s holds no PEM certificates", cfg.ClientCAFile)
	}
	cert, stamp, err := loadKeyPair(m.certFile, m.keyFile)
	if err != nil {
		return nil, err
	}
	m.cert, m.certStamp, m.lastCheck = cert, stamp, time.Now()
	return m, nil
}

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, [2]fileStamp, error) {
	var stamp [2]fileStamp
	for i, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, stamp, fmt.Errorf("mtls: %w", err)
		}
		stamp[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("mtls: loading server certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &cert, stamp, nil
}

// TLSConfig returns the listener's TLS configuration: client certificates
// verified against the client CAs, required when so configured (otherwise
// requests without one may authenticate with a bearer token), TLS 1.2 or
// newer. The server certificate is re-read when its files change, so a
// renewed certificate is served without a restart.
func (m *MTLS) TLSConfig() *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if m.require {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     auth,
		ClientCAs:      m.pool,
		GetCertificate: m.getCertificate,
	}
}

func (m *MTLS) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := time.Now(); now.Sub(m.lastCheck) >= m.checkEvery {
		m.lastCheck = now
		if m.changed() {
			cert, stamp, err := loadKeyPair(m.certFile, m.keyFile)
			if err != nil {
				// Half-written files during a renewal look like this;
				// the next check picks up the finished pair.
				m.log.Warn("mtls: server certificate reload failed; serving the previous one", "error", err.Error())
			} else {
				m.cert, m.certStamp = cert, stamp
				m.log.Info("mtls: server certificate reloaded", "file", m.certFile)
			}
		}
	}
	return m.cert, nil
}

func (m *MTLS) changed() bool {
	for i, f := range []string{m.certFile, m.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return false
		}
		if !fi.ModTime().Equal(m.certStamp[i].mod) || fi.Size() != m.certStamp[i].size {
			return true
		}
	}
	return false
}

// Authenticate implements [Authenticator]: the leaf of the first verified
// chain names the agent. A connection without a client certificate (or a
// request that did not come over TLS) gives [ErrNoCredentials].
// KeyPrefix is the start of the certificate's SHA-256 fingerprint.
func (m *MTLS) Authenticate(_ context.Context, r *http.Request) (*Principal, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, ErrNoCredentials
	}
	if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, fmt.Errorf("%w: mtls: client certificate was not verified", ErrInvalidCredentials)
	}
	c := r.TLS.VerifiedChains[0][0]
	var agent string
	switch m.agentFrom {
	case "common_name":
		agent = c.Subject.CommonName
	case "dns_san":
		if len(c.DNSNames) > 0 {
			agent = c.DNSNames[0]
		}
	case "uri_san":
		if len(c.URIs) > 0 {
			agent = c.URIs[0].String()
		}
	case "email_san":
		if len(c.EmailAddresses) > 0 {
			agent = c.EmailAddresses[0]
		}
	}
	if agent == "" {
		return nil, fmt.Errorf("%w: mtls: client certificate %q has no %s to name the agent", ErrInvalidCredentials, c.Subject.String(), m.agentFrom)
	}
	sum := sha256.Sum256(c.Raw)
	return &Principal{
		Agent:     agent,
		Method:    "mtls",
		KeyPrefix: hex.EncodeToString(sum[:])[:16],
		Claims:    certClaims(c),
	}, nil
}

// certClaims exposes a certificate to policies the way JSON claims look:
// strings, []any and map[string]any.
func certClaims(c *x509.Certificate) map[string]any {
	strs := func(ss []string) []any {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
	uris := make([]string, len(c.URIs))
	for i, u := range c.URIs {
		uris[i] = u.String()
	}
	ips := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		ips[i] = ip.String()
	}
	return map[string]any{
		"subject": c.Subject.String(),
		"issuer":  c.Issuer.String(),
		"serial":  c.SerialNumber.String(),
		"sans": map[string]any{
			"dns":   strs(c.DNSNames),
			"uri":   strs(uris),
			"email": strs(c.EmailAddresses),
			"ip":    strs(ips),
		},
	}
}
