package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// authenticators are the process's agent authenticators besides API keys
// (which live in the config store): OIDC JWTs and client certificates.
type authenticators struct {
	list []identity.Authenticator
	oidc *identity.OIDC
	mtls *identity.MTLS
}

func newAuthenticators(ctx context.Context, log *slog.Logger, c config.Auth) (*authenticators, error) {
	a := &authenticators{}
	if len(c.OIDC) > 0 {
		o, err := identity.NewOIDC(ctx, c.OIDC, &identity.OIDCOptions{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("auth.oidc: %w", err)
		}
		a.oidc = o
		a.list = append(a.list, o)
	}
	if c.MTLS != nil {
		m, err := identity.NewMTLS(c.MTLS)
		if err != nil {
			return nil, fmt.Errorf("auth.mtls: %w", err)
		}
		a.mtls = m
		a.list = append(a.list, m)
	}
	return a, nil
}

func (a *authenticators) close() {
	if a.oidc != nil {
		a.oidc.Close()
	}
}

// resource is the gateway's public base URL for MCP authorization
// discovery; "" when no identity provider is configured (API keys only).
func (a *authenticators) resource(doc *config.Document) string {
	if a.oidc == nil {
		return ""
	}
	if doc.Auth.Resource != "" {
		return doc.Auth.Resource
	}
	scheme := "http"
	if a.mtls != nil {
		scheme = "https"
	}
	return scheme + "://" + doc.Listen
}

// metadataHandler serves the protected resource metadata (RFC 9728) that
// points spec-following MCP clients to the identity providers; nil without
// OIDC.
func (a *authenticators) metadataHandler(doc *config.Document) http.Handler {
	if a.oidc == nil {
		return nil
	}
	issuers := make([]string, len(doc.Auth.OIDC))
	for i, o := range doc.Auth.OIDC {
		issuers[i] = o.Issuer
	}
	return identity.ResourceMetadataHandler(a.resource(doc), issuers)
}
