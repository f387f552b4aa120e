package console

import (
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		steps []time.Duration // advance, then get, for each
		alive bool
	}{
		{"fresh", []time.Duration{0}, true},
		{"used within the idle timeout", []time.Duration{29 * time.Minute, 29 * time.Minute, 29 * time.Minute}, true},
		{"idle too long", []time.Duration{30 * time.Minute}, false},
		{"busy but too old", []time.Duration{25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute,
			25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute,
			25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute,
			25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute}, false}, // 8h20m
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
			st := newSessionStore(DefaultIdleTimeout, DefaultMaxSessionAge, clk.now)
			id, _ := st.create("gha_secret", "alice", []string{"approver"})
			var s *session
			for _, d := range tc.steps {
				clk.advance(d)
				s = st.get(id)
			}
			if (s != nil) != tc.alive {
				t.Fatalf("alive = %v, want %v", s != nil, tc.alive)
			}
			if !tc.alive && st.len() != 0 {
				t.Errorf("an expired session is still held")
			}
		})
	}
}

func TestSessionStore(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
	st := newSessionStore(time.Minute, time.Hour, clk.now)
	id, s := st.create("gha_token", "alice", []string{"approver"})
	if id == s.token || id == s.csrf || len(id) < 40 || len(s.csrf) < 40 {
		t.Fatalf("session ID %q and CSRF token %q must be random and distinct from the token", id, s.csrf)
	}
	id2, _ := st.create("gha_token", "alice", nil)
	if id2 == id {
		t.Fatal("two sessions share an ID")
	}
	if got := st.get(id); got != s || !got.hasRole("approver", "admin") || got.hasRole("admin") {
		t.Fatalf("get = %+v", got)
	}
	if st.get("") != nil || st.get("nope") != nil {
		t.Error("unknown IDs must find nothing")
	}
	st.remove(id)
	if st.get(id) != nil {
		t.Error("a removed session is still live")
	}
	// Sign-ins sweep expired sessions.
	clk.advance(2 * time.Minute)
	st.create("gha_other", "bob", nil)
	if n := st.len(); n != 1 {
		t.Errorf("after a sweep %d sessions are held, want 1", n)
	}
}
