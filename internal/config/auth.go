package config

import (
	"fmt"
	"net/url"
)

// Auth configures how agents authenticate besides API keys. It is a
// process setting (like listen and http): it comes from the file and flags,
// never from the config store.
type Auth struct {
	// OIDC lists identity providers whose JWT access tokens agents may
	// present as "Authorization: Bearer <jwt>".
	OIDC []OIDCProvider `yaml:"oidc"`
	// MTLS serves HTTPS and maps verified client certificates to agents.
	MTLS *MTLS `yaml:"mtls"`
	// Resource is this gateway's public base URL, as agents reach it (e.g.
	// https://gatehouse.corp.example). It names the protected resource in
	// /.well-known/oauth-protected-resource and WWW-Authenticate. Default
	// http(s)://LISTEN.
	Resource string `yaml:"resource"`
}

// OIDCProvider is one issuer of JWTs.
type OIDCProvider struct {
	Name string `yaml:"name"`
	// Issuer must equal the tokens' iss claim.
	Issuer string `yaml:"issuer"`
	// Audience lists accepted aud values; a token must carry one of them.
	Audience []string `yaml:"audience"`
	// JWKSURL is where signing keys are fetched (and refetched on an
	// unknown kid, at most once every 30 s). Default: jwks_uri of
	// ISSUER/.well-known/openid-configuration.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSFile is a local JWKS for air-gapped sites (re-read when it
	// changes). Give jwks_file or jwks_url, or neither (discovery).
	JWKSFile string `yaml:"jwks_file"`
	// Algorithms lists accepted signature algorithms. Default RS256,
	// RS384, RS512, PS256, ES256, ES384, EdDSA; never "none" or HMAC.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 60s.
	Leeway Duration `yaml:"leeway"`
	// Claims maps claims onto the principal.
	Claims ClaimMapping `yaml:"claims"`
	// Admin lets this provider's tokens also sign in to the admin API
	// (/graphql, gatehouse approvals): the token's roles that name admin
	// roles (admin, approver, auditor, viewer) become its admin roles, and
	// its roles and team are its approver groups. Off by default: an IdP
	// trusted for agents is not thereby trusted for admins.
	Admin bool `yaml:"admin"`
}

// ClaimMapping names the claims (dot paths into the token's claims) that
// give a principal's agent name, team and roles.
type ClaimMapping struct {
	// Agent is the claim holding the agent name. Default sub.
	Agent string `yaml:"agent"`
	// Team is the claim holding the team; empty means no team.
	Team string `yaml:"team"`
	// Roles is the claim holding a list (or space-separated string) of
	// roles; empty means no roles.
	Roles string `yaml:"roles"`
}

// MTLS configures TLS on the listener with client certificate
// verification.
type MTLS struct {
	// CertFile and KeyFile are the server's certificate and key (PEM).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the CAs (PEM) that sign agents' certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// AgentFrom says which part of a verified client certificate names the
	// agent: common_name (default), dns_san, uri_san or email_san.
	AgentFrom string `yaml:"agent_from"`
	// Require refuses connections without a client certificate. When false,
	// agents without one may still use API keys or JWTs.
	Require bool `yaml:"require"`
}

func (a *Auth) validate(v *validator) {
	seen := map[string]bool{}
	for i := range a.OIDC {
		o := &a.OIDC[i]
		p := fmt.Sprintf("auth.oidc[%d]", i)
		checkName(v, p+".name", o.Name, seen)
		if u, err := url.Parse(o.Issuer); o.Issuer == "" || err != nil || u.Scheme == "" || u.Host == "" {
			v.add(p+".issuer", "want the issuer URL, e.g. https://idp.example.com/realms/agents")
		}
		if len(o.Audience) == 0 {
			v.add(p+".audience", "required: the aud values this gateway accepts")
		}
		if o.JWKSURL != "" && o.JWKSFile != "" {
			v.add(p, "give jwks_url or jwks_file, not both")
		}
		for j, alg := range o.Algorithms {
			switch alg {
			case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
			default:
				v.add(fmt.Sprintf("%s.algorithms[%d]", p, j), "unsupported algorithm %q (asymmetric algorithms only)", alg)
			}
		}
		if o.Leeway < 0 {
			v.add(p+".leeway", "must not be negative")
		}
	}
	if m := a.MTLS; m != nil {
		if m.CertFile == "" || m.KeyFile == "" {
			v.add("auth.mtls", "cert_file and key_file are required")
		}
		if m.ClientCAFile == "" {
			v.add("auth.mtls.client_ca_file", "required")
		}
		switch m.AgentFrom {
		case "common_name", "dns_san", "uri_san", "email_san":
		default:
			v.add("auth.mtls.agent_from", "must be common_name, dns_san, uri_san or email_san, got %q", m.AgentFrom)
		}
	}
	if a.Resource != "" {
		if u, err := url.Parse(a.Resource); err != nil || u.Scheme == "" || u.Host == "" {
			v.add("auth.resource", "want the gateway's base URL, e.g. https://gatehouse.corp.example")
		}
	}
}

func (a *Auth) defaults() {
	for i := range a.OIDC {
		o := &a.OIDC[i]
		if len(o.Algorithms) == 0 {
			o.Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}
		}
		if o.Leeway == 0 {
			o.Leeway = Duration(60e9)
		}
		if o.Claims.Agent == "" {
			o.Claims.Agent = "sub"
		}
	}
	if a.MTLS != nil && a.MTLS.AgentFrom == "" {
		a.MTLS.AgentFrom = "common_name"
	}
}
