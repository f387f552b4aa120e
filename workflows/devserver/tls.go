package devserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/server/common/config"
)

// The server speaks mutual TLS on every port, frontend and internode, with
// certificates of a CA made for this data directory. Without it, any
// process on the host could reach the loopback ports and start workflows
// or decide approvals (the workflows trust their callers: see
// workflows/doc.go). The private keys are files only the gateway's user
// can read; a worker on this host presents the client certificate
// ([Server.TLSFiles]).

// ServerName is the name the server's certificate is issued for, which
// clients verify.
const ServerName = "gatehouse-temporal"

// TLSFiles are the PEM files of the server's CA and of a client
// certificate it accepts, for workers and the temporal CLI on this host
// (--tls-ca-path, --tls-cert-path, --tls-key-path, --tls-server-name
// gatehouse-temporal).
type TLSFiles struct {
	CA, Cert, Key string
}

type tlsFiles struct {
	TLSFiles
	serverCert, serverKey string
}

func tlsPaths(dir string) tlsFiles {
	return tlsFiles{
		TLSFiles:   TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem")},
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
	}
}

// ensureTLS makes the CA and certificates in dir unless usable ones are
// there: all present, and the server's valid for 30 days more.
func ensureTLS(dir string, now time.Time) (tlsFiles, error) {
	f := tlsPaths(dir)
	if usableTLS(f, now) {
		return f, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("creating %s: %w", dir, err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	ca := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "Gatehouse embedded Temporal CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return f, fmt.Errorf("creating the CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	issue := func(cn string, usage []x509.ExtKeyUsage, dns []string, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage, DNSNames: dns,
		}
		if dns != nil {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("creating the %s certificate: %w", cn, err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(keyPath, "EC PRIVATE KEY", kb); err != nil {
			return err
		}
		return writePEM(certPath, "CERTIFICATE", der)
	}
	// The server's certificate is its client certificate too, between
	// its own services (internode).
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if err := issue(ServerName, both, []string{ServerName, "localhost"}, f.serverCert, f.serverKey); err != nil {
		return f, err
	}
	if err := issue("gatehouse", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, f.Cert, f.Key); err != nil {
		return f, err
	}
	// The CA last: its presence says the set is whole.
	return f, writePEM(f.CA, "CERTIFICATE", caDER)
}

func usableTLS(f tlsFiles, now time.Time) bool {
	for _, p := range []string{f.Cert, f.Key, f.serverKey} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	b, err := os.ReadFile(f.serverCert)
	if err != nil {
		return false
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return false
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return false
	}
	_, err = c.Verify(x509.VerifyOptions{DNSName: ServerName, Roots: pool, CurrentTime: now.AddDate(0, 0, 30)})
	return err == nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// writePEM writes one PEM block to path, readable by its owner only,
// through a temporary file so that a crash leaves no half-written file.
func writePEM(path, typ string, der []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// serverTLS is the server's TLS configuration: mutual TLS everywhere.
func (f tlsFiles) serverTLS() config.RootTLS {
	server := config.ServerTLS{CertFile: f.serverCert, KeyFile: f.serverKey, ClientCAFiles: []string{f.CA}, RequireClientAuth: true}
	client := config.ClientTLS{ServerName: ServerName, RootCAFiles: []string{f.CA}}
	return config.RootTLS{
		Internode:    config.GroupTLS{Server: server, Client: client},
		Frontend:     config.GroupTLS{Server: server, Client: client},
		SystemWorker: config.WorkerTLS{CertFile: f.Cert, KeyFile: f.Key, Client: client},
	}
}

// ClientTLS returns the TLS configuration of a client of the server
// whose files are f: it verifies the server and presents the client
// certificate.
func ClientTLS(f TLSFiles) (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("reading the embedded Temporal's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the embedded Temporal's CA file holds no certificate: " + f.CA)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("loading the embedded Temporal's client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: ServerName, MinVersion: tls.VersionTLS12}, nil
}

// MakeTLS makes the certificates a server started on dataDir will use, if
// they are not there yet, and returns the files its clients need: for a
// client configured before the server starts.
func MakeTLS(dataDir string) (TLSFiles, error) {
	f, err := ensureTLS(filepath.Join(dataDir, "tls"), time.Now())
	return f.TLSFiles, err
}
