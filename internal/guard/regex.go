package guard

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// Admin regexes are RE2 (linear time) but Go's engine still costs tens of
// nanoseconds a byte. Most admin patterns contain a literal every match
// must contain ("CUST-", ".corp.example.com", "(?i)nightingale"), so each
// rule carries the literals one of which must occur, found from the
// pattern's syntax tree, and the regex runs only on strings containing
// one. Patterns without such a literal (`\d{3}-\d{2}`... has "-") always
// run.

// When the pattern also has a bounded match width and no line or text
// anchors, the regex runs only on windows around the occurrences of its
// literals (width + one byte of context on each side, for \b): a pattern
// like `\b\d{3}-\d{2}-\d{4}\b` over 10 KB of text then costs a few
// windows, not 10 KB of regex steps.

// literal is a required substring, compared ASCII case-insensitively when
// fold is set (then s is lowercase).
type literal struct {
	s    string
	fold bool
}

const maxLiterals = 16

// requiredLiterals returns literals one of which occurs in every match of
// the pattern; nil when it cannot tell.
func requiredLiterals(pattern string) []literal {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	lits, ok := required(re.Simplify())
	if !ok {
		return nil
	}
	return lits
}

func required(re *syntax.Regexp) ([]literal, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		fold := re.Flags&syntax.FoldCase != 0
		if s == "" || fold && !isASCII(s) {
			return nil, false
		}
		if fold {
			s = strings.ToLower(s)
		}
		return []literal{{s, fold}}, true
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []literal
		for _, sub := range re.Sub {
			if lits, ok := required(sub); ok && better(lits, best) {
				best = lits
			}
		}
		return best, best != nil
	case syntax.OpAlternate:
		var all []literal
		for _, sub := range re.Sub {
			lits, ok := required(sub)
			if !ok || len(all)+len(lits) > maxLiterals {
				return nil, false
			}
			all = append(all, lits...)
		}
		return all, len(all) > 0
	}
	return nil, false
}

// better prefers the set whose shortest literal is longest: longer
// literals are rarer.
func better(a, b []literal) bool {
	if b == nil {
		return true
	}
	short := func(ls []literal) int {
		m := 1 << 30
		for _, l := range ls {
			m = min(m, len(l.s))
		}
		return m
	}
	return short(a) > short(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// containsLiteral reports whether s contains one of lits.
func containsLiteral(s string, lits []literal) bool {
	for _, l := range lits {
		if l.fold {
			if indexFold(s, l.s) >= 0 {
				return true
			}
		} else if strings.Contains(s, l.s) {
			return true
		}
	}
	return false
}

// maxWidth returns the longest match of the pattern in bytes, or -1 when
// it is unbounded or the pattern has anchors windows would break.
func maxWidth(pattern string) int {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return -1
	}
	w := width(re.Simplify())
	if w > 1<<12 {
		return -1
	}
	return w
}

func width(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
			if re.Flags&syntax.FoldCase != 0 {
				n += 2 // a fold may be longer (k → K, U+212A)
			}
		}
		return n
	case syntax.OpCharClass:
		n := 1
		for i := 1; i < len(re.Rune); i += 2 {
			n = max(n, utf8.RuneLen(min(re.Rune[i], utf8.MaxRune)))
		}
		return n
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return utf8.UTFMax
	case syntax.OpCapture:
		return width(re.Sub[0])
	case syntax.OpQuest:
		return width(re.Sub[0])
	case syntax.OpRepeat:
		if re.Max < 0 {
			return -1
		}
		w := width(re.Sub[0])
		if w < 0 {
			return -1
		}
		return w * re.Max
	case syntax.OpConcat:
		n := 0
		for _, sub := range re.Sub {
			w := width(sub)
			if w < 0 {
				return -1
			}
			n += w
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, sub := range re.Sub {
			w := width(sub)
			if w < 0 {
				return -1
			}
			n = max(n, w)
		}
		return n
	}
	// Star, Plus, anchors (^ $ \A \z), anything else.
	return -1
}

// maxWindows bounds the windows of one string; past it the regex runs on
// the whole string.
const maxWindows = 64

// findRegex appends the matches of r's regex in s.
func (r *rule) findRegex(dst []Match, s string) []Match {
	if r.reLits != nil && !containsLiteral(s, r.reLits) {
		return dst
	}
	if r.reWidth < 0 || len(s) < 512 {
		return appendRegexMatches(dst, r, s, 0, 0, len(s))
	}
	var wins [maxWindows][2]int
	n := 0
	for _, l := range r.reLits {
		for off := 0; off < len(s); {
			var k int
			if l.fold {
				k = indexFold(s[off:], l.s)
			} else {
				k = strings.Index(s[off:], l.s)
			}
			if k < 0 {
				break
			}
			p := off + k
			off = p + 1
			if n == maxWindows {
				return appendRegexMatches(dst, r, s, 0, 0, len(s))
			}
			wins[n] = [2]int{max(0, p-r.reWidth-1), min(len(s), p+len(l.s)+r.reWidth+1)}
			n++
		}
	}
	ws := wins[:n]
	slices.SortFunc(ws, func(a, b [2]int) int { return a[0] - b[0] })
	base := len(dst)
	for i := 0; i < len(ws); {
		lo, hi := ws[i][0], ws[i][1]
		for i++; i < len(ws) && ws[i][0] <= hi; i++ {
			hi = max(hi, ws[i][1])
		}
		dst = appendRegexMatches(dst, r, s, base, lo, hi)
	}
	return dst
}

// appendRegexMatches runs the regex on s[lo:hi]. Matches touching a window
// edge inside s may be artifacts of the cut (\b sees no context there)
// and are dropped: real ones lie a byte inside.
func appendRegexMatches(dst []Match, r *rule, s string, base, lo, hi int) []Match {
	for _, loc := range r.re.FindAllStringIndex(s[lo:hi], maxMatches) {
		st, en := lo+loc[0], lo+loc[1]
		if en <= st || lo > 0 && st == lo || hi < len(s) && en == hi {
			continue
		}
		if n := len(dst); n > base && dst[n-1].End > st {
			continue
		}
		dst = append(dst, Match{Kind: r.name, Start: st, End: en, Score: 1})
	}
	return dst
}
