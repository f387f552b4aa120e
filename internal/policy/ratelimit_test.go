package policy

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func rl(name, key string, requests int, per time.Duration, burst int) config.RateLimit {
	return config.RateLimit{Name: name, Key: key, Requests: requests, Per: config.Duration(per), Burst: burst}
}

func mustLimiter(t *testing.T, rules ...config.RateLimit) *Limiter {
	t.Helper()
	l := NewLimiter()
	if err := l.Update(rules); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return l
}

// call is one Allow at an offset from t0 and its expected outcome.
type call struct {
	p          *identity.Principal
	vs, tool   string
	at         time.Duration
	ok         bool
	rule       string
	retryAfter time.Duration
}

func run(t *testing.T, l *Limiter, calls []call) {
	t.Helper()
	for i, c := range calls {
		vs, tool := c.vs, c.tool
		if vs == "" {
			vs = "ops"
		}
		if tool == "" {
			tool = "t"
		}
		ok, rule, ra := l.Allow(c.p, vs, tool, t0.Add(c.at))
		if ok != c.ok || rule != c.rule || ra != c.retryAfter {
			t.Errorf("call %d (%s %s/%s at %v) = %v %q %v, want %v %q %v",
				i, agentOf(c.p), vs, tool, c.at, ok, rule, ra, c.ok, c.rule, c.retryAfter)
		}
	}
}

func agentOf(p *identity.Principal) string {
	if p == nil {
		return "<nil>"
	}
	return p.Agent
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	carl := &identity.Principal{Agent: "carl", Team: "qa", Method: "api_key"}
	solo1 := &identity.Principal{Agent: "solo1", Method: "api_key"}
	solo2 := &identity.Principal{Agent: "solo2", Method: "api_key"}
	oidc := &identity.Principal{Agent: "o", Method: "oidc", Claims: map[string]any{"tier": "free"}}
	paid := &identity.Principal{Agent: "p", Method: "oidc", Claims: map[string]any{"tier": "paid"}}
	tests := []struct {
		name  string
		rules []config.RateLimit
		calls []call
	}{
		{
			name:  "burst then refused with exact retry-after",
			rules: []config.RateLimit{rl("r", "agent", 1, time.Second, 3)},
			calls: []call{
				{p: alice, ok: true}, {p: alice, ok: true}, {p: alice, ok: true},
				{p: alice, ok: false, rule: "r", retryAfter: time.Second},
				{p: alice, at: 400 * time.Millisecond, ok: false, rule: "r", retryAfter: 600 * time.Millisecond},
				{p: alice, at: time.Second, ok: true},
				{p: alice, at: time.Second, ok: false, rule: "r", retryAfter: time.Second},
			},
		},
		{
			name:  "refill is capped at burst",
			rules: []config.RateLimit{rl("r", "agent", 2, time.Second, 2)},
			calls: []call{
				{p: alice, ok: true}, {p: alice, ok: true},
				{p: alice, ok: false, rule: "r", retryAfter: 500 * time.Millisecond},
				{p: alice, at: time.Hour, ok: true}, {p: alice, at: time.Hour, ok: true},
				{p: alice, at: time.Hour, ok: false, rule: "r", retryAfter: 500 * time.Millisecond},
			},
		},
		{
			name:  "burst defaults to requests",
			rules: []config.RateLimit{rl("r", "", 2, time.Minute, 0)},
			calls: []call{
				{p: alice, ok: true}, {p: alice, ok: true},
				{p: alice, ok: false, rule: "r", retryAfter: 30 * time.Second},
			},
		},
		{
			name:  "agents have their own buckets",
			rules: []config.RateLimit{rl("r", "agent", 1, time.Minute, 1)},
			calls: []call{
				{p: alice, ok: true}, {p: bob, ok: true},
				{p: alice, ok: false, rule: "r", retryAfter: time.Minute},
				{p: bob, ok: false, rule: "r", retryAfter: time.Minute},
				{p: ci, ok: true},
			},
		},
		{
			name:  "anonymous callers share one bucket",
			rules: []config.RateLimit{rl("r", "agent", 1, time.Minute, 1)},
			calls: []call{
				{p: anon, ok: true},
				{p: nil, ok: false, rule: "r", retryAfter: time.Minute},
			},
		},
		{
			name:  "team bucket is shared; teamless agents count alone",
			rules: []config.RateLimit{rl("r", "team", 1, time.Minute, 2)},
			calls: []call{
				{p: alice, ok: true}, {p: frozen, ok: true}, // both team qa
				{p: carl, ok: false, rule: "r", retryAfter: time.Minute},
				{p: solo1, ok: true}, {p: solo1, ok: true},
				{p: solo1, ok: false, rule: "r", retryAfter: time.Minute},
				{p: solo2, ok: true},
			},
		},
		{
			name:  "tool bucket per virtual server and tool, shared by agents",
			rules: []config.RateLimit{rl("r", "tool", 1, time.Minute, 1)},
			calls: []call{
				{p: alice, tool: "a", ok: true},
				{p: bob, tool: "a", ok: false, rule: "r", retryAfter: time.Minute},
				{p: bob, tool: "b", ok: true},
				{p: bob, vs: "dev", tool: "a", ok: true},
			},
		},
		{
			name:  "global bucket",
			rules: []config.RateLimit{rl("r", "global", 2, time.Minute, 2)},
			calls: []call{
				{p: alice, vs: "ops", tool: "a", ok: true},
				{p: bob, vs: "dev", tool: "b", ok: true},
				{p: ci, vs: "x", tool: "c", ok: false, rule: "r", retryAfter: 30 * time.Second},
			},
		},
		{
			name: "scope by virtual server and tools",
			rules: []config.RateLimit{{Name: "r", Key: "agent", Requests: 1, Per: config.Duration(time.Minute),
				Scope: config.Scope{VirtualServer: "ops", Tools: []string{"write_*"}}}},
			calls: []call{
				{p: alice, tool: "write_a", ok: true},
				{p: alice, tool: "write_b", ok: false, rule: "r", retryAfter: time.Minute},
				{p: alice, tool: "read_a", ok: true}, {p: alice, tool: "read_a", ok: true},
				{p: alice, vs: "dev", tool: "write_a", ok: true}, {p: alice, vs: "dev", tool: "write_a", ok: true},
			},
		},
		{
			name: "subjects",
			rules: []config.RateLimit{
				{Name: "qa", Subject: config.Subject{Team: "qa"}, Key: "agent", Requests: 1, Per: config.Duration(time.Minute)},
				{Name: "free", Subject: config.Subject{Claim: `claims.tier == "free"`}, Key: "agent", Requests: 1, Per: config.Duration(time.Minute)},
			},
			calls: []call{
				{p: alice, ok: true}, {p: alice, ok: false, rule: "qa", retryAfter: time.Minute},
				{p: bob, ok: true}, {p: bob, ok: true},
				{p: oidc, ok: true}, {p: oidc, ok: false, rule: "free", retryAfter: time.Minute},
				{p: paid, ok: true}, {p: paid, ok: true},
			},
		},
		{
			name: "the longest wait is reported",
			rules: []config.RateLimit{
				rl("short", "agent", 1, time.Second, 1),
				rl("long", "agent", 1, time.Hour, 1),
			},
			calls: []call{
				{p: alice, ok: true},
				{p: alice, ok: false, rule: "long", retryAfter: time.Hour},
				{p: alice, at: 2 * time.Second, ok: false, rule: "long", retryAfter: time.Hour - 2*time.Second},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run(t, mustLimiter(t, tt.rules...), tt.calls)
		})
	}
}

func TestLimiterRefusedCallTakesNothing(t *testing.T) {
	t.Parallel()
	l := mustLimiter(t, rl("per-agent", "agent", 2, time.Minute, 2), rl("global", "global", 1, time.Minute, 1))
	run(t, l, []call{
		{p: alice, ok: true},
		{p: alice, ok: false, rule: "global", retryAfter: time.Minute},
		{p: alice, ok: false, rule: "global", retryAfter: time.Minute},
	})
	// Had the refused calls kept per-agent tokens, per-agent would be
	// empty now; it holds one token, and a minute later two.
	if err := l.Update([]config.RateLimit{rl("per-agent", "agent", 2, time.Minute, 2)}); err != nil {
		t.Fatal(err)
	}
	run(t, l, []call{
		{p: alice, ok: true},
		{p: alice, ok: false, rule: "per-agent", retryAfter: 30 * time.Second},
	})
}

func TestLimiterPeek(t *testing.T) {
	t.Parallel()
	l := mustLimiter(t, rl("r", "agent", 1, time.Second, 2))
	store := (*l.rules.Load())[0].buckets
	for range 5 {
		if ok, rule, ra := l.Peek(alice, "ops", "t", t0); !ok || rule != "" || ra != 0 {
			t.Fatalf("Peek on a fresh bucket = %v %q %v", ok, rule, ra)
		}
	}
	if n := store.size(); n != 0 {
		t.Errorf("Peek kept %d buckets", n)
	}
	run(t, l, []call{{p: alice, ok: true}, {p: alice, ok: true}})
	for range 3 {
		if ok, rule, ra := l.Peek(alice, "ops", "t", t0.Add(250*time.Millisecond)); ok || rule != "r" || ra != 750*time.Millisecond {
			t.Fatalf("Peek on an empty bucket = %v %q %v", ok, rule, ra)
		}
	}
	run(t, l, []call{{p: alice, at: time.Second, ok: true}, {p: alice, at: time.Second, ok: false, rule: "r", retryAfter: time.Second}})
}

func TestLimiterUpdate(t *testing.T) {
	t.Parallel()
	l := mustLimiter(t, rl("a", "agent", 1, time.Minute, 1), rl("b", "agent", 1, time.Minute, 1))
	run(t, l, []call{{p: alice, ok: true}})

	// a unchanged: its bucket is kept. b changed: fresh bucket. c new.
	if err := l.Update([]config.RateLimit{
		rl("a", "agent", 1, time.Minute, 1),
		rl("b", "agent", 1, time.Minute, 2),
	}); err != nil {
		t.Fatal(err)
	}
	run(t, l, []call{{p: alice, ok: false, rule: "a", retryAfter: time.Minute}})

	if err := l.Update([]config.RateLimit{rl("b", "agent", 1, time.Minute, 2)}); err != nil {
		t.Fatal(err)
	}
	// b's bucket is the one from the previous Update, which the refused
	// call did not drain: 2 tokens.
	run(t, l, []call{{p: alice, ok: true}, {p: alice, ok: true}, {p: alice, ok: false, rule: "b", retryAfter: time.Minute}})

	// A rule that keeps its name but changes its scope keeps its buckets.
	scoped := rl("b", "agent", 1, time.Minute, 2)
	scoped.Scope.Tools = []string{"t"}
	if err := l.Update([]config.RateLimit{scoped}); err != nil {
		t.Fatal(err)
	}
	run(t, l, []call{{p: alice, ok: false, rule: "b", retryAfter: time.Minute}, {p: alice, tool: "other", ok: true}})

	// An invalid update changes nothing.
	bad := rl("b", "agent", 0, time.Minute, 1)
	var ve *config.ValidationError
	if err := l.Update([]config.RateLimit{bad}); !errors.As(err, &ve) || ve.Fields[0].Path != "rate_limits[0].requests" {
		t.Fatalf("Update(bad) = %v", err)
	}
	run(t, l, []call{{p: alice, ok: false, rule: "b", retryAfter: time.Minute}})

	// No rules: everything passes.
	if err := l.Update(nil); err != nil {
		t.Fatal(err)
	}
	run(t, l, []call{{p: alice, ok: true}, {p: alice, ok: true}})
}

func TestLimiterUpdateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule config.RateLimit
		path string
	}{
		{rl("", "agent", 1, time.Second, 1), "rate_limits[0].name"},
		{rl("r", "user", 1, time.Second, 1), "rate_limits[0].key"},
		{rl("r", "agent", 1, 0, 1), "rate_limits[0].per"},
		{rl("r", "agent", 1, time.Second, -1), "rate_limits[0].burst"},
		{config.RateLimit{Name: "r", Requests: 1, Per: config.Duration(time.Second), Subject: config.Subject{Claim: "claims.x =="}}, "rate_limits[0].subject.claim"},
		{config.RateLimit{Name: "r", Requests: 1, Per: config.Duration(time.Second), Scope: config.Scope{Tools: []string{"[x"}}}, "rate_limits[0].scope.tools[0]"},
	}
	for _, tt := range tests {
		var ve *config.ValidationError
		if err := NewLimiter().Update([]config.RateLimit{tt.rule}); !errors.As(err, &ve) || ve.Fields[0].Path != tt.path {
			t.Errorf("Update(%+v) = %v, want error at %s", tt.rule, err, tt.path)
		}
	}
	var ve *config.ValidationError
	if err := NewLimiter().Update([]config.RateLimit{rl("r", "agent", 1, time.Second, 1), rl("r", "agent", 1, time.Second, 1)}); !errors.As(err, &ve) {
		t.Errorf("duplicate names: %v", err)
	}
}

func TestLimiterEviction(t *testing.T) {
	t.Parallel()
	l := mustLimiter(t, rl("r", "agent", 1, time.Second, 5)) // 5 s to refill
	store := (*l.rules.Load())[0].buckets
	for i := range 1000 {
		p := &identity.Principal{Agent: fmt.Sprintf("a%d", i), Method: "api_key"}
		l.Allow(p, "ops", "t", t0)
	}
	if n := store.size(); n != 1000 {
		t.Fatalf("buckets = %d, want 1000", n)
	}
	// One agent keeps calling; every shard it does not touch keeps its
	// buckets, so touch them all through other keys later.
	for i := range 1000 {
		p := &identity.Principal{Agent: fmt.Sprintf("b%d", i), Method: "api_key"}
		l.Allow(p, "ops", "t", t0.Add(5*time.Second))
	}
	if n := store.size(); n != 1000 {
		t.Fatalf("buckets after sweep = %d, want 1000 (the a* buckets are full and forgotten)", n)
	}
	// A forgotten bucket was full: the agent gets its whole burst.
	p := &identity.Principal{Agent: "a1", Method: "api_key"}
	for i := range 5 {
		if ok, _, _ := l.Allow(p, "ops", "t", t0.Add(5*time.Second)); !ok {
			t.Fatalf("call %d refused", i)
		}
	}
	// A bucket that has not refilled yet is kept: a1 is empty at 5 s, takes
	// a token at 7 s (1 left) and holds 4 when the sweep runs at 10 s.
	run(t, l, []call{{p: p, at: 7 * time.Second, ok: true}})
	for i := range 1000 {
		l.Allow(&identity.Principal{Agent: fmt.Sprintf("c%d", i), Method: "api_key"}, "ops", "t", t0.Add(10*time.Second))
	}
	if n := store.size(); n != 1001 {
		t.Fatalf("buckets after second sweep = %d, want 1001 (c* and a1)", n)
	}
	at := 10 * time.Second
	run(t, l, []call{
		{p: p, at: at, ok: true}, {p: p, at: at, ok: true}, {p: p, at: at, ok: true}, {p: p, at: at, ok: true},
		{p: p, at: at, ok: false, rule: "r", retryAfter: time.Second},
	})
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := mustLimiter(t, rl("g", "global", 1, time.Hour, 100), rl("a", "agent", 1, time.Hour, 1000))
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &identity.Principal{Agent: fmt.Sprintf("w%d", i), Method: "api_key"}
			for range 100 {
				if ok, _, _ := l.Allow(p, "ops", "t", t0); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // Updates race with calls.
		defer wg.Done()
		for range 50 {
			if err := l.Update([]config.RateLimit{rl("g", "global", 1, time.Hour, 100), rl("a", "agent", 1, time.Hour, 1000)}); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	if allowed != 100 {
		t.Errorf("allowed %d calls, want exactly the global burst of 100", allowed)
	}
}
