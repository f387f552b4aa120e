package identity

import (
	"encoding/hex"
	"sync"
	"time"
)

// KeyUse remembers when each API key was last used, in memory, so that the
// config store's last_used_at can be written in batches instead of once per
// request. Safe for concurrent use; the zero value is ready.
type KeyUse struct {
	mu   sync.Mutex
	last map[[32]byte]time.Time
}

func (u *KeyUse) record(hash [32]byte, t time.Time) {
	u.mu.Lock()
	if u.last == nil {
		u.last = make(map[[32]byte]time.Time)
	}
	u.last[hash] = t
	u.mu.Unlock()
}

// Drain returns the last use of every key used since the previous Drain, by
// hex SHA-256, and forgets them.
func (u *KeyUse) Drain() map[string]time.Time {
	u.mu.Lock()
	last := u.last
	u.last = nil
	u.mu.Unlock()
	out := make(map[string]time.Time, len(last))
	for h, t := range last {
		out[hex.EncodeToString(h[:])] = t
	}
	return out
}

// Restore puts uses back that could not be written, keeping newer ones.
func (u *KeyUse) Restore(uses map[string]time.Time) {
	for h, t := range uses {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			continue
		}
		u.mu.Lock()
		if u.last == nil {
			u.last = make(map[[32]byte]time.Time)
		}
		if cur, ok := u.last[[32]byte(b)]; !ok || cur.Before(t) {
			u.last[[32]byte(b)] = t
		}
		u.mu.Unlock()
	}
}
