package vaulttest

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/api"
)

// Mount paths the helpers use.
const (
	// KVMount is the dev server's KV version 2 secrets engine.
	KVMount = "secret"
	// AppRoleMount is where [Server.AppRole] enables AppRole auth.
	AppRoleMount = "approle"
	// JWTMount is where [Server.JWTAuth] enables JWT auth.
	JWTMount = "jwt"
	// DatabaseMount is where [Server.Database] enables the database
	// secrets engine.
	DatabaseMount = "database"
	// DatabaseConnection names the PostgreSQL connection [Server.Database]
	// configures.
	DatabaseConnection = "pg"
)

// PutKV writes data as a new version of the secret at path on the KV v2
// engine at mountPath (the dev server's is [KVMount], "secret") and
// returns the version number.
func (s *Server) PutKV(t testing.TB, mountPath, path string, data map[string]any) (version int) {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	sec, err := s.client.KVv2(mountPath).Put(ctx, path, data)
	if err != nil {
		t.Fatalf("vaulttest: writing kv %s/%s: %v", mountPath, path, err)
	}
	if sec.VersionMetadata == nil {
		t.Fatalf("vaulttest: writing kv %s/%s: no version in the response", mountPath, path)
	}
	return sec.VersionMetadata.Version
}

// WritePolicy creates or replaces the ACL policy name with the given HCL.
func (s *Server) WritePolicy(t testing.TB, name, hcl string) {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	if err := s.client.Sys().PutPolicyWithContext(ctx, name, hcl); err != nil {
		t.Fatalf("vaulttest: writing policy %s: %v", name, err)
	}
}

// Token creates a child token of the root token with the given policies
// (plus "default") and TTL and returns it. It has no explicit max TTL, so a
// renewable token can be renewed up to the system max TTL (32 days).
func (s *Server) Token(t testing.TB, policies []string, ttl time.Duration, renewable bool) string {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	sec, err := s.client.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies:    policies,
		TTL:         ttl.String(),
		Renewable:   &renewable,
		DisplayName: "vaulttest",
	})
	if err != nil {
		t.Fatalf("vaulttest: creating token: %v", err)
	}
	if sec.Auth == nil || sec.Auth.ClientToken == "" {
		t.Fatal("vaulttest: creating token: no token in the response")
	}
	return sec.Auth.ClientToken
}

// AppRole enables AppRole auth at [AppRoleMount] (once), creates or
// replaces role with the given token policies and token TTL, and returns
// the role's role_id and a new secret_id. Log in by writing both to
// auth/approle/login.
func (s *Server) AppRole(t testing.TB, role string, policies []string, tokenTTL time.Duration) (roleID, secretID string) {
	t.Helper()
	s.enableAuth(t, AppRoleMount, "approle")
	base := "auth/" + AppRoleMount + "/role/" + url.PathEscape(role)
	s.write(t, base, map[string]any{
		"token_policies": policies,
		"token_ttl":      seconds(tokenTTL),
	})
	roleID, _ = s.read(t, base+"/role-id")["role_id"].(string)
	secretID, _ = s.write(t, base+"/secret-id", nil).Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		t.Fatalf("vaulttest: approle role %s: empty role_id or secret_id", role)
	}
	return roleID, secretID
}

// JWTAuth enables JWT auth at [JWTMount] (once), configures it to verify
// tokens with the public key pubKeyPEM (PKIX "PUBLIC KEY" or certificate
// PEM; this replaces any key set before), and creates or replaces role, of
// type jwt, that accepts tokens whose aud contains boundAudience, names
// the Vault entity alias from claim userClaim, and issues tokens with the
// given policies and TTL. Log in by writing {role, jwt} to auth/jwt/login.
func (s *Server) JWTAuth(t testing.TB, role, pubKeyPEM, boundAudience, userClaim string, policies []string, tokenTTL time.Duration) {
	t.Helper()
	s.enableAuth(t, JWTMount, "jwt")
	s.write(t, "auth/"+JWTMount+"/config", map[string]any{
		"jwt_validation_pubkeys": []string{pubKeyPEM},
	})
	s.write(t, "auth/"+JWTMount+"/role/"+url.PathEscape(role), map[string]any{
		"role_type":       "jwt",
		"bound_audiences": []string{boundAudience},
		"user_claim":      userClaim,
		"token_policies":  policies,
		"token_ttl":       seconds(tokenTTL),
	})
}

// PublicKeyPEM returns the one key of the JSON Web Key Set jwks (such as
// idptest's IdP.JWKS) as a PKIX "PUBLIC KEY" PEM block, the form
// [Server.JWTAuth] takes. A set without exactly one key fails the test.
func PublicKeyPEM(t testing.TB, jwks []byte) string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("vaulttest: jwks: %d keys, %v; want one key", len(set.Keys), err)
	}
	der, err := x509.MarshalPKIXPublicKey(set.Keys[0].Key)
	if err != nil {
		t.Fatalf("vaulttest: jwks key: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// Database enables the database secrets engine at [DatabaseMount] (once),
// configures its PostgreSQL connection [DatabaseConnection] from
// postgresURL, and creates or replaces role.
//
// postgresURL must name a superuser (or a user with CREATEROLE that can
// grant on the database's public schema); its user and password are
// passed as Vault's username and password fields and the connection URL
// uses {{username}}/{{password}} templating, so Vault never shows them in
// its config. Vault checks the connection when it is configured.
//
// Credentials read from database/creds/ROLE are a new LOGIN role, valid
// until the lease expires, that may SELECT every table in schema public
// (existing when the credentials are issued). Their lease has TTL
// defaultTTL and max TTL 10 × defaultTTL. When the test ends, the leases
// of role are revoked, which drops those PostgreSQL roles.
func (s *Server) Database(t testing.TB, postgresURL, role string, defaultTTL time.Duration) {
	t.Helper()
	u, err := url.Parse(postgresURL)
	if err != nil || u.Host == "" {
		t.Fatalf("vaulttest: database: postgres URL %q is not postgres://USER[:PASSWORD]@HOST:PORT/DB", postgresURL)
	}
	if u.User == nil || u.User.Username() == "" {
		t.Fatalf("vaulttest: database: postgres URL %s has no user", u.Redacted())
	}
	username := u.User.Username()
	password, _ := u.User.Password()
	// Vault substitutes {{username}} and {{password}} itself (escaping
	// them); url.URL would escape the braces, so assemble the URL by hand.
	connURL := u.Scheme + "://{{username}}:{{password}}@" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		connURL += "?" + u.RawQuery
	}

	s.enableSecrets(t, DatabaseMount, "database")
	t.Cleanup(func() { s.revokeDatabaseLeases(t, role) })
	s.write(t, DatabaseMount+"/config/"+DatabaseConnection, map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    connURL,
		"username":          username,
		"password":          password,
		"verify_connection": true,
		"allowed_roles":     "*",
	})
	s.write(t, DatabaseMount+"/roles/"+url.PathEscape(role), map[string]any{
		"db_name": DatabaseConnection,
		"creation_statements": []string{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			`GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`,
		},
		"default_ttl": seconds(defaultTTL),
		"max_ttl":     seconds(10 * defaultTTL),
	})
}

// revokeDatabaseLeases revokes every lease of role's credentials, so the
// PostgreSQL roles Vault created are dropped before Vault stops (Vault's
// in-memory leases die with it, the PostgreSQL roles would not). It runs
// in a cleanup, when the test's context is already done.
func (s *Server) revokeDatabaseLeases(t testing.TB, role string) {
	select {
	case <-s.exited:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	prefix := DatabaseMount + "/creds/" + url.PathEscape(role)
	if err := s.client.Sys().RevokePrefixWithContext(ctx, prefix); err != nil {
		t.Errorf("vaulttest: revoking the leases under %s: %v", prefix, err)
	}
}

// enableAuth enables the auth method of type kind at path unless something
// is mounted there already.
func (s *Server) enableAuth(t testing.TB, path, kind string) {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	mounts, err := s.client.Sys().ListAuthWithContext(ctx)
	if err != nil {
		t.Fatalf("vaulttest: listing auth methods: %v", err)
	}
	if _, ok := mounts[path+"/"]; ok {
		return
	}
	if err := s.client.Sys().EnableAuthWithOptionsWithContext(ctx, path, &api.EnableAuthOptions{Type: kind}); err != nil {
		t.Fatalf("vaulttest: enabling %s auth at %s: %v", kind, path, err)
	}
}

// enableSecrets enables the secrets engine of type kind at path unless
// something is mounted there already.
func (s *Server) enableSecrets(t testing.TB, path, kind string) {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	mounts, err := s.client.Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatalf("vaulttest: listing secrets engines: %v", err)
	}
	if _, ok := mounts[path+"/"]; ok {
		return
	}
	if err := s.client.Sys().MountWithContext(ctx, path, &api.MountInput{Type: kind}); err != nil {
		t.Fatalf("vaulttest: enabling %s secrets engine at %s: %v", kind, path, err)
	}
}

func (s *Server) write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	sec, err := s.client.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		t.Fatalf("vaulttest: writing %s: %v", path, err)
	}
	if sec == nil {
		sec = &api.Secret{}
	}
	return sec
}

func (s *Server) read(t testing.TB, path string) map[string]any {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	sec, err := s.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		t.Fatalf("vaulttest: reading %s: %v", path, err)
	}
	if sec == nil || sec.Data == nil {
		t.Fatalf("vaulttest: reading %s: not found", path)
	}
	return sec.Data
}

func seconds(d time.Duration) int { return int(d.Round(time.Second) / time.Second) }
