package guard

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// checker is the state of one Check; pooled.
type checker struct {
	set      *Set
	a        *applicable
	response bool
	root     string
	path     []seg
	findings []Finding
	verdict  int
	n        int // findings seen, recorded or not

	// Per string: the shared detectors' matches, computed on demand.
	have    uint8
	secrets []Match
	pii     []Match
	inj     []Match
	tmp     []Match
	hits    []denyHit
	spans   []span
	// flagged are the spans of secrets and personal data flag rules
	// found in the current string; masked, their records by path (see
	// [Result.Recorded]).
	flagged  []span
	masked   map[string]string
	pathStr  string
	pathDone bool
}

type seg struct {
	key string
	idx int // -1 for keys
}

type span struct {
	start, end int
	kind       string
}

var checkerPool = sync.Pool{New: func() any { return new(checker) }}

func (c *checker) reset(s *Set, a *applicable, response bool, root string) {
	c.set, c.a, c.response, c.root = s, a, response, root
	c.path = c.path[:0]
	clear(c.findings) // drop references for the pool
	c.findings = c.findings[:0]
	c.verdict, c.n = 0, 0
	c.masked = nil
}

func (c *checker) add(f Finding, rank int) {
	c.verdict = max(c.verdict, rank)
	c.n++
	if len(c.findings) < MaxFindings {
		c.findings = append(c.findings, f)
	}
}

// walk checks every string under v; containers are modified in place. It
// returns v's replacement when v itself is a redacted string or number.
func (c *checker) walk(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		if ns, changed := c.str(x); changed {
			return ns, true
		}
	case map[string]any:
		binary := c.response && isBinaryContent(x)
		for k, e := range x {
			if binary && (k == "data" || k == "blob") {
				continue
			}
			switch e.(type) {
			case nil, bool:
				continue
			}
			c.path = append(c.path, seg{key: k, idx: -1})
			if nv, changed := c.walk(e); changed {
				x[k] = nv
			}
			c.path = c.path[:len(c.path)-1]
		}
	case []any:
		for i, e := range x {
			switch e.(type) {
			case nil, bool:
				continue
			}
			c.path = append(c.path, seg{idx: i})
			if nv, changed := c.walk(e); changed {
				x[i] = nv
			}
			c.path = c.path[:len(c.path)-1]
		}
	case map[string]string:
		for k, e := range x {
			c.path = append(c.path, seg{key: k, idx: -1})
			if nv, changed := c.str(e); changed {
				x[k] = nv
			}
			c.path = c.path[:len(c.path)-1]
		}
	case []string:
		for i, e := range x {
			c.path = append(c.path, seg{idx: i})
			if nv, changed := c.str(e); changed {
				x[i] = nv
			}
			c.path = c.path[:len(c.path)-1]
		}
	case float64:
		if c.a.numbers && x >= 1e12 && x < 1e19 && x == math.Trunc(x) {
			return c.number(x)
		}
	}
	return v, false
}

// isBinaryContent reports whether m is MCP image or audio content or a blob
// resource, whose base64 payload is not text.
func isBinaryContent(m map[string]any) bool {
	if t, ok := m["type"].(string); ok && (t == "image" || t == "audio") {
		return true
	}
	_, blob := m["blob"]
	return blob
}

// number checks an integral JSON number for credit card numbers, which
// clients sometimes send unquoted.
func (c *checker) number(x float64) (any, bool) {
	var buf [24]byte
	digits := strconv.AppendFloat(buf[:0], x, 'f', -1, 64)
	if !isCardNumber(string(digits)) {
		return x, false
	}
	c.pathDone = false
	redact := false
	for _, r := range c.a.text {
		if r.det != detPII || !r.wants(KindCreditCard) {
			continue
		}
		c.add(Finding{Rule: r.name, Detector: r.detName, Kind: KindCreditCard, Path: c.pathString(), End: len(digits), Score: 1, Action: r.action}, r.rank)
		redact = redact || r.action == config.ActionRedact
		if r.action == config.ActionFlag {
			c.mask(placeholder(KindCreditCard))
		}
	}
	if redact {
		return placeholder(KindCreditCard), true
	}
	return x, false
}

// str runs the applicable rules over one string.
func (c *checker) str(s string) (string, bool) {
	if s == "" {
		return s, false
	}
	c.have = 0
	c.spans = c.spans[:0]
	c.flagged = c.flagged[:0]
	c.pathDone = false
	for _, r := range c.a.text {
		var ms []Match
		score := 1.0
		switch r.det {
		case detSecrets:
			if c.have&(1<<detSecrets) == 0 {
				c.secrets = appendSecrets(c.secrets[:0], s)
				c.have |= 1 << detSecrets
			}
			ms = c.secrets
		case detPII:
			if c.have&(1<<detPII) == 0 {
				c.pii = appendPII(c.pii[:0], s)
				c.have |= 1 << detPII
			}
			ms = c.pii
		case detInjection:
			if c.have&(1<<detInjection) == 0 {
				c.inj = appendInjection(c.inj[:0], s, modeInjection)
				c.have |= 1 << detInjection
			}
			ms = c.inj
			if len(ms) == 0 {
				continue
			}
			if r.kinds == nil {
				score = combineScore(ms)
			} else {
				score = combineScoreKinds(ms, r.kinds)
			}
			if score < r.threshold {
				continue
			}
		case detRegex:
			c.tmp = r.findRegex(c.tmp[:0], s)
			ms = c.tmp
		case detDenylist:
			if c.have&(1<<detDenylist) == 0 {
				c.hits = c.set.deny.appendHits(c.hits[:0], s)
				c.have |= 1 << detDenylist
			}
			if len(c.hits) == 0 {
				continue
			}
			c.tmp = c.set.deny.appendRuleMatches(c.tmp[:0], c.hits, r.deny, r.name)
			ms = c.tmp
		}
		for _, m := range ms {
			if !r.wants(m.Kind) {
				continue
			}
			c.add(Finding{Rule: r.name, Detector: r.detName, Kind: m.Kind, Path: c.pathString(), Start: m.Start, End: m.End, Score: score, Action: r.action}, r.rank)
			switch {
			case r.action == config.ActionRedact:
				c.spans = append(c.spans, span{m.Start, m.End, m.Kind})
			case r.action == config.ActionFlag && (r.det == detSecrets || r.det == detPII):
				c.flagged = append(c.flagged, span{m.Start, m.End, m.Kind})
			}
		}
	}
	if len(c.flagged) > 0 {
		c.mask(redact(s, append(c.flagged, c.spans...)))
	}
	if len(c.spans) == 0 {
		return s, false
	}
	return redact(s, c.spans), true
}

// mask records how the value at the current path is to be recorded.
func (c *checker) mask(recorded string) {
	if c.masked == nil {
		c.masked = map[string]string{}
	}
	c.masked[c.pathString()] = recorded
}

// maxMatches bounds the matches of one admin regex in one string.
const maxMatches = 256

func (c *checker) pathString() string {
	if !c.pathDone {
		c.pathStr = renderPath(c.root, c.path)
		c.pathDone = true
	}
	return c.pathStr
}

func renderPath(root string, p []seg) string {
	var b strings.Builder
	b.WriteString(root)
	for _, s := range p {
		if s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
			continue
		}
		if isIdent(s.key) {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
			continue
		}
		b.WriteByte('[')
		b.WriteString(strconv.Quote(s.key))
		b.WriteByte(']')
	}
	return b.String()
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlpha(c) || c == '_' || c == '$' || (i > 0 && (isDigit(c) || c == '-'))) {
			return false
		}
	}
	return true
}

// placeholderPrefix begins every placeholder.
const placeholderPrefix = "[REDACTED:"

// placeholder is what a redacted match is replaced with.
func placeholder(kind string) string { return placeholderPrefix + kind + "]" }

// redact replaces spans of s with placeholders. Overlapping spans merge;
// the merged span takes the kind of its longest member.
func redact(s string, spans []span) string {
	slices.SortFunc(spans, func(a, b span) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return b.end - a.end
	})
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for i := 0; i < len(spans); {
		cur := spans[i]
		best := cur
		i++
		for i < len(spans) && spans[i].start < cur.end {
			if spans[i].end-spans[i].start > best.end-best.start {
				best = spans[i]
			}
			cur.end = max(cur.end, spans[i].end)
			i++
		}
		b.WriteString(s[pos:cur.start])
		b.WriteString(placeholder(best.kind))
		pos = cur.end
	}
	b.WriteString(s[pos:])
	return b.String()
}

// Redact replaces the spans of ms in text with typed placeholders
// ("[REDACTED:email]"). Overlapping matches merge into one placeholder.
func Redact(text string, ms []Match) string {
	if len(ms) == 0 {
		return text
	}
	spans := make([]span, 0, len(ms))
	for _, m := range ms {
		if m.Start < 0 || m.End > len(text) || m.Start >= m.End {
			continue
		}
		spans = append(spans, span{m.Start, m.End, m.Kind})
	}
	if len(spans) == 0 {
		return text
	}
	return redact(text, spans)
}

// jsonLen is len(json.Marshal(v)) for decoded JSON values, computed without
// encoding.
func jsonLen(v any) int64 {
	switch x := v.(type) {
	case nil:
		return 4
	case bool:
		if x {
			return 4
		}
		return 5
	case string:
		return jsonStringLen(x)
	case float64:
		return floatLen(x, 64)
	case float32:
		return floatLen(float64(x), 32)
	case int:
		return int64(len(strconv.AppendInt(make([]byte, 0, 24), int64(x), 10)))
	case int64:
		return int64(len(strconv.AppendInt(make([]byte, 0, 24), x, 10)))
	case json.Number:
		if x == "" {
			return 1
		}
		return int64(len(x))
	case map[string]any:
		n := int64(2)
		if len(x) > 0 {
			n += int64(len(x) - 1)
		}
		for k, e := range x {
			n += jsonStringLen(k) + 1 + jsonLen(e)
		}
		return n
	case []any:
		if x == nil {
			return 4
		}
		n := int64(2)
		if len(x) > 0 {
			n += int64(len(x) - 1)
		}
		for _, e := range x {
			n += jsonLen(e)
		}
		return n
	case map[string]string:
		n := int64(2)
		if len(x) > 0 {
			n += int64(len(x) - 1)
		}
		for k, e := range x {
			n += jsonStringLen(k) + 1 + jsonStringLen(e)
		}
		return n
	case []string:
		if x == nil {
			return 4
		}
		n := int64(2)
		if len(x) > 0 {
			n += int64(len(x) - 1)
		}
		for _, e := range x {
			n += jsonStringLen(e)
		}
		return n
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return int64(len(b))
}

// jsonLenBounds bounds jsonLen(v) without looking at string contents:
// each string byte encodes to 1 to 6 bytes. Numbers and other leaves are
// measured exactly.
func jsonLenBounds(v any) (lo, hi int64) {
	switch x := v.(type) {
	case string:
		return int64(len(x)) + 2, 6*int64(len(x)) + 2
	case map[string]any:
		lo = 2
		if len(x) > 0 {
			lo += int64(len(x) - 1)
		}
		hi = lo
		for k, e := range x {
			l, h := jsonLenBounds(e)
			lo += int64(len(k)) + 3 + l
			hi += 6*int64(len(k)) + 3 + h
		}
		return lo, hi
	case []any:
		if x == nil {
			return 4, 4
		}
		lo = 2
		if len(x) > 0 {
			lo += int64(len(x) - 1)
		}
		hi = lo
		for _, e := range x {
			l, h := jsonLenBounds(e)
			lo += l
			hi += h
		}
		return lo, hi
	case map[string]string, []string:
		n := jsonLen(v)
		return n, n
	}
	n := jsonLen(v)
	return n, n
}

// floatLen mirrors encoding/json's float formatting.
func floatLen(f float64, bits int) int64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0 // json.Marshal fails
	}
	var buf [32]byte
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b := strconv.AppendFloat(buf[:0], f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			return int64(n - 1)
		}
	}
	return int64(len(b))
}

// jsonStringLen is the encoded length of s as encoding/json writes it (HTML
// characters escaped, invalid UTF-8 replaced by \ufffd).
func jsonStringLen(s string) int64 {
	n := int64(2)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += int64(size)
		}
		i += size
	}
	return n
}
