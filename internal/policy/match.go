package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// anonymousAgent is the agent name of [identity.Anonymous]; a subject with
// this agent name is the only one that matches unauthenticated callers.
const anonymousAgent = "anonymous"

// isAnonymous reports whether p is an unauthenticated caller.
func isAnonymous(p *identity.Principal) bool { return p.Method == "anonymous" }

type subjectKind uint8

const (
	subjectEveryone subjectKind = iota // rate limits without a subject
	subjectAgent
	subjectAnyAgent // agent "*": every authenticated principal
	subjectAnonymous
	subjectTeam
	subjectRole
	subjectClaim
)

// subject is a compiled [config.Subject].
type subject struct {
	kind  subjectKind
	value string
	claim *program
	desc  string // "team qa", for explanations
}

// compileSubject compiles s; p is the config path of s for errors.
func compileSubject(s config.Subject, p string) (subject, *config.FieldError) {
	kind, value := s.Kind()
	sub := subject{value: value, desc: kind + " " + value}
	switch kind {
	case "":
		sub.kind, sub.desc = subjectEveryone, "everyone"
	case "agent":
		switch value {
		case "*":
			sub.kind = subjectAnyAgent
		case anonymousAgent:
			sub.kind = subjectAnonymous
		default:
			sub.kind = subjectAgent
		}
	case "team":
		sub.kind = subjectTeam
	case "role":
		sub.kind = subjectRole
	case "claim":
		prg, err := compileExpr(ExprClaim, value)
		if err != nil {
			return sub, &config.FieldError{Path: p + ".claim", Reason: err.Error()}
		}
		sub.kind, sub.claim = subjectClaim, prg
	}
	return sub, nil
}

// matchStatic reports whether the subject matches p without evaluating CEL.
// For claim subjects it reports whether the claim must be evaluated:
// claims apply only to principals that carry identity-provider claims.
func (s *subject) matchStatic(p *identity.Principal) bool {
	switch s.kind {
	case subjectEveryone:
		return true
	case subjectAnonymous:
		return isAnonymous(p)
	}
	if isAnonymous(p) {
		return false
	}
	switch s.kind {
	case subjectAgent:
		return p.Agent == s.value
	case subjectAnyAgent:
		return true
	case subjectTeam:
		return p.Team == s.value
	case subjectRole:
		return slices.Contains(p.Roles, s.value)
	case subjectClaim:
		return p.Claims != nil
	}
	return false
}

// globKind classifies a pattern so most matches avoid path.Match.
type globKind uint8

const (
	globExact  globKind = iota // no metacharacters
	globAll                    // "*": every name, even with '/'
	globPrefix                 // "read_*": prefix, then no '/'
	globMatch                  // anything else: path.Match
)

type glob struct {
	kind globKind
	pat  string // the pattern, or its prefix for globPrefix
}

func compileGlob(pat string) glob {
	switch i := strings.IndexAny(pat, `*?[\`); {
	case pat == "*":
		return glob{kind: globAll}
	case i < 0:
		return glob{kind: globExact, pat: pat}
	case i == len(pat)-1 && pat[i] == '*':
		return glob{kind: globPrefix, pat: pat[:i]}
	}
	return glob{kind: globMatch, pat: pat}
}

func (g *glob) match(name string) bool {
	switch g.kind {
	case globExact:
		return name == g.pat
	case globAll:
		return true
	case globPrefix:
		return strings.HasPrefix(name, g.pat) && !strings.Contains(name[len(g.pat):], "/")
	}
	ok, _ := path.Match(g.pat, name) // patterns are checked by compileGlobs
	return ok
}

// globs is a compiled list of patterns; nil matches nothing.
type globs []glob

func compileGlobs(pats []string, p string) (globs, []*config.FieldError) {
	if pats == nil {
		return nil, nil
	}
	var errs []*config.FieldError
	gs := make(globs, 0, len(pats))
	for i, pat := range pats {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			errs = append(errs, &config.FieldError{Path: fmt.Sprintf("%s[%d]", p, i), Reason: fmt.Sprintf("bad pattern %q", pat)})
			continue
		}
		gs = append(gs, compileGlob(pat))
	}
	return gs, errs
}

func (gs globs) match(name string) bool {
	for i := range gs {
		if gs[i].match(name) {
			return true
		}
	}
	return false
}

// matchRequest reports whether gs matches r's name, or, for a control that
// restricts (deny, require_approval), the name r's tool or prompt has at
// its upstream (see [Request.UpstreamName]).
func (gs globs) matchRequest(r *Request, effect string) bool {
	if gs.match(r.Name) {
		return true
	}
	return r.UpstreamName != "" && effect != config.EffectAllow && gs.match(r.UpstreamName)
}
