// Package guard is the guardrail engine: it inspects tool-call arguments and
// results against the guardrails of a configuration snapshot, scans tool
// definitions for poisoning, and validates arguments against a tool's input
// schema.
//
// # Design
//
// A snapshot's guardrails are compiled once by [Compile] into a [Set]:
// regular expressions and denylist automata are built, globs checked, and
// every field that could fail at call time is validated up front, so
// [Set.Check] never returns an error. Check runs on every call, so it is
// built to do as little as possible:
//
//   - Which rules apply to a (direction, virtual server, tool) triple is
//     computed once and cached in the Set (bounded; the cache dies with the
//     snapshot).
//   - The value is walked once. Each built-in detector (secrets, pii,
//     injection) runs at most once per string however many rules use it;
//     rules then filter the shared matches by kind.
//   - Detectors are hand-written byte scanners, not regular expressions:
//     secrets dispatch on the first byte of each word (an AWS key id is only
//     looked for at a word starting with "A"), PII starts from '@' and from
//     digit runs, and injection phrases are matched over word ids (see
//     words.go) so benign text costs one tokenizing pass. All denylist
//     rules share one Aho–Corasick automaton. Admin regexes run only on
//     strings holding a literal every match must contain, and when their
//     match width is bounded, only on windows around it (regex.go).
//   - Paths ("result.content[0].text") are rendered only for strings that
//     have findings.
//
// A [Finding] never holds the matched text: only the rule, detector, kind,
// JSON path and byte offsets, so findings can go to logs and audit records
// as they are. Redaction replaces each match in place with a typed
// placeholder ("[REDACTED:aws_access_key]") and is idempotent: the
// built-in detectors find nothing of a redacted kind in redacted text
// (FuzzDetectors checks it).
//
// The verdict of a check is the strongest action among its findings:
// block > require_approval > redact > flag. What the caller does with it
// (refuse the call, hold it for approval, forward the redacted value, log)
// is the caller's business.
package guard

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Detectors that are not guardrail rules of their own.
const (
	// DetectorSchema marks argument-validation failures (see
	// [ValidationError.Finding]).
	DetectorSchema = "schema"
	// DetectorPoisoning marks findings of [ScanToolDefinition].
	DetectorPoisoning = "poisoning"
)

// KindTooLarge is the kind of size findings.
const KindTooLarge = "too_large"

// Finding is one thing a detector found. It never holds the matched text.
type Finding struct {
	// Rule is the guardrail's name; "" for built-in checks (schema,
	// poisoning).
	Rule string `json:"rule,omitempty"`
	// Detector is secrets, pii, injection, regex, denylist, size, schema or
	// poisoning.
	Detector string `json:"detector"`
	// Kind says what was found: aws_access_key, email, instruction_override,
	// too_large... For regex and denylist rules it is the rule's name.
	Kind string `json:"kind"`
	// Path is where, as a JSON path: "args.text", "result.content[0].text",
	// "tool.description".
	Path string `json:"path"`
	// Start and End are byte offsets of the match in the string at Path,
	// before any redaction. For size findings Start is 0 and End is the
	// value's JSON-encoded length.
	Start int `json:"start"`
	End   int `json:"end"`
	// Score is 0..1. For injection and poisoning it is the combined score of
	// the whole string (or tool definition) that crossed the threshold; for
	// deterministic detectors it is 1.
	Score float64 `json:"score"`
	// Action is the rule's action; "" for built-in checks.
	Action string `json:"action,omitempty"`
}

// Match is one span a standalone detector found in a text.
type Match struct {
	Kind       string
	Start, End int
	// Score is 1 for deterministic detectors; for high_entropy it is the
	// normalized entropy and for injection signals the signal's weight.
	Score float64
}

// Result is the outcome of [Set.Check].
type Result struct {
	// Findings are sorted by path, then offset. At most [MaxFindings] are
	// kept; the verdict and redaction account for all of them.
	Findings []Finding
	// Verdict is the strongest action among the findings: "" (none), flag,
	// redact, require_approval or block.
	Verdict string
	// masked holds, by path, the strings (and card numbers) in which a
	// flag rule found a secret or personal data, as they are to be
	// recorded: with those spans masked too (see [Result.Recorded]).
	masked map[string]string
}

// Masks reports whether [Result.Recorded] masks anything.
func (r Result) Masks() bool { return len(r.masked) > 0 }

// Recorded returns what a record of v (Check's output) should keep: v
// itself, or, when flag rules found secrets or personal data in it (which
// flag leaves in place for the upstream), a copy with those spans masked
// as redaction would mask them. v is not modified. The audit trail keeps
// this, so that it does not become a store of the credentials and
// personal data it flagged.
func (r Result) Recorded(root string, v any) any {
	if len(r.masked) == 0 {
		return v
	}
	var path []seg
	var rec func(v any) any
	rec = func(v any) any {
		switch x := v.(type) {
		case string, float64:
			if m, ok := r.masked[renderPath(root, path)]; ok {
				return m
			}
		case map[string]any:
			y := make(map[string]any, len(x))
			for k, e := range x {
				path = append(path, seg{key: k, idx: -1})
				y[k] = rec(e)
				path = path[:len(path)-1]
			}
			return y
		case []any:
			y := make([]any, len(x))
			for i, e := range x {
				path = append(path, seg{idx: i})
				y[i] = rec(e)
				path = path[:len(path)-1]
			}
			return y
		}
		return v
	}
	return rec(v)
}

// MaxFindings bounds the findings one check records.
const MaxFindings = 1000

// actionRank orders actions for the verdict.
func actionRank(a string) int {
	switch a {
	case config.ActionFlag:
		return 1
	case config.ActionRedact:
		return 2
	case config.ActionRequireApproval:
		return 3
	case config.ActionBlock:
		return 4
	}
	return 0
}

var rankAction = [...]string{"", config.ActionFlag, config.ActionRedact, config.ActionRequireApproval, config.ActionBlock}

// StrongerAction reports whether action a outranks action b in a verdict.
func StrongerAction(a, b string) bool { return actionRank(a) > actionRank(b) }

type detector uint8

const (
	detSecrets detector = iota + 1
	detPII
	detInjection
	detRegex
	detDenylist
	detSize
)

var detectorNames = map[string]detector{
	config.DetectorSecrets:   detSecrets,
	config.DetectorPII:       detPII,
	config.DetectorInjection: detInjection,
	config.DetectorRegex:     detRegex,
	config.DetectorDenylist:  detDenylist,
	config.DetectorSize:      detSize,
}

const (
	dirRequest  uint8 = 1
	dirResponse uint8 = 2
)

// rule is one compiled guardrail.
type rule struct {
	name      string
	detName   string
	det       detector
	dirs      uint8
	vs        string
	tools     []string // nil: every tool
	kinds     map[string]bool
	re        *regexp.Regexp
	reLits    []literal // one of them occurs in every match of re; nil: unknown
	reWidth   int       // longest match in bytes; -1: unbounded
	terms     []string
	deny      int // index among the set's denylist rules
	maxBytes  int64
	threshold float64
	action    string
	rank      int
}

func (r *rule) wants(kind string) bool { return r.kinds == nil || r.kinds[kind] }

func (r *rule) inScope(dir uint8, vs, tool string) bool {
	if r.dirs&dir == 0 {
		return false
	}
	if r.vs != "" && r.vs != vs {
		return false
	}
	if r.tools == nil {
		return true
	}
	for _, g := range r.tools {
		if g == "*" || g == tool {
			return true
		}
		if ok, _ := path.Match(g, tool); ok {
			return true
		}
	}
	return false
}

// Set is the guardrails of one snapshot, compiled once. It is safe for
// concurrent use and immutable but for an internal cache.
type Set struct {
	rules []*rule
	// deny is one automaton for the terms of every denylist rule.
	deny *denylist

	// scopes caches, per (direction, virtual server, tool), the rules that
	// apply. Copy on write: reads are one atomic load and a map lookup.
	mu     sync.Mutex
	scopes atomic.Pointer[map[scopeKey]*applicable]
}

type scopeKey struct {
	dir      uint8
	vs, tool string
}

// applicable is the rules of one scope, split by how they run.
type applicable struct {
	text []*rule // run on every string
	size []*rule
	// numbers: a pii rule wants credit cards, which may come as JSON numbers.
	numbers bool
}

// maxScopes bounds the scope cache; past it, scopes are computed per call.
const maxScopes = 4096

// The document's validation checks guardrails' kinds against what the
// detectors report.
func init() {
	config.DetectorKinds = map[string][]string{
		config.DetectorSecrets:   SecretKinds,
		config.DetectorPII:       PIIKinds,
		config.DetectorInjection: InjectionKinds,
	}
}

// Compile compiles guardrails. Disabled rules are validated but never
// evaluated. Errors name the field, as in the declarative document:
// "guardrails[2].pattern: bad regular expression: ...". An empty or nil
// list gives an empty set.
func Compile(rules []config.Guardrail) (*Set, error) {
	s := &Set{}
	var errs []error
	seen := map[string]bool{}
	for i, g := range rules {
		r, err := compileRule(fmt.Sprintf("guardrails[%d]", i), g, seen)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !g.Disabled {
			s.rules = append(s.rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var terms [][]string
	for _, r := range s.rules {
		if r.det == detDenylist {
			r.deny = len(terms)
			terms = append(terms, r.terms)
		}
	}
	if len(terms) > 0 {
		s.deny = newDenylist(terms)
	}
	return s, nil
}

func compileRule(p string, g config.Guardrail, seen map[string]bool) (*rule, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", p, field, fmt.Sprintf(format, args...)))
	}
	r := &rule{name: g.Name, vs: g.Scope.VirtualServer, action: g.Action, rank: actionRank(g.Action), maxBytes: g.MaxBytes, threshold: g.Threshold}
	switch {
	case g.Name == "":
		bad("name", "required")
	case seen[g.Name]:
		bad("name", "duplicate name %q", g.Name)
	}
	seen[g.Name] = true
	switch g.Direction {
	case config.DirectionRequest:
		r.dirs = dirRequest
	case config.DirectionResponse:
		r.dirs = dirResponse
	case config.DirectionBoth, "":
		r.dirs = dirRequest | dirResponse
	default:
		bad("direction", "must be request, response or both, got %q", g.Direction)
	}
	for i, t := range g.Scope.Tools {
		if t == "" {
			bad(fmt.Sprintf("scope.tools[%d]", i), "empty pattern")
		} else if _, err := path.Match(t, ""); err != nil {
			bad(fmt.Sprintf("scope.tools[%d]", i), "bad pattern %q: %v", t, err)
		}
	}
	if len(g.Scope.Tools) > 0 && !slices.Contains(g.Scope.Tools, "*") {
		r.tools = g.Scope.Tools
	}
	det, ok := detectorNames[g.Detector]
	r.det, r.detName = det, g.Detector
	if !ok {
		bad("detector", "must be secrets, pii, injection, regex, denylist or size, got %q", g.Detector)
	}
	var known []string
	switch det {
	case detSecrets:
		known = SecretKinds
	case detPII:
		known = PIIKinds
	case detInjection:
		known = InjectionKinds
		if r.threshold == 0 {
			r.threshold = 0.5
		}
	case detRegex:
		if g.Pattern == "" {
			bad("pattern", "required for detector regex")
			break
		}
		re, err := regexp.Compile(g.Pattern)
		if err != nil {
			bad("pattern", "bad regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			break
		}
		r.re = re
		r.reLits = requiredLiterals(g.Pattern)
		r.reWidth = -1
		if r.reLits != nil {
			r.reWidth = maxWidth(g.Pattern)
		}
	case detDenylist:
		if len(g.Terms) == 0 {
			bad("terms", "required for detector denylist")
			break
		}
		for i, t := range g.Terms {
			if strings.TrimSpace(t) == "" {
				bad(fmt.Sprintf("terms[%d]", i), "empty term")
			}
		}
		r.terms = g.Terms
	case detSize:
		if g.MaxBytes <= 0 {
			bad("max_bytes", "required for detector size (a positive byte count)")
		}
	}
	if len(g.Kinds) > 0 {
		if known == nil {
			bad("kinds", "only secrets, pii and injection detectors have kinds")
		} else {
			r.kinds = map[string]bool{}
			for i, k := range g.Kinds {
				if !slices.Contains(known, k) {
					bad(fmt.Sprintf("kinds[%d]", i), "unknown %s kind %q (known: %s)", g.Detector, k, strings.Join(known, ", "))
				}
				r.kinds[k] = true
			}
		}
	}
	if g.Threshold < 0 || g.Threshold > 1 {
		bad("threshold", "must be between 0 and 1")
	}
	switch g.Action {
	case config.ActionBlock, config.ActionFlag, config.ActionRequireApproval:
	case config.ActionRedact:
		if det == detSize {
			bad("action", "a size detector cannot redact; use block or flag")
		}
	case "":
		bad("action", "required: block, redact, flag or require_approval")
	default:
		bad("action", "must be block, redact, flag or require_approval, got %q", g.Action)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Empty reports whether the set has no enabled rules, so callers can skip
// decoding values they would only check.
func (s *Set) Empty() bool { return s == nil || len(s.rules) == 0 }

// Rules returns the number of enabled rules.
func (s *Set) Rules() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

func (s *Set) applicable(dir uint8, vs, tool string) *applicable {
	key := scopeKey{dir, vs, tool}
	full := false
	if m := s.scopes.Load(); m != nil {
		if a, ok := (*m)[key]; ok {
			return a
		}
		full = len(*m) >= maxScopes
	}
	a := &applicable{}
	for _, r := range s.rules {
		if !r.inScope(dir, vs, tool) {
			continue
		}
		if r.det == detSize {
			a.size = append(a.size, r)
			continue
		}
		a.text = append(a.text, r)
		if r.det == detPII && r.wants(KindCreditCard) {
			a.numbers = true
		}
	}
	if full {
		return a
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.scopes.Load()
	n := 0
	if old != nil {
		n = len(*old)
	}
	if n < maxScopes {
		m := make(map[scopeKey]*applicable, n+1)
		if old != nil {
			for k, v := range *old {
				m[k] = v
			}
		}
		m[key] = a
		s.scopes.Store(&m)
	}
	return a
}

// Check inspects v, a decoded JSON value (map[string]any, []any, string,
// float64, bool, nil; map[string]string and []string are accepted too), as
// the arguments (direction request) or result (direction response) of a
// call to tool in virtual server vs. Rules out of scope are skipped. root is
// the path prefix of findings: "args" or "result".
//
// Redact rules replace each match in place with "[REDACTED:<kind>]": v is
// modified, so the caller must own it. Check returns the possibly new root
// (a new string when v itself is a string; v otherwise).
//
// In responses, base64 payloads of MCP image and audio content ("data" of
// an object whose "type" is image or audio) and of blob resources ("blob")
// are not scanned; they still count for size. Object keys are not scanned.
// A direction other than request or response matches no rule.
func (s *Set) Check(direction, vs, tool, root string, v any) (any, Result) {
	if s.Empty() {
		return v, Result{}
	}
	var dir uint8
	switch direction {
	case config.DirectionRequest:
		dir = dirRequest
	case config.DirectionResponse:
		dir = dirResponse
	default:
		return v, Result{}
	}
	a := s.applicable(dir, vs, tool)
	if len(a.text) == 0 && len(a.size) == 0 {
		return v, Result{}
	}
	c := checkerPool.Get().(*checker)
	c.reset(s, a, dir == dirResponse, root)
	defer checkerPool.Put(c)

	if len(a.size) > 0 {
		// Exact encoded length only when the cheap bounds (every string
		// byte escaped or none) do not decide every size rule.
		lo, hi := jsonLenBounds(v)
		size := int64(-1)
		for _, r := range a.size {
			if hi <= r.maxBytes {
				continue
			}
			if size < 0 {
				size = lo
				if lo <= r.maxBytes || lo != hi {
					size = jsonLen(v)
				}
			}
			if size > r.maxBytes {
				c.add(Finding{Rule: r.name, Detector: config.DetectorSize, Kind: KindTooLarge, Path: root, End: int(min(size, int64(^uint(0)>>1))), Score: 1, Action: r.action}, r.rank)
			}
		}
	}
	if len(a.text) > 0 {
		if nv, changed := c.walk(v); changed {
			v = nv
		}
	}
	var res Result
	if len(c.masked) > 0 {
		res.masked = c.masked
		c.masked = nil
	}
	if len(c.findings) > 0 {
		res.Findings = slices.Clone(c.findings)
		slices.SortStableFunc(res.Findings, func(x, y Finding) int {
			if c := strings.Compare(x.Path, y.Path); c != 0 {
				return c
			}
			return x.Start - y.Start
		})
	}
	res.Verdict = rankAction[c.verdict]
	return v, res
}
