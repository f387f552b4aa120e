// Package identity turns credentials presented by agents into a [Principal].
//
// Three authenticators implement [Authenticator]: [APIKeys] (gh_ keys),
// [OIDC] (JWT bearer tokens verified against an issuer's JWKS) and [MTLS]
// (verified client certificates). A [Chain] tries them in order. For MCP's
// authorization discovery, [ResourceMetadataHandler] serves RFC 9728
// protected resource metadata and [WWWAuthenticate] builds the 401
// challenge that points to it.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// Principal is who is calling: it travels with every request through the
// decision pipeline and into the audit trail.
type Principal struct {
	Agent  string
	Team   string
	Roles  []string
	Labels map[string]string
	// Method is how the principal authenticated: "api_key", "oidc:<provider>",
	// "mtls" or "anonymous".
	Method string
	// KeyPrefix identifies which key was used without revealing it.
	KeyPrefix string
	// Claims carries identity-provider claims (OIDC: the token's claims;
	// mTLS: subject, issuer, serial and sans), nil for API keys. Shared
	// between principals of the same token: read, never modify.
	Claims map[string]any
}

// Anonymous is the principal of unauthenticated requests to a virtual
// server that allows them.
var Anonymous = &Principal{Agent: "anonymous", Method: "anonymous"}

// Errors callers branch on.
var (
	// ErrNoCredentials means the request carried no credentials at all.
	ErrNoCredentials = errors.New("no credentials")
	// ErrInvalidCredentials means credentials were presented but not accepted.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrKeyExpired means an API key was recognized but has expired; it
	// wraps ErrInvalidCredentials.
	ErrKeyExpired = fmt.Errorf("%w: key expired", ErrInvalidCredentials)
)

// An Authenticator finds the principal behind an HTTP request.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (*Principal, error)
}

// Chain tries authenticators in order: the first that does not return
// [ErrNoCredentials] decides. Put [OIDC] before [APIKeys]: OIDC passes on
// bearer tokens that are not JWTs, while APIKeys refuses every bearer token
// it does not know.
type Chain []Authenticator

var _ Authenticator = Chain(nil)

// Authenticate implements [Authenticator]. An empty chain, or one where
// every authenticator passes, gives [ErrNoCredentials].
func (c Chain) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	for _, a := range c {
		if a == nil {
			continue
		}
		p, err := a.Authenticate(ctx, r)
		if errors.Is(err, ErrNoCredentials) {
			continue
		}
		return p, err
	}
	return nil, ErrNoCredentials
}

// KeyPrefixLen is how many leading characters of a key are kept to name it
// in logs and audit events.
const KeyPrefixLen = 8

// NewAPIKey returns a fresh random key: "gh_" followed by 43 URL-safe
// base64 characters (256 bits).
func NewAPIKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "gh_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashKey returns the hex SHA-256 of key, the only form in which keys are
// stored. Keys are high-entropy random strings, so a fast hash suffices.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// ResolveKeyHash returns the hash of a key given as exactly one of a hex
// digest, an environment variable holding it, or a file holding it.
func ResolveKeyHash(sha, env, file string) (string, error) {
	switch {
	case sha != "":
		return strings.ToLower(sha), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
		return HashKey(strings.TrimSpace(v)), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read key file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("key file %s is empty", file)
		}
		return HashKey(v), nil
	}
	return "", errors.New("no key source")
}

// KeyEntry binds one key hash to a principal.
type KeyEntry struct {
	Principal *Principal
	Expires   time.Time // zero: never
}

// APIKeys authenticates "Authorization: Bearer <key>" against key hashes.
// It is immutable once built; a config change builds a new one.
type APIKeys struct {
	byHash map[[32]byte]KeyEntry
	now    func() time.Time
	use    *KeyUse
}

// RecordUse makes a record every successful authentication in u. Call it
// before a is shared.
func (a *APIKeys) RecordUse(u *KeyUse) { a.use = u }

var _ Authenticator = (*APIKeys)(nil)

// NewAPIKeys returns an authenticator over entries keyed by hex SHA-256.
func NewAPIKeys(entries map[string]KeyEntry) (*APIKeys, error) {
	a := &APIKeys{byHash: make(map[[32]byte]KeyEntry, len(entries)), now: time.Now}
	for h, e := range entries {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("bad key hash for agent %q", e.Principal.Agent)
		}
		a.byHash[[32]byte(b)] = e
	}
	return a, nil
}

// Authenticate implements [Authenticator].
func (a *APIKeys) Authenticate(_ context.Context, r *http.Request) (*Principal, error) {
	key, ok := BearerToken(r)
	if !ok {
		return nil, ErrNoCredentials
	}
	sum := sha256.Sum256([]byte(key))
	e, found := a.byHash[sum]
	// The lookup is keyed by the hash of a high-entropy secret, so its
	// timing reveals nothing about any stored key.
	if !found {
		return nil, ErrInvalidCredentials
	}
	if !e.Expires.IsZero() && a.now().After(e.Expires) {
		return nil, ErrKeyExpired
	}
	if a.use != nil {
		a.use.record(sum, a.now())
	}
	p := *e.Principal
	p.Method = "api_key"
	p.KeyPrefix = Prefix(key)
	return &p, nil
}

// Prefix returns the loggable prefix of a key.
func Prefix(key string) string {
	if len(key) <= KeyPrefixLen {
		return strings.Repeat("*", len(key))
	}
	return key[:KeyPrefixLen]
}

// BearerToken extracts the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal in ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
