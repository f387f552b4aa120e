package guard

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// denylist finds the terms of every denylist rule of a set
// case-insensitively, as whole words, with one Aho–Corasick pass over the
// text whatever the number of terms and rules. Text is lowercased rune by
// rune as it is fed (no copy), so offsets stay those of the original.
type denylist struct {
	class  [256]uint8 // byte → column; 0 for bytes in no term; ASCII folded
	ncols  int
	delta  []int32 // state*ncols + column → next state's row (next*ncols), negated if it ends a term
	term   []int32 // state → index of the term ending there, -1
	dict   []int32 // state → nearest fail-ancestor with a term, -1
	hasOut []bool  // state ends some term, directly or by suffix
	terms  []dterm
}

type dterm struct {
	runes              int
	wordStart, wordEnd bool // the term's first/last rune is a letter or digit
	rules              []int
}

// denyHit is one whole-word occurrence of a term.
type denyHit struct {
	start, end int
	term       int32
}

// newDenylist builds the automaton for rules[i], the terms of denylist
// rule i.
func newDenylist(rules [][]string) *denylist {
	d := &denylist{}
	var lowered []string
	index := map[string]int{}
	for ri, terms := range rules {
		for _, t := range terms {
			t = strings.ToLower(strings.TrimSpace(t))
			if t == "" {
				continue
			}
			ti, ok := index[t]
			if !ok {
				ti = len(lowered)
				index[t] = ti
				lowered = append(lowered, t)
				first, _ := utf8.DecodeRuneInString(t)
				last, _ := utf8.DecodeLastRuneInString(t)
				d.terms = append(d.terms, dterm{runes: utf8.RuneCountInString(t), wordStart: isWordRune(first), wordEnd: isWordRune(last)})
			}
			if !slices.Contains(d.terms[ti].rules, ri) {
				d.terms[ti].rules = append(d.terms[ti].rules, ri)
			}
		}
	}
	col := uint8(1)
	for _, t := range lowered {
		for i := 0; i < len(t); i++ {
			if d.class[t[i]] == 0 {
				d.class[t[i]] = col
				col++
			}
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		d.class[c] = d.class[c+'a'-'A']
	}
	d.ncols = int(col)
	// Trie.
	next := []map[uint8]int32{{}}
	d.term = []int32{-1}
	for ti, t := range lowered {
		s := int32(0)
		for i := 0; i < len(t); i++ {
			c := d.class[t[i]]
			n, ok := next[s][c]
			if !ok {
				n = int32(len(next))
				next = append(next, map[uint8]int32{})
				d.term = append(d.term, -1)
				next[s][c] = n
			}
			s = n
		}
		d.term[s] = int32(ti)
	}
	// Failure links by breadth-first search, folded into a full DFA.
	n := len(next)
	d.delta = make([]int32, n*d.ncols)
	d.dict = make([]int32, n)
	d.hasOut = make([]bool, n)
	fail := make([]int32, n)
	var queue []int32
	d.dict[0] = -1
	for c := 1; c < d.ncols; c++ {
		if nx, ok := next[0][uint8(c)]; ok {
			d.delta[c] = nx
			queue = append(queue, nx)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := fail[s]
		if d.term[f] >= 0 {
			d.dict[s] = f
		} else {
			d.dict[s] = d.dict[f]
		}
		d.hasOut[s] = d.term[s] >= 0 || d.dict[s] >= 0
		for c := 1; c < d.ncols; c++ {
			if nx, ok := next[s][uint8(c)]; ok {
				d.delta[int(s)*d.ncols+c] = nx
				fail[nx] = d.delta[int(f)*d.ncols+c]
				queue = append(queue, nx)
			} else {
				d.delta[int(s)*d.ncols+c] = d.delta[int(f)*d.ncols+c]
			}
		}
	}
	// Encode transitions as row offsets, negative when the target state
	// reports a term, so the scan loop needs no multiply and no lookup.
	for k, st := range d.delta {
		row := st * int32(d.ncols)
		if d.hasOut[st] {
			row = -row - 1
		}
		d.delta[k] = row
	}
	return d
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isWord(byte(r))
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// appendHits appends every whole-word occurrence of every term in s.
func (d *denylist) appendHits(dst []denyHit, s string) []denyHit {
	row := int32(0) // current state's row offset
	var buf [utf8.UTFMax]byte
	delta, class := d.delta, &d.class
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			row = delta[row+int32(class[c])]
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			n := utf8.EncodeRune(buf[:], unicode.ToLower(r))
			for k := 0; k < n; k++ {
				if row < 0 {
					row = -row - 1
				}
				row = delta[row+int32(class[buf[k]])]
			}
			i += size
		}
		if row >= 0 {
			continue
		}
		row = -row - 1
		for st := row / int32(d.ncols); st >= 0; st = d.dict[st] {
			ti := d.term[st]
			if ti < 0 {
				continue
			}
			t := &d.terms[ti]
			start := i
			for k := 0; k < t.runes && start > 0; k++ {
				_, sz := utf8.DecodeLastRuneInString(s[:start])
				start -= sz
			}
			if t.wordStart && start > 0 {
				if r, _ := utf8.DecodeLastRuneInString(s[:start]); isWordRune(r) {
					continue
				}
			}
			if t.wordEnd && i < len(s) {
				if r, _ := utf8.DecodeRuneInString(s[i:]); isWordRune(r) {
					continue
				}
			}
			dst = append(dst, denyHit{start, i, ti})
		}
	}
	return dst
}

// appendRuleMatches appends the leftmost-longest, non-overlapping hits of
// rule's terms.
func (d *denylist) appendRuleMatches(dst []Match, hits []denyHit, rule int, kind string) []Match {
	base := len(dst)
	for _, h := range hits {
		if slices.Contains(d.terms[h.term].rules, rule) {
			dst = append(dst, Match{Kind: kind, Start: h.start, End: h.end, Score: 1})
		}
	}
	ms := dst[base:]
	if len(ms) < 2 {
		return dst
	}
	slices.SortFunc(ms, func(a, b Match) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out := dst[:base]
	end := -1
	for _, m := range ms {
		if m.Start >= end {
			out = append(out, m)
			end = m.End
		}
	}
	return out
}
