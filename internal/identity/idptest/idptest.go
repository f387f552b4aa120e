// Package idptest runs an OpenID Connect issuer for tests: an httptest
// server with a discovery document and a JWKS, and a signer for tokens
// with the current key, or with deliberately bad ones (expired, unknown
// key, alg none, HMAC with the public key).
//
// It is not a _test package so that the end-to-end tests of the gateway
// binary can use it too.
package idptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultAudience is the aud of tokens when [Options.Audience] is empty.
const DefaultAudience = "gatehouse"

// Options configure [NewWithOptions]. The zero value gives the defaults.
type Options struct {
	// Algorithm signs tokens: RS256 (default), RS384, RS512, PS256, PS384,
	// PS512, ES256, ES384, ES512 or EdDSA. It also picks the key type.
	Algorithm string
	// Audience is the default aud claim. Empty means [DefaultAudience].
	Audience string
	// Now is the clock for iat and exp. Nil means time.Now.
	Now func() time.Time
}

// IdP is a running test issuer. Its methods are safe for concurrent use.
type IdP struct {
	t        testing.TB
	srv      *httptest.Server
	alg      string
	audience string
	now      func() time.Time

	mu      sync.Mutex
	cur     *signingKey
	down    bool
	fetches int
	serial  int
}

type signingKey struct {
	kid  string
	priv crypto.Signer
}

// New starts an RS256 issuer, stopped when the test ends.
func New(t testing.TB) *IdP { return NewWithOptions(t, nil) }

// NewWithOptions starts an issuer, stopped when the test ends.
func NewWithOptions(t testing.TB, opts *Options) *IdP {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Algorithm == "" {
		o.Algorithm = "RS256"
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	i := &IdP{t: t, alg: o.Algorithm, audience: o.Audience, now: o.Now}
	i.cur = i.newKey()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", i.serveDiscovery)
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	i.srv = httptest.NewServer(mux)
	t.Cleanup(i.srv.Close)
	return i
}

// Issuer is the iss of the tokens and the base of the discovery URL.
func (i *IdP) Issuer() string { return i.srv.URL }

// JWKSURL is where the JWKS is served.
func (i *IdP) JWKSURL() string { return i.srv.URL + "/jwks" }

// Audience is the default aud of tokens.
func (i *IdP) Audience() string { return i.audience }

// Algorithm is the alg tokens are signed with.
func (i *IdP) Algorithm() string { return i.alg }

// KeyID is the kid of the current signing key.
func (i *IdP) KeyID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cur.kid
}

// JWKS returns the published key set (the current key's public half), for
// tests that configure a jwks_file.
func (i *IdP) JWKS() []byte {
	i.mu.Lock()
	k := i.cur
	i.mu.Unlock()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: k.priv.Public(), KeyID: k.kid, Algorithm: i.alg, Use: "sig",
	}}})
	if err != nil {
		i.t.Fatalf("idptest: marshal jwks: %v", err)
	}
	return b
}

// Rotate replaces the signing key. The old key leaves the JWKS at once, so
// tokens it signed fail once a verifier refreshes its keys.
func (i *IdP) Rotate() {
	k := i.newKey()
	i.mu.Lock()
	i.cur = k
	i.mu.Unlock()
}

// SetDown makes discovery and JWKS requests fail with 503 (true) or work
// again (false).
func (i *IdP) SetDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// JWKSFetches counts JWKS requests served, failed ones included.
func (i *IdP) JWKSFetches() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.fetches
}

func (i *IdP) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	down := i.down
	i.mu.Unlock()
	if down {
		http.Error(w, "identity provider down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                i.Issuer(),
		"jwks_uri":                              i.JWKSURL(),
		"authorization_endpoint":                i.Issuer() + "/authorize",
		"token_endpoint":                        i.Issuer() + "/token",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{i.alg},
	})
}

func (i *IdP) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	i.fetches++
	down := i.down
	i.mu.Unlock()
	if down {
		http.Error(w, "identity provider down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(i.JWKS())
}

func (i *IdP) newKey() *signingKey {
	i.mu.Lock()
	i.serial++
	kid := fmt.Sprintf("key-%d-%s", i.serial, rand.Text()[:8])
	i.mu.Unlock()
	priv, err := newSigner(i.alg)
	if err != nil {
		i.t.Fatalf("idptest: %v", err)
	}
	return &signingKey{kid: kid, priv: priv}
}

func newSigner(alg string) (crypto.Signer, error) {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("unsupported algorithm %q", alg)
}

// A TokenOption changes how [IdP.Token] makes a token.
type TokenOption func(*tokenOpts)

type tokenOpts struct {
	expired    bool
	unknownKey bool
	algNone    bool
	hmacPublic bool
	alg        string
	kid        *string
}

// Expired makes a token that expired an hour ago.
func Expired() TokenOption { return func(o *tokenOpts) { o.expired = true } }

// UnknownKey signs with a fresh key that was never published, under a
// fresh kid (combine with [KeyID] to claim the current kid).
func UnknownKey() TokenOption { return func(o *tokenOpts) { o.unknownKey = true } }

// AlgNone makes an unsigned token: header alg "none", empty signature.
func AlgNone() TokenOption { return func(o *tokenOpts) { o.algNone = true } }

// HMACWithPublicKey makes the algorithm-confusion token: alg HS256, kid of
// the current key, MAC keyed with the current public key in PEM.
func HMACWithPublicKey() TokenOption { return func(o *tokenOpts) { o.hmacPublic = true } }

// Alg signs with the current key under another algorithm of the same key
// type (e.g. PS256 with the RS256 key).
func Alg(alg string) TokenOption { return func(o *tokenOpts) { o.alg = alg } }

// KeyID sets the kid header; "" leaves it out.
func KeyID(kid string) TokenOption { return func(o *tokenOpts) { o.kid = &kid } }

// Token returns a signed JWT. claims are added to the defaults iss, aud,
// iat and exp (an hour from now) and override them; a nil value removes a
// claim.
func (i *IdP) Token(claims map[string]any, opts ...TokenOption) string {
	i.t.Helper()
	var o tokenOpts
	for _, f := range opts {
		f(&o)
	}
	now := i.now()
	all := map[string]any{
		"iss": i.Issuer(),
		"aud": i.audience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	if o.expired {
		all["iat"] = now.Add(-2 * time.Hour).Unix()
		all["exp"] = now.Add(-time.Hour).Unix()
	}
	maps.Copy(all, claims)
	for k, v := range all {
		if v == nil {
			delete(all, k)
		}
	}

	i.mu.Lock()
	k := i.cur
	i.mu.Unlock()
	if o.unknownKey {
		k = i.newKey()
	}
	kid := k.kid
	if o.kid != nil {
		kid = *o.kid
	}

	switch {
	case o.algNone:
		return i.handMade(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, all, func([]byte) []byte { return nil })
	case o.hmacPublic:
		der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
		if err != nil {
			i.t.Fatalf("idptest: %v", err)
		}
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		return i.handMade(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, all, func(in []byte) []byte {
			m := hmac.New(sha256.New, secret)
			m.Write(in)
			return m.Sum(nil)
		})
	}

	alg := i.alg
	if o.alg != "" {
		alg = o.alg
	}
	var key any = k.priv
	if kid != "" {
		key = jose.JSONWebKey{Key: k.priv, KeyID: kid}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		i.t.Fatalf("idptest: signer: %v", err)
	}
	tok, err := jwt.Signed(signer).Claims(all).Serialize()
	if err != nil {
		i.t.Fatalf("idptest: sign: %v", err)
	}
	return tok
}

func (i *IdP) handMade(header, claims map[string]any, sign func([]byte) []byte) string {
	if header["kid"] == "" {
		delete(header, "kid")
	}
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			i.t.Fatalf("idptest: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
}
