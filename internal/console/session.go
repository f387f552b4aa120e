package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"sync"
	"time"
)

// session is one signed-in admin. It holds the admin token in memory
// only: the browser's cookie carries a random session ID, so the token
// never travels again after sign-in and is gone when the process ends.
type session struct {
	token string // the admin token (or OIDC JWT), sent to the API as bearer
	name  string // the token's name, as the API's me reports it
	roles []string
	// csrf is the synchronizer token every state-changing form carries.
	csrf     string
	created  time.Time
	lastSeen time.Time
}

// hasRole reports whether the session's token carries one of roles.
func (s *session) hasRole(roles ...string) bool {
	return slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(s.roles, r) })
}

// sessionStore keeps sessions in memory, keyed by the SHA-256 of their ID
// (the cookie value itself is not kept). Sessions are not shared between
// replicas: behind a load balancer, pin the console to one replica or
// sign in again after a failover.
type sessionStore struct {
	mu     sync.Mutex
	byHash map[[32]byte]*session
	idle   time.Duration
	maxAge time.Duration
	now    func() time.Time
}

func newSessionStore(idle, maxAge time.Duration, now func() time.Time) *sessionStore {
	return &sessionStore{byHash: map[[32]byte]*session{}, idle: idle, maxAge: maxAge, now: now}
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for token and returns its ID (the cookie value).
func (st *sessionStore) create(token, name string, roles []string) (string, *session) {
	now := st.now()
	id := randomToken()
	s := &session{token: token, name: name, roles: roles, csrf: randomToken(), created: now, lastSeen: now}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweep(now)
	st.byHash[sha256.Sum256([]byte(id))] = s
	return id, s
}

// get returns the live session with ID id and marks it used, or nil when
// there is none or it expired (then it is forgotten).
func (st *sessionStore) get(id string) *session {
	if id == "" {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byHash[key]
	if s == nil {
		return nil
	}
	if st.expired(s, now) {
		delete(st.byHash, key)
		return nil
	}
	s.lastSeen = now
	return s
}

// remove ends the session with ID id, if any.
func (st *sessionStore) remove(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byHash, sha256.Sum256([]byte(id)))
}

// len returns how many sessions are held, expired ones included until the
// next sweep.
func (st *sessionStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.byHash)
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) >= st.idle || now.Sub(s.created) >= st.maxAge
}

// sweep forgets expired sessions. It runs at each sign-in, which bounds
// the store by the sign-ins of one session lifetime without a goroutine.
func (st *sessionStore) sweep(now time.Time) {
	for k, s := range st.byHash {
		if st.expired(s, now) {
			delete(st.byHash, k)
		}
	}
}
