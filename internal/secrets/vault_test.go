package secrets

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestReason checks the causes that reach logs and Ready: short, without
// the URL the Vault client wraps every transport error in.
func TestReason(t *testing.T) {
	// As the Vault client (through go-retryablehttp) returns a transport
	// error.
	wrap := func(err error) error {
		u := "https://vault.internal:8200/v1/auth/token/lookup-self"
		return fmt.Errorf("GET %s giving up after 1 attempt(s): %w", u, &url.Error{Op: "Get", URL: u, Err: err})
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&vault.ResponseError{StatusCode: 400, Errors: []string{"Client sent an HTTP request to an HTTPS server.\n"}},
			"vault answered 400: Client sent an HTTP request to an HTTPS server."},
		{&vault.ResponseError{StatusCode: 403, Errors: []string{"permission denied", "invalid token"}},
			"vault answered 403: permission denied; invalid token"},
		{&vault.ResponseError{StatusCode: 503}, "vault answered 503"},
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), "connection refused"},
		{wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			"x509: certificate signed by unknown authority (configure the CA bundle that verifies Vault's certificate)"},
		{wrap(&tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"localhost"}}, Host: "vault.internal"}}),
			"tls: failed to verify certificate: x509: certificate is valid for localhost, not vault.internal"},
		{wrap(errors.New("http: server gave HTTP response to HTTPS client")), "http: server gave HTTP response to HTTPS client"},
	} {
		if got := reason(tc.err); got != tc.want {
			t.Errorf("reason(%v)\n got %q\nwant %q", tc.err, got, tc.want)
		}
	}
}
