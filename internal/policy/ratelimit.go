package policy

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Limiter enforces [config.RateLimit] rules with token buckets kept in
// memory, per replica. It outlives snapshots: [Limiter.Update] swaps the
// rules and keeps the buckets of every rule whose name and bucket
// parameters (key, requests, per, burst) are unchanged. It is safe for
// concurrent use.
//
// A rule's key decides what one bucket counts:
//
//   - agent: each agent its own bucket. All unauthenticated callers share
//     the bucket of agent "anonymous".
//   - team: each team one bucket. A principal without a team counts as a
//     team of its own (a bucket keyed by its agent), so leaving the team
//     empty never escapes a team limit.
//   - tool: each tool of each virtual server one bucket, shared by all
//     callers.
//   - global: one bucket for everything the rule covers.
//
// A rule applies to a call when its scope covers the virtual server and
// tool and its subject matches the principal (an empty subject matches
// everyone; a claim subject that fails to evaluate applies, failing
// closed).
//
// Memory stays bounded by the keys in recent use: a bucket untouched for
// as long as it takes to refill completely is full, so forgetting it
// changes nothing; each shard drops such buckets lazily, at most once per
// refill period (and at most once a second).
type Limiter struct {
	mu    sync.Mutex // serializes Update
	rules atomic.Pointer[[]*limitRule]
	seed  maphash.Seed
}

// NewLimiter returns a limiter without rules: it allows everything until
// [Limiter.Update] gives it some.
func NewLimiter() *Limiter {
	return &Limiter{seed: maphash.MakeSeed()}
}

type limitParams struct {
	key      string
	requests int
	per      time.Duration
	burst    int
}

type limitRule struct {
	name    string
	params  limitParams
	subject subject
	vs      string // "" = every virtual server
	tools   globs  // nil = every tool
	buckets *bucketStore
}

const limiterShards = 16

// bucketStore holds the buckets of one rule.
type bucketStore struct {
	perToken float64 // nanoseconds to earn one token
	burst    float64
	fill     int64 // nanoseconds from empty to full
	sweep    int64 // nanoseconds between sweeps of a shard
	shards   [limiterShards]shard
}

type shard struct {
	mu        sync.Mutex
	buckets   map[bucketKey]bucket
	lastSweep int64
}

// bucketKey identifies a bucket within a rule; see keyFor.
type bucketKey struct{ a, b string }

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last refill
}

// Update replaces the rules. Invalid rules yield a
// *[config.ValidationError] (paths "rate_limits[i]...") and change nothing.
func (l *Limiter) Update(rules []config.RateLimit) error {
	var errs []*config.FieldError
	add := func(p, format string, args ...any) {
		errs = append(errs, &config.FieldError{Path: p, Reason: fmt.Sprintf(format, args...)})
	}
	compiled := make([]*limitRule, 0, len(rules))
	names := map[string]bool{}
	for i, r := range rules {
		p := fmt.Sprintf("rate_limits[%d]", i)
		lr := &limitRule{name: r.Name, vs: r.Scope.VirtualServer}
		switch {
		case r.Name == "":
			add(p+".name", "required")
		case names[r.Name]:
			add(p+".name", "duplicate name %q", r.Name)
		}
		names[r.Name] = true
		lr.params = limitParams{key: r.Key, requests: r.Requests, per: time.Duration(r.Per), burst: r.Burst}
		if lr.params.key == "" {
			lr.params.key = "agent"
		}
		if lr.params.burst == 0 {
			lr.params.burst = r.Requests
		}
		switch lr.params.key {
		case "agent", "team", "tool", "global":
		default:
			add(p+".key", "must be agent, team, tool or global, got %q", r.Key)
		}
		if r.Requests <= 0 {
			add(p+".requests", "must be positive")
		}
		if r.Per <= 0 {
			add(p+".per", "must be a positive duration, e.g. 1m")
		}
		if r.Burst < 0 {
			add(p+".burst", "must not be negative")
		}
		sub, ferr := compileSubject(r.Subject, p+".subject")
		if ferr != nil {
			errs = append(errs, ferr)
		}
		lr.subject = sub
		tools, gerrs := compileGlobs(r.Scope.Tools, p+".scope.tools")
		errs = append(errs, gerrs...)
		lr.tools = tools
		compiled = append(compiled, lr)
	}
	if len(errs) > 0 {
		return &config.ValidationError{Fields: errs}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	old := map[string]*limitRule{}
	if cur := l.rules.Load(); cur != nil {
		for _, r := range *cur {
			old[r.name] = r
		}
	}
	for _, r := range compiled {
		if o := old[r.name]; o != nil && o.params == r.params {
			r.buckets = o.buckets
		} else {
			r.buckets = newBucketStore(r.params)
		}
	}
	l.rules.Store(&compiled)
	return nil
}

func newBucketStore(p limitParams) *bucketStore {
	perToken := float64(p.per) / float64(p.requests)
	s := &bucketStore{perToken: perToken, burst: float64(p.burst)}
	s.fill = int64(math.Ceil(perToken * float64(p.burst)))
	s.sweep = max(s.fill, int64(time.Second))
	for i := range s.shards {
		s.shards[i].buckets = map[bucketKey]bucket{}
	}
	return s
}

// keyFor returns the bucket of r that counts a call.
func (r *limitRule) keyFor(p *identity.Principal, vs, tool string) bucketKey {
	switch r.params.key {
	case "team":
		if p.Team == "" {
			return bucketKey{b: p.Agent} // a team of its own
		}
		return bucketKey{a: p.Team}
	case "tool":
		return bucketKey{a: vs, b: tool}
	case "global":
		return bucketKey{}
	}
	return bucketKey{a: p.Agent}
}

// applies reports whether r counts a call.
func (r *limitRule) applies(e *evaluator, vs, tool string) bool {
	if r.vs != "" && r.vs != vs {
		return false
	}
	if r.tools != nil && !r.tools.match(tool) {
		return false
	}
	if !r.subject.matchStatic(e.p) {
		return false
	}
	if r.subject.claim != nil {
		ok, err := e.eval(r.subject.claim)
		return ok || err != nil // a claim that cannot be evaluated applies
	}
	return true
}

type taken struct {
	s   *bucketStore
	key bucketKey
}

// Allow takes one token from every bucket that applies to a call of tool
// on virtual server vs by p (nil means [identity.Anonymous]). If any
// bucket is empty it takes none and returns ok false, the name of the rule
// that allows a call last, and how long until it does (for Retry-After;
// not rounded). now is the call's time.
func (l *Limiter) Allow(p *identity.Principal, vs, tool string, now time.Time) (ok bool, rule string, retryAfter time.Duration) {
	return l.check(p, vs, tool, now, true)
}

// Peek reports what [Limiter.Allow] would answer without taking any token,
// for explanations.
func (l *Limiter) Peek(p *identity.Principal, vs, tool string, now time.Time) (ok bool, rule string, retryAfter time.Duration) {
	return l.check(p, vs, tool, now, false)
}

func (l *Limiter) check(p *identity.Principal, vs, tool string, now time.Time, take bool) (ok bool, rule string, retryAfter time.Duration) {
	rules := l.rules.Load()
	if rules == nil || len(*rules) == 0 {
		return true, "", 0
	}
	if p == nil {
		p = identity.Anonymous
	}
	e := evaluator{p: p} // claim subjects read only principal and claims
	defer e.release()
	t := now.UnixNano()
	var buf [8]taken
	took := buf[:0]
	failed := false
	for _, r := range *rules {
		if !r.applies(&e, vs, tool) {
			continue
		}
		key := r.keyFor(p, vs, tool)
		consume := take && !failed // once a bucket refuses, the others are only asked how long
		got, wait := r.buckets.take(l.shardOf(key), key, t, consume)
		switch {
		case got:
			if consume {
				took = append(took, taken{r.buckets, key})
			}
		case wait > retryAfter || !failed:
			failed, rule, retryAfter = true, r.name, wait
		}
	}
	if !failed {
		return true, "", 0
	}
	for _, tk := range took {
		tk.s.refund(l.shardOf(tk.key), tk.key)
	}
	return false, rule, retryAfter
}

func (l *Limiter) shardOf(k bucketKey) int {
	return int(maphash.Comparable(l.seed, k) % limiterShards)
}

// take refills the bucket key and, if it holds a token, takes it (when
// consume is set) and reports true; otherwise it reports how long until it
// holds one.
func (s *bucketStore) take(shardIdx int, key bucketKey, now int64, consume bool) (bool, time.Duration) {
	sh := &s.shards[shardIdx]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now-sh.lastSweep >= s.sweep {
		s.sweepLocked(sh, now)
	}
	b, found := sh.buckets[key]
	if !found {
		if !consume {
			return true, 0 // a bucket not kept is full; do not keep it for a look
		}
		b = bucket{tokens: s.burst, last: now}
	}
	if elapsed := now - b.last; elapsed > 0 { // a clock stepping back refills nothing
		b.tokens = min(s.burst, b.tokens+float64(elapsed)/s.perToken)
		b.last = now
	}
	if b.tokens >= 1 {
		if consume {
			b.tokens--
		}
		sh.buckets[key] = b
		return true, 0
	}
	sh.buckets[key] = b
	return false, time.Duration(math.Ceil((1 - b.tokens) * s.perToken))
}

// refund returns a token taken by a call that another bucket refused.
func (s *bucketStore) refund(shardIdx int, key bucketKey) {
	sh := &s.shards[shardIdx]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if b, found := sh.buckets[key]; found {
		b.tokens = min(s.burst, b.tokens+1)
		sh.buckets[key] = b
	}
}

// sweepLocked forgets the buckets of sh that have refilled completely.
func (s *bucketStore) sweepLocked(sh *shard, now int64) {
	sh.lastSweep = now
	for k, b := range sh.buckets {
		if now-b.last >= s.fill {
			delete(sh.buckets, k)
		}
	}
}

// size returns how many buckets s holds, for tests.
func (s *bucketStore) size() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].buckets)
		s.shards[i].mu.Unlock()
	}
	return n
}
