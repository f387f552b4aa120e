package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

/*
Signing keys of an OIDC provider.

A jwksSource holds the last good key set of one provider and refreshes it
from one of three places: the configured jwks_url, the jwks_uri of the
issuer's discovery document, or a local file. The rules:

  - The last good set is served until a newer one is loaded; a failed
    refresh never empties it. A set whose document did not change keeps its
    identity (the same *keySet), so verified-token cache entries stay valid
    across no-op refetches and are dropped when keys really change.
  - Refreshes are single-flight: concurrent callers wait for the one fetch
    in progress instead of starting their own.
  - An unknown kid may trigger a refetch, but at most once per
    [kidRefetchEvery] (start-up and background refreshes do not count).
    After failures (IdP down) any fetch waits 1 s, 2 s, 4 s ... up to the
    same cap after the last attempt, so a flood of tokens cannot turn the
    gateway into a load generator against the IdP.
  - A file is stat'ed at most once a second (and on an unknown kid) and
    re-read when its modification time or size changes.

The background loop in [OIDC] calls refresh(force) every refresh interval.
*/

const (
	kidRefetchEvery = 30 * time.Second
	fileCheckEvery  = time.Second
	fetchTimeout    = 10 * time.Second
	maxDocBytes     = 1 << 20
	minRSABits      = 2048
)

// keySet is one loaded JWKS: the usable public signing keys.
type keySet struct {
	keys []jose.JSONWebKey
	sum  [32]byte // of the document the keys came from
}

// byKID returns the keys named kid, or all keys when the token names none.
func (ks *keySet) byKID(kid string) []*jose.JSONWebKey {
	var out []*jose.JSONWebKey
	for i := range ks.keys {
		if kid == "" || ks.keys[i].KeyID == kid {
			out = append(out, &ks.keys[i])
		}
	}
	return out
}

type jwksSource struct {
	provider string
	issuer   string
	url      string // configured jwks_url; empty with file empty: discovery
	file     string
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	cur atomic.Pointer[keySet]

	lastAttempt atomic.Int64 // unix nanoseconds; 0: never

	mu          sync.Mutex
	inflight    chan struct{} // non-nil while a refresh runs; closed when done
	lastRefetch time.Time     // of the last unforced refresh
	failures    int
	lastErr     error
	// Touched only by the single refresh in flight.
	discovered string // jwks_uri found by discovery
	fileMod    time.Time
	fileSize   int64
}

// current returns the key set to verify with, loading it first if none was
// ever loaded (subject to the retry backoff). A nil set comes with the
// reason keys are unavailable.
func (s *jwksSource) current(ctx context.Context) (*keySet, error) {
	ks := s.cur.Load()
	if ks == nil || (s.file != "" && s.due(fileCheckEvery)) {
		s.refresh(ctx, false)
		ks = s.cur.Load()
	}
	if ks == nil {
		return nil, s.err()
	}
	return ks, nil
}

// err is why the last refresh failed.
func (s *jwksSource) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == nil {
		return errors.New("not loaded yet")
	}
	return s.lastErr
}

// due reports whether at least d passed since the last refresh attempt.
func (s *jwksSource) due(d time.Duration) bool {
	return s.now().Sub(time.Unix(0, s.lastAttempt.Load())) >= d
}

// mayRefetchLocked reports whether an unforced refresh (an unknown kid, a
// request finding no keys) may run now.
func (s *jwksSource) mayRefetchLocked(now time.Time) bool {
	switch {
	case s.file != "":
		return true // a stat is cheap; the file is re-read only when it changed
	case s.failures > 0:
		backoff := min(time.Second<<min(s.failures-1, 5), kidRefetchEvery)
		return now.Sub(time.Unix(0, s.lastAttempt.Load())) >= backoff
	}
	return s.lastRefetch.IsZero() || now.Sub(s.lastRefetch) >= kidRefetchEvery
}

// refresh loads the key set unless one is already being loaded (then it
// waits for that one) or, when not forced, the last attempt is too recent.
// A forced refresh (start-up, background loop) fetches under ctx; others
// come from requests and fetch under a context detached from the caller,
// since other requests may be waiting on the same fetch.
func (s *jwksSource) refresh(ctx context.Context, force bool) {
	s.mu.Lock()
	if ch := s.inflight; ch != nil {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	now := s.now()
	if !force && !s.mayRefetchLocked(now) {
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.inflight = ch
	s.lastAttempt.Store(now.UnixNano())
	if !force {
		s.lastRefetch = now
	}
	s.mu.Unlock()

	fctx := ctx
	if !force {
		fctx = context.WithoutCancel(ctx)
	}
	fctx, cancel := context.WithTimeout(fctx, fetchTimeout)
	ks, err := s.load(fctx)
	cancel()

	old := s.cur.Load()
	changed := ks != nil && (old == nil || old.sum != ks.sum)
	if changed {
		s.cur.Store(ks) // before waiters wake up
	}
	s.mu.Lock()
	if err != nil {
		s.failures++
		s.lastErr = err
	} else {
		s.failures = 0
		s.lastErr = nil
	}
	s.inflight = nil
	close(ch)
	s.mu.Unlock()

	switch {
	case err != nil && old != nil:
		s.log.Warn("oidc signing keys refresh failed; serving the last good set", "provider", s.provider, "error", err.Error())
	case err != nil:
		s.log.Warn("oidc signing keys unavailable; tokens of this provider are refused until they load", "provider", s.provider, "error", err.Error())
	case changed:
		kids := make([]string, len(ks.keys))
		for i, k := range ks.keys {
			kids[i] = k.KeyID
		}
		s.log.Info("oidc signing keys loaded", "provider", s.provider, "kids", kids)
	}
}

// load reads the key set from its source. A nil set without error means
// the file did not change.
func (s *jwksSource) load(ctx context.Context) (*keySet, error) {
	if s.file != "" {
		return s.loadFile()
	}
	u := s.url
	if u == "" {
		if s.discovered == "" {
			d, err := discoverJWKS(ctx, s.client, s.issuer)
			if err != nil {
				return nil, err
			}
			s.discovered = d
		}
		u = s.discovered
	}
	b, err := fetch(ctx, s.client, u)
	if err != nil {
		if s.url == "" {
			s.discovered = "" // the IdP may have moved it: discover again
		}
		return nil, fmt.Errorf("fetching jwks: %w", err)
	}
	ks, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("jwks from %s: %w", u, err)
	}
	return ks, nil
}

func (s *jwksSource) loadFile() (*keySet, error) {
	fi, err := os.Stat(s.file)
	if err != nil {
		return nil, fmt.Errorf("reading jwks file: %w", err)
	}
	if s.cur.Load() != nil && fi.ModTime().Equal(s.fileMod) && fi.Size() == s.fileSize {
		return nil, nil
	}
	b, err := os.ReadFile(s.file)
	if err != nil {
		return nil, fmt.Errorf("reading jwks file: %w", err)
	}
	ks, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("jwks file %s: %w", s.file, err)
	}
	s.fileMod, s.fileSize = fi.ModTime(), fi.Size()
	return ks, nil
}

// discoverJWKS finds jwks_uri in the issuer's OpenID Connect discovery
// document, or else in its RFC 8414 authorization server metadata.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	iss, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("parsing issuer: %w", err)
	}
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	// RFC 8414 inserts the well-known segment before the issuer's path.
	oauth := *iss
	oauth.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(iss.Path, "/")
	oauth.RawPath = ""
	var errs []error
	for _, u := range []string{oidc, oauth.String()} {
		b, err := fetch(ctx, client, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			errs = append(errs, fmt.Errorf("%s: not a metadata document: %w", u, err))
			continue
		}
		// OpenID Connect Discovery 1.0 §4.3 and RFC 8414 §3.3: the
		// document must be about the issuer that was asked for.
		if doc.Issuer != issuer {
			errs = append(errs, fmt.Errorf("%s names issuer %q, want %q", u, doc.Issuer, issuer))
			continue
		}
		if j, err := url.Parse(doc.JWKSURI); err != nil || (j.Scheme != "https" && j.Scheme != "http") || j.Host == "" {
			errs = append(errs, fmt.Errorf("%s: jwks_uri %q is not an http(s) URL", u, doc.JWKSURI))
			continue
		}
		return doc.JWKSURI, nil
	}
	return "", fmt.Errorf("discovering jwks_uri: %w", errors.Join(errs...))
}

// fetch GETs a small JSON document.
func fetch(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > maxDocBytes {
		return nil, fmt.Errorf("GET %s: document larger than %d bytes", u, maxDocBytes)
	}
	return b, nil
}

// parseJWKS keeps the usable public signing keys of a JWKS document. Keys
// go-jose cannot parse (an unknown kty, say) are skipped rather than
// failing the set, as are encryption keys, symmetric keys and RSA keys
// shorter than 2048 bits.
func parseJWKS(b []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	ks := &keySet{sum: sha256.Sum256(bytes.TrimSpace(b))}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		k = k.Public() // drops private parts if a careless IdP published them
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue // symmetric or unknown
		}
		if !k.Valid() {
			continue
		}
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("no usable signing keys among %d", len(doc.Keys))
	}
	return ks, nil
}

// keyFits reports whether k may verify a signature made with alg: the
// key's type (and curve) must be the algorithm's, and a key that names its
// algorithm accepts only that one. This is what defeats algorithm
// confusion: an RSA key never verifies an HMAC or a PSS/PKCS1 mix-up it
// was not published for.
func keyFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pk.Curve == elliptic.P256()
		case "ES384":
			return pk.Curve == elliptic.P384()
		case "ES512":
			return pk.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}
