package secrets_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity/idptest"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
	"github.com/gatehouse-dev/gatehouse/internal/secrets/vaulttest"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

const readerPolicy = `
path "secret/data/gh*" { capabilities = ["read"] }
path "secret/data/agents/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`

// syncBuf is a log sink safe for the client's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newClient(t *testing.T, cfg secrets.Config) (*secrets.Client, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	c, err := secrets.NewClient(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	c.Start(t.Context())
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, logs)
	}
	return c, logs
}

func writeFile(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKV(t *testing.T) {
	v := vaulttest.Start(t)
	v.WritePolicy(t, "reader", readerPolicy)
	v.PutKV(t, "secret", "gh", map[string]any{"token": "tok-v1"})
	c, logs := newClient(t, secrets.Config{Address: v.Addr(), TokenFile: writeFile(t, v.Token(t, []string{"reader"}, time.Hour, true)),
		KVCacheTTL: 500 * time.Millisecond})
	ctx := t.Context()

	read := func(path string, version int) string {
		t.Helper()
		f, err := c.ReadKV(ctx, path, version)
		if err != nil {
			t.Fatalf("ReadKV(%s): %v", path, err)
		}
		return f["token"].Reveal()
	}
	if got := read("secret/gh", 0); got != "tok-v1" {
		t.Fatalf("read %q", got)
	}

	t.Run("cache TTL", func(t *testing.T) {
		v.PutKV(t, "secret", "gh", map[string]any{"token": "tok-v2"})
		if got := read("secret/gh", 0); got != "tok-v1" {
			t.Errorf("within the TTL: %q, want the cached tok-v1", got)
		}
		time.Sleep(600 * time.Millisecond)
		if got := read("secret/gh", 0); got != "tok-v2" {
			t.Errorf("after the TTL: %q, want tok-v2", got)
		}
		if got := read("/secret/gh/", 1); got != "tok-v1" {
			t.Errorf("version 1: %q", got)
		}
	})

	t.Run("cache off", func(t *testing.T) {
		c0, _ := newClient(t, secrets.Config{Address: v.Addr(), Token: v.RootToken()})
		v.PutKV(t, "secret", "gh-nocache", map[string]any{"token": "a"})
		if f, _ := c0.ReadKV(ctx, "secret/gh-nocache", 0); f["token"].Reveal() != "a" {
			t.Fatal("first read")
		}
		v.PutKV(t, "secret", "gh-nocache", map[string]any{"token": "b"})
		if f, _ := c0.ReadKV(ctx, "secret/gh-nocache", 0); f["token"].Reveal() != "b" {
			t.Error("TTL 0 served a cached value")
		}
	})

	t.Run("missing and forbidden", func(t *testing.T) {
		if _, err := c.ReadKV(ctx, "secret/gh-missing", 0); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("missing: %v", err)
		}
		v.PutKV(t, "secret", "other", map[string]any{"token": "not-yours"})
		_, err := c.ReadKV(ctx, "secret/other", 0)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("forbidden: %v", err)
		}
		if err := c.Ready(); err != nil {
			t.Errorf("a refused path made the client unready: %v", err)
		}
	})

	t.Run("vault down and back", func(t *testing.T) {
		v.PutKV(t, "secret", "gh-outage", map[string]any{"token": "x"})
		v.Down()
		_, err := c.ReadKV(ctx, "secret/gh-outage", 0)
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("read while down: %v", err)
		}
		if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("Ready while down: %v", err)
		}
		v.Up()
		if got := read("secret/gh-outage", 0); got != "x" {
			t.Errorf("after recovery: %q", got)
		}
		if err := c.Ready(); err != nil {
			t.Errorf("Ready after recovery: %v", err)
		}
	})

	for _, s := range []string{"tok-v1", "tok-v2", "not-yours"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a secret value is in the client's logs")
		}
	}
}

func TestTokenRenewal(t *testing.T) {
	v := vaulttest.Start(t)
	v.WritePolicy(t, "reader", readerPolicy)
	v.PutKV(t, "secret", "gh", map[string]any{"token": "t"})
	// A 3 s token: without renewal it is gone long before the last read.
	tok := v.Token(t, []string{"reader"}, 3*time.Second, true)
	c, logs := newClient(t, secrets.Config{Address: v.Addr(), Token: tok})
	for range 4 {
		time.Sleep(2 * time.Second)
		if _, err := c.ReadKV(t.Context(), "secret/gh", 0); err != nil {
			t.Fatalf("read after renewals: %v\nlogs:\n%s", err, logs)
		}
	}
	if !strings.Contains(logs.String(), "vault token renewed") {
		t.Errorf("no renewal logged:\n%s", logs)
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the token is in the logs")
	}
}

func TestAppRoleRelogin(t *testing.T) {
	v := vaulttest.Start(t)
	v.WritePolicy(t, "reader", readerPolicy)
	v.PutKV(t, "secret", "gh", map[string]any{"token": "t"})
	roleID, secretID := v.AppRole(t, "gatehouse", []string{"reader"}, 2*time.Second)
	// Tokens of this role cannot outlive 3 s: the client must log in again.
	if _, err := v.Client(t).Logical().Write("auth/approle/role/gatehouse", map[string]any{
		"token_policies": []string{"reader"}, "token_ttl": 2, "token_max_ttl": 3, "secret_id_num_uses": 0,
	}); err != nil {
		t.Fatal(err)
	}
	c, logs := newClient(t, secrets.Config{Address: v.Addr(), Auth: secrets.AuthAppRole, RoleID: roleID, SecretIDFile: writeFile(t, secretID)})
	for range 4 {
		time.Sleep(2 * time.Second)
		if _, err := c.ReadKV(t.Context(), "secret/gh", 0); err != nil {
			t.Fatalf("read: %v\nlogs:\n%s", err, logs)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"vault logged in"`); n < 2 {
		t.Errorf("logged in %d times over 8 s of 3 s tokens:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), secretID) {
		t.Error("the secret ID is in the logs")
	}
}

func TestBadLogin(t *testing.T) {
	v := vaulttest.Start(t)
	logs := &syncBuf{}
	c, err := secrets.NewClient(secrets.Config{Address: v.Addr(), Token: "not-a-token"}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.Start(t.Context())
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err = c.WaitReady(ctx)
	if err == nil || !strings.Contains(err.Error(), "vault login (token)") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("WaitReady = %v", err)
	}
	if strings.Contains(logs.String(), "not-a-token") {
		t.Error("the token is in the logs")
	}
	for _, cfg := range []secrets.Config{
		{},
		{Address: "vault:8200", Token: "x"},
		{Address: v.Addr()},
		{Address: v.Addr(), Auth: "approle"},
		{Address: v.Addr(), Auth: "ldap"},
		{Address: v.Addr(), Token: "x", CACert: "/nonexistent/ca.pem"},
	} {
		if _, err := secrets.NewClient(cfg, slog.Default()); err == nil {
			t.Errorf("NewClient(%+v) accepted", cfg)
		}
	}
}

func TestResolvePerPrincipal(t *testing.T) {
	v := vaulttest.Start(t)
	v.WritePolicy(t, "reader", readerPolicy)
	v.PutKV(t, "secret", "agents/a1/github", map[string]any{"token": "a1-token"})
	v.PutKV(t, "secret", "agents/a2/github", map[string]any{"token": "a2-token"})
	c, _ := newClient(t, secrets.Config{Address: v.Addr(), Token: v.Token(t, []string{"reader"}, time.Hour, true), KVCacheTTL: time.Minute})
	bs, err := secrets.Compile([]config.SecretBinding{{Name: "github", Upstream: "gh", Source: "kv", Path: "secret/agents/{{.agent}}/github",
		Key: "token", Injection: "header", Target: "Authorization", Template: "Bearer {{.Value}}", PerPrincipal: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, agent := range []string{"a1", "a2"} {
		in, err := c.Resolve(t.Context(), bs["gh"], secrets.Request{Who: secrets.Principal{Agent: agent}})
		if err != nil {
			t.Fatal(err)
		}
		if got := in.Headers[0].Value.Reveal(); got != "Bearer "+agent+"-token" {
			t.Errorf("%s got %q", agent, got)
		}
	}
	_, err = c.Resolve(t.Context(), bs["gh"], secrets.Request{Who: secrets.Principal{Agent: "a3"}})
	var se *secrets.Error
	if !errors.As(err, &se) || se.Binding != "github" || se.Path != "secret/agents/a3/github" || !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("agent without a secret: %v", err)
	}
	// The gateway's own requests (no agent) never get a per-principal secret.
	in, err := c.Resolve(t.Context(), bs["gh"], secrets.Request{})
	if err != nil || !in.Empty() {
		t.Errorf("gateway request: %v %v", in, err)
	}
}

// TestDatabaseLeases: dynamic PostgreSQL credentials from Vault's database
// secrets engine, leased per call (revoked on Release) and per session
// (shared until Close); revocation drops the PostgreSQL role.
func TestDatabaseLeases(t *testing.T) {
	pgURL := storetest.PostgresURL(t)
	v := vaulttest.Start(t)
	v.WritePolicy(t, "reader", readerPolicy)
	v.Database(t, pgURL, "readonly", time.Minute)
	c, logs := newClient(t, secrets.Config{Address: v.Addr(), Token: v.Token(t, []string{"reader"}, time.Hour, true)})
	admin, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	u, _ := url.Parse(pgURL)
	bs, err := secrets.Compile([]config.SecretBinding{{Name: "db", Upstream: "pg", Source: "dynamic", Path: "database", Role: "readonly",
		LeaseScope: "call", Injection: "env", Target: "DATABASE_URL",
		Template: "postgres://{{.username}}:{{.password}}@" + u.Host + u.Path}})
	if err != nil {
		t.Fatal(err)
	}
	roleExists := func(name string) bool {
		var n int
		if err := admin.QueryRow(`SELECT count(*) FROM pg_roles WHERE rolname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	userOf := func(in *secrets.Injection) string {
		dsn := strings.TrimPrefix(in.EnvList()[0], "DATABASE_URL=")
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var user string
		if err := db.QueryRow(`SELECT current_user`).Scan(&user); err != nil {
			t.Fatalf("log in with the leased credentials: %v", err)
		}
		return user
	}
	waitGone := func(user string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); roleExists(user); {
			if time.Now().After(deadline) {
				t.Fatalf("role %s still exists after revocation\nlogs:\n%s", user, logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("per call", func(t *testing.T) {
		in, err := c.Resolve(t.Context(), bs["pg"], secrets.Request{})
		if err != nil {
			t.Fatal(err)
		}
		user := userOf(in)
		if !roleExists(user) || len(in.LeaseIDs) != 1 || !in.CallLeased() {
			t.Fatalf("lease %v for %s", in.LeaseIDs, user)
		}
		in.Release()
		waitGone(user)
	})

	t.Run("per session", func(t *testing.T) {
		sb := *bs["pg"][0]
		sb.LeaseScope = "session"
		sess := secrets.NewSession()
		req := secrets.Request{Session: sess}
		in1, err := c.Resolve(t.Context(), []*secrets.Binding{&sb}, req)
		if err != nil {
			t.Fatal(err)
		}
		in2, err := c.Resolve(t.Context(), []*secrets.Binding{&sb}, req)
		if err != nil {
			t.Fatal(err)
		}
		if in1.LeaseIDs[0] != in2.LeaseIDs[0] || in1.CallLeased() {
			t.Fatalf("a session got two leases: %v %v", in1.LeaseIDs, in2.LeaseIDs)
		}
		user := userOf(in1)
		in1.Release()
		in2.Release()
		time.Sleep(300 * time.Millisecond)
		if !roleExists(user) {
			t.Fatal("releasing a request revoked the session's lease")
		}
		sess.Close()
		waitGone(user)
		if _, err := c.Resolve(t.Context(), []*secrets.Binding{&sb}, req); err == nil {
			t.Error("a closed session leased again")
		}
	})

	t.Run("vault down", func(t *testing.T) {
		v.Down()
		defer v.Up()
		_, err := c.Resolve(t.Context(), bs["pg"], secrets.Request{})
		var se *secrets.Error
		if !errors.As(err, &se) || se.Binding != "db" || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestTLS: a client that trusts Vault's CA (and checks a name in its
// certificate) logs in and reads; one that trusts only the system roots,
// checks a name the certificate lacks, or speaks plain HTTP to Vault's TLS
// listener fails to log in, and says why in a line.
func TestTLS(t *testing.T) {
	// The Vault API library reads these from the environment; the client
	// must not (TLS comes from its Config alone): with them set, nothing
	// below may change.
	t.Setenv("VAULT_SKIP_VERIFY", "1")
	t.Setenv("VAULT_TLS_SERVER_NAME", "vault.invalid")
	v := vaulttest.StartTLS(t)
	v.WritePolicy(t, "reader", readerPolicy)
	v.PutKV(t, "secret", "gh", map[string]any{"token": "over-tls"})
	tok := v.Token(t, []string{"reader"}, time.Hour, true)

	for _, name := range []string{"", "localhost"} {
		c, _ := newClient(t, secrets.Config{Address: v.Addr(), CACert: v.CACert(), TLSServerName: name, Token: tok})
		f, err := c.ReadKV(t.Context(), "secret/gh", 0)
		if err != nil || f["token"].Reveal() != "over-tls" {
			t.Fatalf("server name %q: read %v", name, err)
		}
	}

	for _, tc := range []struct {
		name string
		cfg  secrets.Config
		want string
	}{
		{"system roots", secrets.Config{Address: v.Addr(), Token: tok},
			"vault login (token): x509: certificate signed by unknown authority (configure the CA bundle that verifies Vault's certificate)"},
		{"wrong server name", secrets.Config{Address: v.Addr(), CACert: v.CACert(), TLSServerName: "vault.invalid", Token: tok},
			"vault login (token): tls: failed to verify certificate: x509: certificate is valid for localhost, "},
		{"plain HTTP", secrets.Config{Address: strings.Replace(v.Addr(), "https:", "http:", 1), Token: tok},
			"vault login (token): vault answered 400: Client sent an HTTP request to an HTTPS server."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuf{}
			c, err := secrets.NewClient(tc.cfg, slog.New(slog.NewJSONHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			c.Start(t.Context())
			defer c.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			if err := c.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WaitReady = %v\nwant it to contain %q", err, tc.want)
			}
			err = c.Ready()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "https://") || strings.Contains(err.Error(), "\n") {
				t.Errorf("Ready = %q\nwant one line starting %q, without a URL", err, tc.want)
			}
			if strings.Contains(logs.String(), tok) {
				t.Error("the token is in the logs")
			}
		})
	}
}

// TestJWTLogin logs in with a JWT from a test issuer, through the jwt
// method and through the kubernetes one, reads KV, and logs in again with
// the file's new JWT when its token reaches its max TTL.
func TestJWTLogin(t *testing.T) {
	v := vaulttest.Start(t)
	v.WritePolicy(t, "reader", readerPolicy)
	v.PutKV(t, "secret", "gh", map[string]any{"token": "via-jwt"})
	idp := idptest.New(t)
	v.JWTAuth(t, "gatehouse", vaulttest.PublicKeyPEM(t, idp.JWKS()), idp.Audience(), "sub", []string{"reader"}, time.Hour)
	jwtFile := func(jwt string) string { return writeFile(t, jwt+"\n") } // mounted tokens may end in a newline
	read := func(t *testing.T, c *secrets.Client) {
		t.Helper()
		f, err := c.ReadKV(t.Context(), "secret/gh", 0)
		if err != nil || f["token"].Reveal() != "via-jwt" {
			t.Fatalf("read: %v", err)
		}
	}

	for _, tc := range []struct {
		name string
		cfg  secrets.Config
	}{
		{"jwt", secrets.Config{Auth: secrets.AuthJWT}},
		// Vault's kubernetes method takes the same {role, jwt} body at
		// auth/<mount>/login as the jwt method; only Vault's check of
		// the JWT differs (a TokenReview against the cluster). So the
		// jwt method mounted at "jwt" runs our whole kubernetes path:
		// the method, the mount override and the login body.
		{"kubernetes", secrets.Config{Auth: secrets.AuthKubernetes, AuthMount: vaulttest.JWTMount}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jwt := idp.Token(map[string]any{"sub": "gatehouse-" + tc.name})
			cfg := tc.cfg
			cfg.Address, cfg.Role, cfg.JWTFile = v.Addr(), "gatehouse", jwtFile(jwt)
			c, logs := newClient(t, cfg)
			read(t, c)
			if !strings.Contains(logs.String(), `"msg":"vault logged in","auth":"`+tc.name+`"`) {
				t.Errorf("no login with %s logged:\n%s", tc.name, logs)
			}
			if strings.Contains(logs.String(), jwt) {
				t.Error("the JWT is in the logs")
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		jwt := idp.Token(map[string]any{"sub": "gatehouse"}, idptest.Expired())
		logs := &syncBuf{}
		c, err := secrets.NewClient(secrets.Config{Address: v.Addr(), Auth: secrets.AuthJWT, Role: "gatehouse", JWTFile: jwtFile(jwt)},
			slog.New(slog.NewJSONHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		c.Start(t.Context())
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		err = c.WaitReady(ctx)
		if err == nil || !strings.Contains(err.Error(), "vault login (jwt): vault answered 400: ") || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("WaitReady = %v", err)
		}
		if strings.Contains(logs.String(), jwt) || strings.Contains(err.Error(), jwt) {
			t.Error("the JWT is in the logs or the error")
		}
	})

	t.Run("relogin with a new JWT", func(t *testing.T) {
		// Tokens of this role cannot outlive 3 s, and its JWTs are
		// refused the moment they expire: the client must log in again,
		// and only the file's new JWT can serve.
		if _, err := v.Client(t).Logical().Write("auth/jwt/role/short", map[string]any{
			"role_type": "jwt", "bound_audiences": []string{idp.Audience()}, "user_claim": "sub",
			"token_policies": []string{"reader"}, "token_ttl": 2, "token_max_ttl": 3, "expiration_leeway": -1, "clock_skew_leeway": -1,
		}); err != nil {
			t.Fatal(err)
		}
		first := idp.Token(map[string]any{"sub": "gatehouse", "exp": time.Now().Add(5 * time.Second).Unix()})
		f := jwtFile(first)
		c, logs := newClient(t, secrets.Config{Address: v.Addr(), Auth: secrets.AuthJWT, Role: "short", JWTFile: f})
		// Replaced as a projected service account token is: a new file
		// renamed over the old.
		next := idp.Token(map[string]any{"sub": "gatehouse"})
		if err := os.Rename(jwtFile(next), f); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			time.Sleep(2 * time.Second)
			read(t, c)
		}
		if n := strings.Count(logs.String(), `"msg":"vault logged in"`); n < 2 {
			t.Errorf("logged in %d times over 8 s of 3 s tokens:\n%s", n, logs)
		}
		if strings.Contains(logs.String(), "vault login failed") {
			t.Errorf("a login failed:\n%s", logs)
		}
		// The first JWT has expired: the logins since used the new one.
		if _, err := v.Client(t).Logical().Write("auth/jwt/login", map[string]any{"role": "short", "jwt": first}); err == nil {
			t.Error("Vault still accepts the first JWT")
		}
		for _, jwt := range []string{first, next} {
			if strings.Contains(logs.String(), jwt) {
				t.Error("a JWT is in the logs")
			}
		}
	})
}
