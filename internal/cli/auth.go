package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/graph"
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

// adminAuthenticator signs in to the admin API with the JWTs of the OIDC
// providers marked admin: true; nil when there are none.
func (a *authenticators) adminAuthenticator(c config.Auth) func(r *http.Request) (*graph.Principal, error) {
	enabled := map[string]bool{}
	for _, p := range c.OIDC {
		if p.Admin {
			enabled["oidc:"+p.Name] = true
		}
	}
	if a.oidc == nil || len(enabled) == 0 {
		return nil
	}
	return func(r *http.Request) (*graph.Principal, error) {
		p, err := a.oidc.Authenticate(r.Context(), r)
		if errors.Is(err, identity.ErrNoCredentials) {
			return nil, nil // not a JWT: maybe an admin token
		}
		if err != nil {
			return nil, err
		}
		if !enabled[p.Method] {
			return nil, fmt.Errorf("%w: identity provider %q is not enabled for the admin API (auth.oidc[].admin)",
				identity.ErrInvalidCredentials, strings.TrimPrefix(p.Method, "oidc:"))
		}
		var roles []string
		for _, role := range p.Roles {
			if slices.Contains(schematype.AdminRoles, role) && !slices.Contains(roles, role) {
				roles = append(roles, role)
			}
		}
		if len(roles) == 0 {
			return nil, fmt.Errorf("%w: the token carries no admin role (admin, approver, auditor or viewer)", identity.ErrInvalidCredentials)
		}
		groups := slices.Clone(p.Roles)
		if p.Team != "" {
			groups = append(groups, p.Team)
		}
		return &graph.Principal{Name: p.Method + ":" + p.Agent, Roles: roles, Groups: groups, Team: p.Team}, nil
	}
}
