package vaulttest_test

import (
	"crypto/x509"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/gatehouse-dev/gatehouse/internal/identity/idptest"
	"github.com/gatehouse-dev/gatehouse/internal/secrets/vaulttest"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

const readApp = `path "secret/data/app/*" { capabilities = ["read"] }`

// TestServer starts one dev server and runs every helper against it: a dev
// server costs a few seconds of CPU, so the subtests share it.
func TestServer(t *testing.T) {
	s := vaulttest.Start(t)
	s.WritePolicy(t, "read-app", readApp)

	t.Run("KV", func(t *testing.T) {
		if v := s.PutKV(t, vaulttest.KVMount, "app/db", map[string]any{"password": "one"}); v != 1 {
			t.Fatalf("first version = %d, want 1", v)
		}
		if v := s.PutKV(t, vaulttest.KVMount, "app/db", map[string]any{"password": "two"}); v != 2 {
			t.Fatalf("second version = %d, want 2", v)
		}
		got := readPassword(t, frontClient(t, s, s.RootToken()), "app/db")
		if got != "two" {
			t.Fatalf("password through the front = %q, want %q", got, "two")
		}
	})

	t.Run("DownUp", func(t *testing.T) {
		s.PutKV(t, vaulttest.KVMount, "app/flaky", map[string]any{"password": "kept"})
		c := frontClient(t, s, s.RootToken())
		readPassword(t, c, "app/flaky") // leaves a keep-alive connection open
		live, err := net.Dial("tcp", strings.TrimPrefix(s.Addr(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()

		s.Down()
		_ = live.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := live.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read on a live connection after Down: err = %v, want EOF or reset", err)
		}
		_, err = c.KVv2(vaulttest.KVMount).Get(t.Context(), "app/flaky")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("read while down: err = %v, want connection refused", err)
		}
		// Vault itself is still up, and setup still works.
		s.PutKV(t, vaulttest.KVMount, "app/while-down", map[string]any{"password": "written"})

		s.Up()
		if got := readPassword(t, c, "app/flaky"); got != "kept" {
			t.Fatalf("after Up: password = %q, want %q", got, "kept")
		}
		if got := readPassword(t, c, "app/while-down"); got != "written" {
			t.Fatalf("after Up: password = %q, want %q", got, "written")
		}
		s.Up() // idempotent
		s.Down()
		s.Down()
		s.Up()
		readPassword(t, c, "app/flaky")
	})

	t.Run("Token", func(t *testing.T) {
		s.PutKV(t, vaulttest.KVMount, "app/token", map[string]any{"password": "p"})
		tok := s.Token(t, []string{"read-app"}, time.Minute, true)
		c := frontClient(t, s, tok)
		if got := readPassword(t, c, "app/token"); got != "p" {
			t.Fatalf("password = %q", got)
		}
		if _, err := c.KVv2(vaulttest.KVMount).Put(t.Context(), "app/token", map[string]any{"password": "x"}); err == nil {
			t.Fatal("a read-only token could write")
		}
		if ttl := tokenTTL(t, c); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("ttl = %v, want (0, 1m]", ttl)
		}
		sec, err := c.Auth().Token().RenewSelfWithContext(t.Context(), 3600)
		if err != nil {
			t.Fatalf("renew: %v", err)
		}
		if got := time.Duration(sec.Auth.LeaseDuration) * time.Second; got != time.Hour {
			t.Fatalf("renewed lease = %v, want 1h", got)
		}

		fixed := frontClient(t, s, s.Token(t, []string{"read-app"}, time.Minute, false))
		if _, err := fixed.Auth().Token().RenewSelfWithContext(t.Context(), 3600); err == nil {
			t.Fatal("a non-renewable token was renewed")
		}
	})

	t.Run("AppRole", func(t *testing.T) {
		s.PutKV(t, vaulttest.KVMount, "app/approle", map[string]any{"password": "ar"})
		roleID, secretID := s.AppRole(t, "agent", []string{"read-app"}, 5*time.Minute)
		_, again := s.AppRole(t, "agent", []string{"read-app"}, 5*time.Minute) // enables approle once only
		if again == secretID {
			t.Fatal("AppRole returned the same secret_id twice")
		}
		c := frontClient(t, s, "")
		sec, err := c.Logical().WriteWithContext(t.Context(), "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
		if err != nil {
			t.Fatalf("approle login: %v", err)
		}
		checkLogin(t, sec, 5*time.Minute)
		c.SetToken(sec.Auth.ClientToken)
		if got := readPassword(t, c, "app/approle"); got != "ar" {
			t.Fatalf("password = %q", got)
		}
		if _, err := c.Logical().WriteWithContext(t.Context(), "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": "wrong"}); err == nil {
			t.Fatal("approle login with a wrong secret_id succeeded")
		}
	})

	t.Run("JWT", func(t *testing.T) {
		idp := idptest.New(t)
		s.JWTAuth(t, "agent", vaulttest.PublicKeyPEM(t, idp.JWKS()), idp.Audience(), "sub", []string{"read-app"}, 5*time.Minute)
		c := frontClient(t, s, "")
		login := func(jwt string) (*api.Secret, error) {
			return c.Logical().WriteWithContext(t.Context(), "auth/jwt/login", map[string]any{"role": "agent", "jwt": jwt})
		}
		sec, err := login(idp.Token(map[string]any{"sub": "agent-1"}))
		if err != nil {
			t.Fatalf("jwt login: %v", err)
		}
		checkLogin(t, sec, 5*time.Minute)
		for name, tok := range map[string]string{
			"unknown key":    idp.Token(map[string]any{"sub": "agent-1"}, idptest.UnknownKey()),
			"wrong audience": idp.Token(map[string]any{"sub": "agent-1", "aud": "someone-else"}),
			"expired":        idp.Token(map[string]any{"sub": "agent-1"}, idptest.Expired()),
		} {
			if _, err := login(tok); err == nil {
				t.Errorf("jwt login with a token with %s succeeded", name)
			}
		}
	})

	t.Run("Database", func(t *testing.T) {
		dbURL := storetest.PostgresURL(t) // skips without GATEHOUSE_TEST_POSTGRES_URL
		admin, err := sql.Open("pgx", dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if _, err := admin.ExecContext(t.Context(), `CREATE TABLE items (name text); INSERT INTO items VALUES ('widget')`); err != nil {
			t.Fatal(err)
		}

		s.Database(t, dbURL, "reader", time.Minute)
		sec, err := s.Client(t).Logical().ReadWithContext(t.Context(), "database/creds/reader")
		if err != nil {
			t.Fatalf("reading database creds: %v", err)
		}
		if sec.LeaseID == "" || sec.LeaseDuration != 60 || !sec.Renewable {
			t.Fatalf("lease = %q, %ds, renewable %v; want a renewable 60s lease", sec.LeaseID, sec.LeaseDuration, sec.Renewable)
		}
		user, _ := sec.Data["username"].(string)
		pass, _ := sec.Data["password"].(string)

		u, _ := url.Parse(dbURL)
		u.User = url.UserPassword(user, pass)
		db, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var name string
		if err := db.QueryRowContext(t.Context(), "SELECT name FROM items").Scan(&name); err != nil || name != "widget" {
			t.Fatalf("select as %s: %q, %v", user, name, err)
		}
		if _, err := db.ExecContext(t.Context(), "INSERT INTO items VALUES ('x')"); err == nil {
			t.Fatal("the generated user could insert")
		}
		var until time.Time
		if err := admin.QueryRowContext(t.Context(), "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", user).Scan(&until); err != nil {
			t.Fatalf("reading the role's VALID UNTIL: %v", err)
		}
		if d := time.Until(until); d <= 0 || d > 2*time.Minute {
			t.Fatalf("role valid until %v (in %v), want about a minute from now", until, d)
		}
		db.Close()

		if err := s.Client(t).Sys().RevokeWithContext(t.Context(), sec.LeaseID); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		var n int
		if err := admin.QueryRowContext(t.Context(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", user).Scan(&n); err != nil || n != 0 {
			t.Fatalf("role %s after revoke: count %d, %v; want dropped", user, n, err)
		}
		// Left for the cleanup to revoke before the database is dropped.
		if _, err := s.Client(t).Logical().ReadWithContext(t.Context(), "database/creds/reader"); err != nil {
			t.Fatalf("reading database creds again: %v", err)
		}
	})
}

// TestTwoServers checks that two servers running at once (as in parallel
// tests) do not share ports, tokens or data.
func TestTwoServers(t *testing.T) {
	a, b := vaulttest.Start(t), vaulttest.Start(t)
	if a.Addr() == b.Addr() || a.DirectAddr() == b.DirectAddr() || a.RootToken() == b.RootToken() {
		t.Fatalf("servers share an address or token: %s %s, %s %s", a.Addr(), b.Addr(), a.DirectAddr(), b.DirectAddr())
	}
	if !strings.HasPrefix(a.Addr(), "http://") || a.CACert() != "" {
		t.Fatalf("a server from Start: Addr %s, CACert %q; want http and no CA", a.Addr(), a.CACert())
	}
	a.PutKV(t, vaulttest.KVMount, "app/x", map[string]any{"password": "a"})
	if _, err := frontClient(t, b, b.RootToken()).KVv2(vaulttest.KVMount).Get(t.Context(), "app/x"); err == nil {
		t.Fatal("b sees a's secret")
	}
	if _, err := frontClient(t, b, a.RootToken()).Auth().Token().LookupSelfWithContext(t.Context()); err == nil {
		t.Fatal("b accepts a's root token")
	}
}

// TestTLS checks a server from StartTLS: through the front proxy, Vault's
// own certificate verifies against CACert, for 127.0.0.1 and localhost,
// and not against the system roots.
func TestTLS(t *testing.T) {
	s := vaulttest.StartTLS(t)
	if !strings.HasPrefix(s.Addr(), "https://127.0.0.1:") || !strings.HasPrefix(s.DirectAddr(), "https://127.0.0.1:") || s.CACert() == "" {
		t.Fatalf("Addr %s, DirectAddr %s, CACert %q; want https and a CA", s.Addr(), s.DirectAddr(), s.CACert())
	}
	s.PutKV(t, vaulttest.KVMount, "app/tls", map[string]any{"password": "over-tls"})
	c := frontClient(t, s, s.RootToken())
	if got := readPassword(t, c, "app/tls"); got != "over-tls" {
		t.Fatalf("password = %q", got)
	}
	if err := c.SetAddress(strings.Replace(s.Addr(), "127.0.0.1", "localhost", 1)); err != nil {
		t.Fatal(err)
	}
	readPassword(t, c, "app/tls")

	cfg := api.DefaultConfig()
	cfg.Address = s.Addr()
	cfg.MaxRetries = 0
	untrusted, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = untrusted.Sys().HealthWithContext(t.Context())
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("without the CA: err = %v, want x509.UnknownAuthorityError", err)
	}
}

// frontClient is a client through the front proxy, trusting the server's
// CA if it has one, without retries so that a refused connection shows at
// once.
func frontClient(t *testing.T, s *vaulttest.Server, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr()
	cfg.MaxRetries = 0
	if s.CACert() != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert()}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func readPassword(t *testing.T, c *api.Client, path string) string {
	t.Helper()
	sec, err := c.KVv2(vaulttest.KVMount).Get(t.Context(), path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	p, _ := sec.Data["password"].(string)
	return p
}

func tokenTTL(t *testing.T, c *api.Client) time.Duration {
	t.Helper()
	sec, err := c.Auth().Token().LookupSelfWithContext(t.Context())
	if err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	ttl, err := sec.TokenTTL()
	if err != nil {
		t.Fatal(err)
	}
	return ttl
}

func checkLogin(t *testing.T, sec *api.Secret, ttl time.Duration) {
	t.Helper()
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		t.Fatalf("login returned no token: %+v", sec)
	}
	if got := time.Duration(sec.Auth.LeaseDuration) * time.Second; got != ttl {
		t.Errorf("token ttl = %v, want %v", got, ttl)
	}
	if !strings.Contains(strings.Join(sec.Auth.TokenPolicies, ","), "read-app") {
		t.Errorf("token policies = %v, want read-app", sec.Auth.TokenPolicies)
	}
}
