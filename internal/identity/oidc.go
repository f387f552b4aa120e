package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Algorithms OIDC tokens may be signed with: asymmetric only. "none" and
// the HMAC family are never accepted, whatever the configuration says.
var oidcAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// defaultOIDCAlgorithms is the algorithm list of a provider that names
// none; it matches the config package's default.
var defaultOIDCAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}

// OIDCOptions tunes [NewOIDC]. The zero value (or nil) gives the defaults.
type OIDCOptions struct {
	// HTTPClient fetches discovery documents and JWKS. Nil means a client
	// with a 10 second timeout.
	HTTPClient *http.Client
	// Now is the clock for token validity and refetch limits. Nil means
	// time.Now.
	Now func() time.Time
	// Logger receives key-set loads and refresh failures (never tokens).
	// Nil means slog.Default().
	Logger *slog.Logger
	// RefreshInterval is how often key sets are refreshed in the
	// background. Zero means 15 minutes; negative disables the loop.
	RefreshInterval time.Duration
	// CacheSize bounds the cache of verified tokens (by SHA-256 of the
	// token, until exp). Zero means 4096 entries; negative disables it.
	CacheSize int
}

// OIDC authenticates JWT bearer tokens from configured issuers.
//
// A token is routed to its provider by its (unverified) iss claim and then
// verified: the signature against the provider's JWKS (key looked up by
// kid; the algorithm must be one the provider accepts and fit the key), iss
// again, aud against the accepted audiences, exp, nbf and iat with the
// provider's leeway. Signing keys are fetched at start, refreshed in the
// background and refetched on an unknown kid (see jwks.go); an IdP that is
// down does not stop the gateway, its tokens are refused with a reason
// until its keys load. Close stops the background refresh.
type OIDC struct {
	byIssuer map[string][]*oidcProvider
	parseAlg []jose.SignatureAlgorithm // union over providers
	now      func() time.Time
	cache    *tokenCache

	stop     context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

type oidcProvider struct {
	name     string
	method   string
	issuer   string
	audience []string
	algs     map[string]bool
	leeway   time.Duration
	claims   config.ClaimMapping
	src      *jwksSource
}

var _ Authenticator = (*OIDC)(nil)

// NewOIDC checks the providers and loads their signing keys. A provider
// whose IdP cannot be reached is logged and retried lazily; only
// configuration errors and an unreadable jwks_file fail. Call Close when
// done.
func NewOIDC(ctx context.Context, providers []config.OIDCProvider, opts *OIDCOptions) (*OIDC, error) {
	var o OIDCOptions
	if opts != nil {
		o = *opts
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 15 * time.Minute
	}
	if o.CacheSize == 0 {
		o.CacheSize = 4096
	}

	a := &OIDC{byIssuer: map[string][]*oidcProvider{}, now: o.Now}
	if o.CacheSize > 0 {
		a.cache = newTokenCache(o.CacheSize)
	}
	union := map[string]bool{}
	names := map[string]bool{}
	var all []*oidcProvider
	for _, c := range providers {
		p, err := newOIDCProvider(c, &o)
		if err != nil {
			return nil, err
		}
		if names[p.name] {
			return nil, fmt.Errorf("oidc provider %q: duplicate name", p.name)
		}
		names[p.name] = true
		for alg := range p.algs {
			union[alg] = true
		}
		a.byIssuer[p.issuer] = append(a.byIssuer[p.issuer], p)
		all = append(all, p)
	}
	for _, alg := range oidcAlgorithms {
		if union[alg] {
			a.parseAlg = append(a.parseAlg, jose.SignatureAlgorithm(alg))
		}
	}

	// Load every provider's keys in parallel; only a local file may fail.
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, p := range all {
		wg.Go(func() {
			p.src.refresh(ctx, true)
			if p.src.file != "" && p.src.cur.Load() == nil {
				errs[i] = fmt.Errorf("oidc provider %q: %w", p.name, p.src.err())
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	bg, stop := context.WithCancel(context.Background())
	a.stop, a.done = stop, make(chan struct{})
	go a.refreshLoop(bg, all, o.RefreshInterval)
	return a, nil
}

func newOIDCProvider(c config.OIDCProvider, o *OIDCOptions) (*oidcProvider, error) {
	if c.Name == "" {
		return nil, errors.New("oidc provider: name is required")
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("oidc provider %q: %s", c.Name, fmt.Sprintf(format, args...))
	}
	if c.Issuer == "" {
		return nil, bad("issuer is required")
	}
	if len(c.Audience) == 0 {
		return nil, bad("audience is required")
	}
	if c.JWKSURL != "" && c.JWKSFile != "" {
		return nil, bad("give jwks_url or jwks_file, not both")
	}
	algs := c.Algorithms
	if len(algs) == 0 {
		algs = defaultOIDCAlgorithms
	}
	p := &oidcProvider{
		name:     c.Name,
		method:   "oidc:" + c.Name,
		issuer:   c.Issuer,
		audience: slices.Clone(c.Audience),
		algs:     map[string]bool{},
		leeway:   time.Duration(c.Leeway),
		claims:   c.Claims,
	}
	for _, alg := range algs {
		if !slices.Contains(oidcAlgorithms, alg) {
			return nil, bad("algorithm %q is not accepted (asymmetric algorithms only)", alg)
		}
		p.algs[alg] = true
	}
	if p.leeway == 0 {
		p.leeway = 60 * time.Second
	}
	if p.claims.Agent == "" {
		p.claims.Agent = "sub"
	}
	p.src = &jwksSource{
		provider: c.Name,
		issuer:   c.Issuer,
		url:      c.JWKSURL,
		file:     c.JWKSFile,
		client:   o.HTTPClient,
		log:      o.Logger,
		now:      o.Now,
	}
	return p, nil
}

func (a *OIDC) refreshLoop(ctx context.Context, ps []*oidcProvider, every time.Duration) {
	defer close(a.done)
	if every < 0 || len(ps) == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, p := range ps {
				p.src.refresh(ctx, true)
			}
		}
	}
}

// Close stops the background key refresh.
// Status says, by provider name, whether tokens can be verified: "ready"
// when its signing keys are loaded, else "unavailable: " and why (for
// /readyz; the detail is the operator's).
func (a *OIDC) Status() map[string]string {
	out := map[string]string{}
	for _, ps := range a.byIssuer {
		for _, p := range ps {
			if p.src.cur.Load() != nil {
				out[p.name] = "ready"
			} else {
				out[p.name] = "unavailable: signing keys not loaded: " + p.src.err().Error()
			}
		}
	}
	return out
}

func (a *OIDC) Close() {
	a.stopOnce.Do(func() {
		a.stop()
		<-a.done
	})
}

// Authenticate implements [Authenticator]. A bearer token that is not a
// JWS compact serialization (API keys have no dots) gives
// [ErrNoCredentials], so the next authenticator of a [Chain] may take it.
// Every refusal wraps [ErrInvalidCredentials] with a reason that is safe to
// log: it never contains the token.
func (a *OIDC) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	tok, ok := BearerToken(r)
	if !ok || strings.Count(tok, ".") != 2 || len(a.byIssuer) == 0 {
		return nil, ErrNoCredentials
	}
	var sum [32]byte
	if a.cache != nil {
		sum = sha256.Sum256([]byte(tok))
		if p := a.cache.get(ctx, sum, a.now()); p != nil {
			return p, nil
		}
	}
	p, v, err := a.verify(ctx, tok)
	if err != nil {
		return nil, err
	}
	if a.cache != nil {
		a.cache.put(sum, v, a.now())
	}
	cp := *p
	return &cp, nil
}

// verified is what the cache keeps of a verified token.
type verified struct {
	principal *Principal
	until     time.Time
	provider  *oidcProvider
	keys      *keySet
}

func (a *OIDC) verify(ctx context.Context, tok string) (*Principal, *verified, error) {
	jws, err := jwt.ParseSigned(tok, a.parseAlg)
	if err != nil {
		return nil, nil, refused("", parseFailure(tok, a.parseAlg))
	}
	var peek struct {
		Iss string `json:"iss"`
	}
	if err := jws.UnsafeClaimsWithoutVerification(&peek); err != nil {
		return nil, nil, refused("", "malformed token claims")
	}
	ps := a.byIssuer[peek.Iss]
	if len(ps) == 0 {
		return nil, nil, refused("", fmt.Sprintf("token issuer %s is not accepted", safeQuote(peek.Iss)))
	}
	var first error
	for _, p := range ps {
		v, err := p.verify(ctx, jws, a.now())
		if err == nil {
			return v.principal, v, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, nil, first
}

func (p *oidcProvider) verify(ctx context.Context, jws *jwt.JSONWebToken, now time.Time) (*verified, error) {
	h := jws.Headers[0]
	alg, kid := h.Algorithm, h.KeyID
	if !p.algs[alg] {
		return nil, refused(p.name, fmt.Sprintf("algorithm %s is not accepted", alg))
	}
	ks, err := p.src.current(ctx)
	if err != nil {
		return nil, &publicError{err: refused(p.name, "signing keys unavailable: "+err.Error()),
			public: fmt.Sprintf("oidc %s: signing keys unavailable; retry later", p.name)}
	}
	cands := ks.byKID(kid)
	if len(cands) == 0 {
		// An unknown kid usually means the IdP rotated its keys.
		p.src.refresh(ctx, false)
		ks = p.src.cur.Load()
		cands = ks.byKID(kid)
		if len(cands) == 0 {
			return nil, refused(p.name, fmt.Sprintf("no signing key with kid %s", safeQuote(kid)))
		}
	}
	cands = slices.DeleteFunc(cands, func(k *jose.JSONWebKey) bool { return !keyFits(k, alg) })
	if len(cands) == 0 {
		return nil, refused(p.name, fmt.Sprintf("signing key %s does not take algorithm %s", safeQuote(kid), alg))
	}
	verifiedSig := false
	for _, k := range cands {
		if err := jws.Claims(k.Key); err == nil {
			verifiedSig = true
			break
		}
	}
	if !verifiedSig {
		return nil, refused(p.name, "signature verification failed")
	}
	var std jwt.Claims
	var all map[string]any
	if err := jws.UnsafeClaimsWithoutVerification(&std, &all); err != nil {
		return nil, refused(p.name, "malformed token claims")
	}
	if std.Expiry == nil {
		return nil, refused(p.name, "token has no exp claim")
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: p.issuer, AnyAudience: p.audience, Time: now}, p.leeway)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return nil, refused(p.name, "token expired")
	case errors.Is(err, jwt.ErrNotValidYet):
		return nil, refused(p.name, "token not valid yet (nbf)")
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, refused(p.name, "token issued in the future (iat)")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, refused(p.name, fmt.Sprintf("token audience is not accepted (want one of %s)", strings.Join(p.audience, ", ")))
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, refused(p.name, "token issuer mismatch")
	default:
		return nil, refused(p.name, "token claims invalid")
	}
	pr, err := p.principal(all)
	if err != nil {
		return nil, err
	}
	return &verified{principal: pr, until: std.Expiry.Time().Add(p.leeway), provider: p, keys: ks}, nil
}

// principal maps verified claims onto a [Principal].
func (p *oidcProvider) principal(claims map[string]any) (*Principal, error) {
	agent, _ := claimPath(claims, p.claims.Agent).(string)
	if agent == "" {
		return nil, refused(p.name, fmt.Sprintf("token has no string claim %q to name the agent", p.claims.Agent))
	}
	pr := &Principal{Agent: agent, Method: p.method, Claims: claims}
	if p.claims.Team != "" {
		pr.Team, _ = claimPath(claims, p.claims.Team).(string)
	}
	if p.claims.Roles != "" {
		switch v := claimPath(claims, p.claims.Roles).(type) {
		case string:
			pr.Roles = strings.Fields(v)
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok && s != "" {
					pr.Roles = append(pr.Roles, s)
				}
			}
		}
	}
	return pr, nil
}

// claimPath looks a dot path up in claims. Claim names may themselves
// contain dots (namespaced claims such as "https://corp.example/roles"):
// at each level a literal key wins over splitting.
func claimPath(m map[string]any, path string) any {
	if v, ok := m[path]; ok {
		return v
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		if sub, ok := m[path[:i]].(map[string]any); ok {
			if v := claimPath(sub, path[i+1:]); v != nil {
				return v
			}
		}
	}
	return nil
}

// publicError is a refusal whose detail (an identity provider's URLs, why
// fetching from it failed) is for the gateway's log, not for the client.
type publicError struct {
	err    error
	public string
}

func (e *publicError) Error() string { return e.err.Error() }
func (e *publicError) Unwrap() error { return e.err }

// Public returns what a client is told of err, an authentication failure:
// its text, without detail that is the gateway's own (an identity
// provider's internal URLs, a fetch error).
func Public(err error) string {
	var pe *publicError
	if errors.As(err, &pe) {
		return pe.public
	}
	return err.Error()
}

// refused returns an error wrapping [ErrInvalidCredentials]. reason must
// never contain the token.
func refused(provider, reason string) error {
	if provider == "" {
		return fmt.Errorf("%w: %s", ErrInvalidCredentials, reason)
	}
	return fmt.Errorf("%w: oidc %s: %s", ErrInvalidCredentials, provider, reason)
}

// parseFailure explains why a JWT did not parse, from its header alone.
func parseFailure(tok string, accepted []jose.SignatureAlgorithm) string {
	seg, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return "malformed token"
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return "malformed token header"
	}
	switch {
	case h.Alg == "" || strings.EqualFold(h.Alg, "none"):
		return "unsigned tokens (alg none) are refused"
	case strings.HasPrefix(strings.ToUpper(h.Alg), "HS"):
		return fmt.Sprintf("HMAC-signed tokens (alg %s) are refused", safeQuote(h.Alg))
	case !slices.Contains(accepted, jose.SignatureAlgorithm(h.Alg)):
		return fmt.Sprintf("algorithm %s is not accepted", safeQuote(h.Alg))
	}
	return "malformed token"
}

// safeQuote quotes an attacker-chosen string for an error message,
// truncated so that logs stay small.
func safeQuote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// tokenCache remembers verified tokens by SHA-256 until they expire, so a
// token presented on every request of a session is verified once. An entry
// is only good while its provider still serves the key set it was verified
// with: new keys (rotation, a removed key) drop every entry of the
// provider. When full, expired entries go first, then arbitrary ones (map
// order): a bound, not an LRU, which is enough for a set of live tokens
// far smaller than the bound.
type tokenCache struct {
	mu  sync.RWMutex
	max int
	m   map[[32]byte]*verified
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[[32]byte]*verified)}
}

func (c *tokenCache) get(ctx context.Context, sum [32]byte, now time.Time) *Principal {
	c.mu.RLock()
	v := c.m[sum]
	c.mu.RUnlock()
	if v == nil || now.After(v.until) {
		return nil
	}
	if ks, err := v.provider.src.current(ctx); err != nil || ks != v.keys {
		return nil
	}
	p := *v.principal
	return &p
}

func (c *tokenCache) put(sum [32]byte, v *verified, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.After(e.until) || e.keys != e.provider.src.cur.Load() {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[sum] = v
}
