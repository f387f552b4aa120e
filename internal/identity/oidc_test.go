package identity_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/identity/idptest"
)

// clock is a settable clock shared by the verifier and the test IdP.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fixture struct {
	idp  *idptest.IdP
	clk  *clock
	log  *logBuf
	oidc *identity.OIDC
}

func provider(idp *idptest.IdP) config.OIDCProvider {
	return config.OIDCProvider{
		Name:       "corp",
		Issuer:     idp.Issuer(),
		Audience:   []string{"other-api", idp.Audience()},
		Algorithms: []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"},
		Leeway:     config.Duration(time.Minute),
		Claims:     config.ClaimMapping{Agent: "sub"},
	}
}

// setup starts an IdP (alg RS256 unless given) and an OIDC verifier for
// it with the background refresh off.
func setup(t testing.TB, alg string, edit func(*config.OIDCProvider), opts *identity.OIDCOptions) *fixture {
	t.Helper()
	f := &fixture{clk: newClock(), log: &logBuf{}}
	f.idp = idptest.NewWithOptions(t, &idptest.Options{Algorithm: alg, Now: f.clk.Now})
	p := provider(f.idp)
	if edit != nil {
		edit(&p)
	}
	f.oidc = newOIDC(t, []config.OIDCProvider{p}, f.clk, f.log, opts)
	return f
}

func newOIDC(t testing.TB, ps []config.OIDCProvider, clk *clock, log *logBuf, opts *identity.OIDCOptions) *identity.OIDC {
	t.Helper()
	o := identity.OIDCOptions{RefreshInterval: -1}
	if opts != nil {
		o = *opts
	}
	o.Now = clk.Now
	o.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := identity.NewOIDC(context.Background(), ps, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest("POST", "/mcp/ops", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func (f *fixture) auth(tok string) (*identity.Principal, error) {
	return f.oidc.Authenticate(context.Background(), bearer(tok))
}

// noLeak fails if any part of tok shows up in s.
func noLeak(t *testing.T, what, s, tok string) {
	t.Helper()
	if tok == "" {
		return
	}
	if strings.Contains(s, tok) {
		t.Errorf("%s contains the token", what)
		return
	}
	for _, seg := range strings.Split(tok, ".") {
		if len(seg) >= 12 && strings.Contains(s, seg) {
			t.Errorf("%s contains a token segment %.12s...", what, seg)
		}
	}
}

func TestOIDCValidTokens(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			f := setup(t, alg, nil, nil)
			p, err := f.auth(f.idp.Token(map[string]any{"sub": "ci-bot"}))
			if err != nil {
				t.Fatal(err)
			}
			if p.Agent != "ci-bot" || p.Method != "oidc:corp" || p.Claims["iss"] != f.idp.Issuer() {
				t.Errorf("principal = %+v", p)
			}
		})
	}
}

func TestOIDCClaimMapping(t *testing.T) {
	t.Parallel()
	claims := map[string]any{
		"sub":                 "3f1c0a",
		"preferred_username":  "ci-bot",
		"org":                 map[string]any{"team": "qa"},
		"realm_access":        map[string]any{"roles": []any{"deployer", "reader", 7}},
		"scope":               "mcp:tools  mcp:read",
		"https://corp.ex/grp": []any{"sre"},
		"nested":              map[string]any{"a.b": map[string]any{"c": "dotted"}},
	}
	for _, tc := range []struct {
		name             string
		mapping          config.ClaimMapping
		agent, team      string
		roles            []string
		wantErr          string
		wantNoCredential bool
	}{
		{"defaults", config.ClaimMapping{Agent: "sub"}, "3f1c0a", "", nil, "", false},
		{"nested paths", config.ClaimMapping{Agent: "preferred_username", Team: "org.team", Roles: "realm_access.roles"}, "ci-bot", "qa", []string{"deployer", "reader"}, "", false},
		{"space-separated roles", config.ClaimMapping{Agent: "sub", Roles: "scope"}, "3f1c0a", "", []string{"mcp:tools", "mcp:read"}, "", false},
		{"namespaced claim with dots", config.ClaimMapping{Agent: "sub", Roles: "https://corp.ex/grp"}, "3f1c0a", "", []string{"sre"}, "", false},
		{"dotted key below the top", config.ClaimMapping{Agent: "nested.a.b.c"}, "dotted", "", nil, "", false},
		{"missing team is empty", config.ClaimMapping{Agent: "sub", Team: "org.nope"}, "3f1c0a", "", nil, "", false},
		{"agent claim missing", config.ClaimMapping{Agent: "email"}, "", "", nil, `no string claim "email"`, false},
		{"agent claim not a string", config.ClaimMapping{Agent: "org"}, "", "", nil, `no string claim "org"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, "ES256", func(p *config.OIDCProvider) { p.Claims = tc.mapping }, nil)
			p, err := f.auth(f.idp.Token(claims))
			if tc.wantErr != "" {
				if !errors.Is(err, identity.ErrInvalidCredentials) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Agent != tc.agent || p.Team != tc.team || !reflect.DeepEqual(p.Roles, tc.roles) {
				t.Errorf("got agent %q team %q roles %q, want %q %q %q", p.Agent, p.Team, p.Roles, tc.agent, tc.team, tc.roles)
			}
			if p.Claims["preferred_username"] != "ci-bot" {
				t.Errorf("claims = %v", p.Claims)
			}
		})
	}
}

func TestOIDCRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t, "RS256", nil, nil)
	idp := f.idp
	now := f.clk.Now()
	sub := func(extra map[string]any) map[string]any {
		m := map[string]any{"sub": "ci-bot"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		tok  string
		err  error  // nil: accepted
		why  string // in the error
	}{
		{"valid", idp.Token(sub(nil)), nil, ""},
		{"aud list with one accepted", idp.Token(sub(map[string]any{"aud": []string{"x", "gatehouse"}})), nil, ""},
		{"nbf within leeway", idp.Token(sub(map[string]any{"nbf": now.Add(30 * time.Second).Unix()})), nil, ""},
		{"exp within leeway", idp.Token(sub(map[string]any{"exp": now.Add(-30 * time.Second).Unix()})), nil, ""},
		{"expired", idp.Token(sub(nil), idptest.Expired()), identity.ErrInvalidCredentials, "token expired"},
		{"nbf in the future", idp.Token(sub(map[string]any{"nbf": now.Add(10 * time.Minute).Unix()})), identity.ErrInvalidCredentials, "not valid yet"},
		{"iat in the future", idp.Token(sub(map[string]any{"iat": now.Add(10 * time.Minute).Unix()})), identity.ErrInvalidCredentials, "issued in the future"},
		{"no exp", idp.Token(sub(map[string]any{"exp": nil})), identity.ErrInvalidCredentials, "no exp"},
		{"wrong iss", idp.Token(sub(map[string]any{"iss": "https://evil.example"})), identity.ErrInvalidCredentials, `issuer "https://evil.example" is not accepted`},
		{"wrong aud", idp.Token(sub(map[string]any{"aud": "someone-else"})), identity.ErrInvalidCredentials, "audience is not accepted"},
		{"no aud", idp.Token(sub(map[string]any{"aud": nil})), identity.ErrInvalidCredentials, "audience is not accepted"},
		{"unknown key", idp.Token(sub(nil), idptest.UnknownKey()), identity.ErrInvalidCredentials, "no signing key with kid"},
		{"unknown key under the current kid", idp.Token(sub(nil), idptest.UnknownKey(), idptest.KeyID(idp.KeyID())), identity.ErrInvalidCredentials, "signature verification failed"},
		{"unknown key without kid", idp.Token(sub(nil), idptest.UnknownKey(), idptest.KeyID("")), identity.ErrInvalidCredentials, "signature verification failed"},
		{"valid without kid", idp.Token(sub(nil), idptest.KeyID("")), nil, ""},
		{"alg none", idp.Token(sub(nil), idptest.AlgNone()), identity.ErrInvalidCredentials, "alg none"},
		{"HS256 keyed with the public key", idp.Token(sub(nil), idptest.HMACWithPublicKey()), identity.ErrInvalidCredentials, `HMAC-signed tokens (alg "HS256") are refused`},
		{"alg not in algorithms", idp.Token(sub(nil), idptest.Alg("RS384")), identity.ErrInvalidCredentials, `algorithm "RS384" is not accepted`},
		{"alg accepted but not the key's", idp.Token(sub(nil), idptest.Alg("PS256")), identity.ErrInvalidCredentials, "does not take algorithm PS256"},
		{"tampered payload", tamper(idp.Token(sub(nil))), identity.ErrInvalidCredentials, "signature verification failed"},
		{"garbage with two dots", "abc.def.ghi", identity.ErrInvalidCredentials, "malformed"},
		{"api key", identity.NewAPIKey(), identity.ErrNoCredentials, ""},
		{"one dot", "abc.def", identity.ErrNoCredentials, ""},
		{"JWE-shaped", "a.b.c.d.e", identity.ErrNoCredentials, ""},
		{"no header", "", identity.ErrNoCredentials, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.auth(tc.tok)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.Agent != "ci-bot" {
					t.Errorf("agent = %q", p.Agent)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err = %v, want %v with %q", err, tc.err, tc.why)
			}
			if p != nil {
				t.Errorf("principal %+v with an error", p)
			}
			noLeak(t, "error", err.Error(), tc.tok)
			noLeak(t, "log", f.log.String(), tc.tok)
		})
	}
}

// tamper changes the sub claim of a JWT, keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	b = bytes.Replace(b, []byte(`"ci-bot"`), []byte(`"root"`), 1)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

func TestOIDCKeyRotation(t *testing.T) {
	t.Parallel()
	f := setup(t, "ES256", nil, nil)
	old := f.idp.Token(map[string]any{"sub": "a"})
	if _, err := f.auth(old); err != nil {
		t.Fatal(err)
	}
	if n := f.idp.JWKSFetches(); n != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", n)
	}

	// A token under a new kid makes the verifier refetch and find it.
	f.idp.Rotate()
	if _, err := f.auth(f.idp.Token(map[string]any{"sub": "a"})); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := f.idp.JWKSFetches(); n != 2 {
		t.Errorf("%d JWKS fetches after rotation, want 2", n)
	}
	// The old key left the JWKS: its tokens fail, cached or not.
	if _, err := f.auth(old); !errors.Is(err, identity.ErrInvalidCredentials) || !strings.Contains(err.Error(), "no signing key with kid") {
		t.Errorf("token of the removed key: err = %v", err)
	}

	// Unknown kids refetch at most once per 30 s.
	for range 5 {
		if _, err := f.auth(f.idp.Token(map[string]any{"sub": "a"}, idptest.UnknownKey())); err == nil {
			t.Fatal("token of an unknown key accepted")
		}
	}
	if n := f.idp.JWKSFetches(); n != 2 {
		t.Errorf("%d JWKS fetches after unknown kids within 30 s, want 2", n)
	}
	f.clk.Add(31 * time.Second)
	_, _ = f.auth(f.idp.Token(map[string]any{"sub": "a"}, idptest.UnknownKey()))
	if n := f.idp.JWKSFetches(); n != 3 {
		t.Errorf("%d JWKS fetches 31 s later, want 3", n)
	}
}

func TestOIDCRefetchIsSingleFlight(t *testing.T) {
	t.Parallel()
	f := setup(t, "EdDSA", nil, &identity.OIDCOptions{RefreshInterval: -1, CacheSize: -1})
	f.idp.Rotate()
	tok := f.idp.Token(map[string]any{"sub": "a"})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := f.auth(tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.idp.JWKSFetches(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (start + one refetch)", n)
	}
}

func TestOIDCBackgroundRefresh(t *testing.T) {
	t.Parallel()
	f := setup(t, "RS256", nil, &identity.OIDCOptions{RefreshInterval: 20 * time.Millisecond})
	old := f.idp.Token(map[string]any{"sub": "a"})
	if _, err := f.auth(old); err != nil {
		t.Fatal(err)
	}
	f.idp.Rotate()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.auth(old)
		if err != nil {
			if !strings.Contains(err.Error(), "no signing key with kid") {
				t.Fatalf("err = %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("old key still accepted 10 s after rotation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The new key was loaded by the loop, not by a refetch.
	n := f.idp.JWKSFetches()
	if _, err := f.auth(f.idp.Token(map[string]any{"sub": "a"})); err != nil {
		t.Fatal(err)
	}
	if f.idp.JWKSFetches() > n+1 { // the loop may tick in between
		t.Errorf("new key needed a refetch")
	}
}

func TestOIDCIdPDownAtStart(t *testing.T) {
	t.Parallel()
	clk, log := newClock(), &logBuf{}
	idp := idptest.NewWithOptions(t, &idptest.Options{Now: clk.Now})
	idp.SetDown(true)
	a := newOIDC(t, []config.OIDCProvider{provider(idp)}, clk, log, nil)
	if !strings.Contains(log.String(), "oidc signing keys unavailable") {
		t.Errorf("start-up log = %s", log)
	}
	tok := idp.Token(map[string]any{"sub": "a"})
	_, err := a.Authenticate(context.Background(), bearer(tok))
	if !errors.Is(err, identity.ErrInvalidCredentials) || !strings.Contains(err.Error(), "signing keys unavailable") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v", err)
	}
	// The client is told the keys are unavailable, not the IdP's URL or
	// why fetching failed; /readyz says why, for the operator.
	if got := identity.Public(err); got != "oidc "+provider(idp).Name+": signing keys unavailable; retry later" {
		t.Errorf("Public(err) = %q", got)
	}
	if st := a.Status()[provider(idp).Name]; !strings.HasPrefix(st, "unavailable: signing keys not loaded: ") || !strings.Contains(st, "503") {
		t.Errorf("Status() = %v", a.Status())
	}

	idp.SetDown(false)
	// Retries back off (1 s after the first failure): not yet.
	_, err = a.Authenticate(context.Background(), bearer(tok))
	if err == nil {
		t.Fatal("retried without backoff")
	}
	clk.Add(2 * time.Second)
	if _, err := a.Authenticate(context.Background(), bearer(tok)); err != nil {
		t.Fatalf("IdP back up: %v", err)
	}
	noLeak(t, "log", log.String(), tok)
}

func TestOIDCRefreshFailureKeepsKeys(t *testing.T) {
	t.Parallel()
	f := setup(t, "RS256", nil, nil)
	tok := f.idp.Token(map[string]any{"sub": "a"})
	f.idp.SetDown(true)
	f.clk.Add(31 * time.Second)
	_, _ = f.auth(f.idp.Token(map[string]any{"sub": "a"}, idptest.UnknownKey())) // refetch fails
	if n := f.idp.JWKSFetches(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
	if _, err := f.auth(tok); err != nil {
		t.Fatalf("last good key set dropped: %v", err)
	}
	if !strings.Contains(f.log.String(), "serving the last good set") {
		t.Errorf("log = %s", f.log)
	}
}

func TestOIDCJWKSURLAndDiscovery(t *testing.T) {
	t.Parallel()
	clk := newClock()
	idp := idptest.NewWithOptions(t, &idptest.Options{Now: clk.Now})
	tok := idp.Token(map[string]any{"sub": "a"})

	t.Run("jwks_url", func(t *testing.T) {
		p := provider(idp)
		p.JWKSURL = idp.JWKSURL()
		a := newOIDC(t, []config.OIDCProvider{p}, clk, &logBuf{}, nil)
		if _, err := a.Authenticate(context.Background(), bearer(tok)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("discovery names another issuer", func(t *testing.T) {
		p := provider(idp)
		p.Issuer += "/"
		a := newOIDC(t, []config.OIDCProvider{p}, clk, &logBuf{}, nil)
		tok := idp.Token(map[string]any{"sub": "a", "iss": p.Issuer})
		_, err := a.Authenticate(context.Background(), bearer(tok))
		if err == nil || !strings.Contains(err.Error(), "names issuer") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestOIDCJWKSFile(t *testing.T) {
	t.Parallel()
	clk, log := newClock(), &logBuf{}
	idp := idptest.NewWithOptions(t, &idptest.Options{Now: clk.Now})
	file := filepath.Join(t.TempDir(), "jwks.json")
	write := func(b []byte, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	write(idp.JWKS(), time.Now().Add(-time.Hour))
	p := provider(idp)
	p.JWKSFile = file
	a := newOIDC(t, []config.OIDCProvider{p}, clk, log, nil)
	auth := func(tok string) error {
		_, err := a.Authenticate(context.Background(), bearer(tok))
		return err
	}
	old := idp.Token(map[string]any{"sub": "a"})
	if err := auth(old); err != nil {
		t.Fatal(err)
	}

	idp.Rotate()
	write(idp.JWKS(), time.Now())
	// An unknown kid checks the file at once.
	if err := auth(idp.Token(map[string]any{"sub": "a"})); err != nil {
		t.Fatalf("rotated key in the file: %v", err)
	}
	if err := auth(old); err == nil {
		t.Fatal("key removed from the file still accepted")
	}

	// A file that turns bad keeps the last good set.
	write([]byte("{not json"), time.Now().Add(time.Minute))
	clk.Add(2 * time.Second)
	if err := auth(idp.Token(map[string]any{"sub": "b"})); err != nil {
		t.Fatalf("bad file dropped the keys: %v", err)
	}
	if !strings.Contains(log.String(), file) {
		t.Errorf("log does not name the bad file: %s", log)
	}

	t.Run("missing at start", func(t *testing.T) {
		p := provider(idp)
		p.JWKSFile = filepath.Join(t.TempDir(), "nope.json")
		_, err := identity.NewOIDC(context.Background(), []config.OIDCProvider{p}, &identity.OIDCOptions{Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), "nope.json") {
			t.Fatalf("err = %v, want one naming the file", err)
		}
	})
}

func TestOIDCCacheHonoursExpiry(t *testing.T) {
	t.Parallel()
	f := setup(t, "ES256", nil, nil)
	tok := f.idp.Token(map[string]any{"sub": "a", "exp": f.clk.Now().Add(30 * time.Second).Unix()})
	for range 2 {
		if _, err := f.auth(tok); err != nil {
			t.Fatal(err)
		}
	}
	f.clk.Add(2 * time.Minute) // past exp + leeway
	if _, err := f.auth(tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v, want expired", err)
	}
}

func TestOIDCProviders(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a1 := idptest.NewWithOptions(t, &idptest.Options{Algorithm: "ES256", Now: clk.Now})
	a2 := idptest.NewWithOptions(t, &idptest.Options{Algorithm: "EdDSA", Now: clk.Now})
	p1, p2 := provider(a1), provider(a2)
	p1.Name, p2.Name = "one", "two"
	p2.Claims.Team = "grp"
	o := newOIDC(t, []config.OIDCProvider{p1, p2}, clk, &logBuf{}, nil)
	for _, tc := range []struct {
		idp          *idptest.IdP
		method, team string
	}{{a1, "oidc:one", ""}, {a2, "oidc:two", "qa"}} {
		p, err := o.Authenticate(context.Background(), bearer(tc.idp.Token(map[string]any{"sub": "x", "grp": "qa"})))
		if err != nil {
			t.Fatal(err)
		}
		if p.Method != tc.method || p.Team != tc.team {
			t.Errorf("principal = %+v", p)
		}
	}
	// A token of one issuer signed by the other's key.
	forged := a2.Token(map[string]any{"sub": "x", "iss": a1.Issuer()})
	if _, err := o.Authenticate(context.Background(), bearer(forged)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("cross-issuer token: err = %v", err)
	}

	for _, tc := range []struct {
		name string
		edit func(*config.OIDCProvider)
	}{
		{"HMAC algorithm", func(p *config.OIDCProvider) { p.Algorithms = []string{"HS256"} }},
		{"alg none", func(p *config.OIDCProvider) { p.Algorithms = []string{"none"} }},
		{"no audience", func(p *config.OIDCProvider) { p.Audience = nil }},
		{"no issuer", func(p *config.OIDCProvider) { p.Issuer = "" }},
		{"url and file", func(p *config.OIDCProvider) { p.JWKSURL, p.JWKSFile = "http://x", "/x" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := provider(a1)
			tc.edit(&p)
			if _, err := identity.NewOIDC(context.Background(), []config.OIDCProvider{p}, nil); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestChain(t *testing.T) {
	t.Parallel()
	f := setup(t, "ES256", nil, nil)
	key := identity.NewAPIKey()
	keys, err := identity.NewAPIKeys(map[string]identity.KeyEntry{identity.HashKey(key): {Principal: &identity.Principal{Agent: "keyed"}}})
	if err != nil {
		t.Fatal(err)
	}
	chain := identity.Chain{f.oidc, keys}
	for _, tc := range []struct {
		name, tok, method string
		err               error
	}{
		{"jwt", f.idp.Token(map[string]any{"sub": "a"}), "oidc:corp", nil},
		{"api key", key, "api_key", nil},
		{"bad jwt is decided by oidc", f.idp.Token(map[string]any{"sub": "a"}, idptest.Expired()), "", identity.ErrInvalidCredentials},
		{"unknown api key", identity.NewAPIKey(), "", identity.ErrInvalidCredentials},
		{"nothing", "", "", identity.ErrNoCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := chain.Authenticate(context.Background(), bearer(tc.tok))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err == nil && p.Method != tc.method {
				t.Errorf("method = %q, want %q", p.Method, tc.method)
			}
			if tc.name == "bad jwt is decided by oidc" && !strings.Contains(err.Error(), "expired") {
				t.Errorf("err = %v, want OIDC's reason", err)
			}
		})
	}
	if _, err := (identity.Chain{}).Authenticate(context.Background(), bearer("x")); !errors.Is(err, identity.ErrNoCredentials) {
		t.Errorf("empty chain: %v", err)
	}
}

// BenchmarkOIDCAuthenticate measures verification per algorithm, with the
// verified-token cache and without.
func BenchmarkOIDCAuthenticate(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		for _, cache := range []int{-1, 0} {
			name := fmt.Sprintf("%s/cache=%v", alg, cache == 0)
			b.Run(name, func(b *testing.B) {
				f := setup(b, alg, nil, &identity.OIDCOptions{RefreshInterval: -1, CacheSize: cache})
				r := bearer(f.idp.Token(map[string]any{"sub": "bench", "realm_access": map[string]any{"roles": []string{"a", "b"}}}))
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := f.oidc.Authenticate(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func FuzzOIDCAuthenticate(f *testing.F) {
	fx := setup(f, "ES256", nil, &identity.OIDCOptions{RefreshInterval: -1, CacheSize: -1})
	valid := fx.idp.Token(map[string]any{"sub": "a"})
	f.Add(valid)
	f.Add(fx.idp.Token(map[string]any{"sub": "a"}, idptest.AlgNone()))
	f.Add(fx.idp.Token(map[string]any{"sub": "a"}, idptest.HMACWithPublicKey()))
	f.Add(fx.idp.Token(map[string]any{"sub": "a"}, idptest.UnknownKey()))
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header["Authorization"] = []string{"Bearer " + tok}
		p, err := fx.oidc.Authenticate(context.Background(), r)
		switch {
		case err == nil:
			if p == nil || p.Agent != "a" {
				t.Fatalf("accepted %q as %+v", tok, p)
			}
		case !errors.Is(err, identity.ErrNoCredentials) && !errors.Is(err, identity.ErrInvalidCredentials):
			t.Fatalf("err = %v", err)
		}
	})
}
