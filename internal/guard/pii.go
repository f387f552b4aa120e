package guard

import (
	"slices"
	"strings"
)

// PII kinds.
const (
	KindEmail      = "email"
	KindPhone      = "phone"
	KindIBAN       = "iban"
	KindCreditCard = "credit_card"
	KindUSSSN      = "us_ssn"
)

// PIIKinds lists the kinds [DetectPII] reports.
var PIIKinds = []string{KindEmail, KindPhone, KindIBAN, KindCreditCard, KindUSSSN}

// DetectPII finds personal data in text: email addresses, phone numbers
// (E.164 and common national formats), IBANs (mod-97 checked), payment card
// numbers (Luhn-checked, known issuer prefixes and lengths) and US social
// security numbers. Matches are sorted by offset.
//
// Phone numbers are the hard case. Accepted without context: "+" and 8 to
// 15 digits; North American numbers with separators ("(415) 555-0132",
// "415-555-0132"); national numbers with a trunk "0" grouped by spaces or
// dashes ("020 7946 0958", "06-12345678"), and the French dotted form.
// Anything else that is 7 to 15 digits counts only after a phone keyword
// ("tel", "phone", "mobile"...). Dates, IP addresses, versions and bare
// digit runs (order numbers, timestamps) are not phone numbers.
func DetectPII(text string) []Match {
	return appendPII(nil, text)
}

func appendPII(dst []Match, s string) []Match {
	if len(s) < 6 {
		return dst
	}
	base := len(dst)
	if strings.IndexByte(s, '@') >= 0 {
		dst = appendEmails(dst, s)
	}
	dst = appendNumbers(dst, s, base)
	ms := dst[base:]
	slices.SortFunc(ms, func(a, b Match) int { return a.Start - b.Start })
	return dst
}

func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// appendEmails finds addresses around each '@'.
func appendEmails(dst []Match, s string) []Match {
	for off := 0; off < len(s); {
		k := strings.IndexByte(s[off:], '@')
		if k < 0 {
			break
		}
		at := off + k
		off = at + 1
		a := at
		for a > 0 && at-a <= 64 && isEmailLocal(s[a-1]) {
			a--
		}
		for a < at && (s[a] == '.' || s[a] == '-' || s[a] == '+' || s[a] == '%') {
			a++
		}
		if a == at || at-a > 64 || s[at-1] == '.' || (a > 0 && (isEmailLocal(s[a-1]) || s[a-1] == '@' || s[a-1] == ']' && afterPlaceholder(s, a))) {
			continue
		}
		b := at + 1
		for b < len(s) && (isAlnum(s[b]) || s[b] == '-' || s[b] == '.') {
			b++
		}
		for b > at+1 && (s[b-1] == '.' || s[b-1] == '-') {
			b--
		}
		if !emailDomainOK(s[at+1 : b]) {
			continue
		}
		if b < len(s) && (s[b] == '@' || s[b] == '_') {
			continue
		}
		local := s[a:at]
		if b < len(s) && s[b] == ':' && (local == "git" || local == "hg") {
			continue // scp-style repository address
		}
		dst = append(dst, Match{KindEmail, a, b, 1})
		off = b
	}
	return dst
}

// notTLDs are file extensions that look like top-level domains in
// "icon@2x.png".
var notTLDs = map[string]bool{"png": true, "jpg": true, "jpeg": true, "gif": true, "svg": true, "webp": true, "ico": true, "bmp": true, "tiff": true}

func emailDomainOK(d string) bool {
	if len(d) < 4 || len(d) > 253 || d[0] == '.' || d[0] == '-' {
		return false
	}
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 {
		return false
	}
	tld := d[dot+1:]
	if len(tld) < 2 || len(tld) > 24 {
		return false
	}
	if !strings.HasPrefix(tld, "xn--") {
		for k := 0; k < len(tld); k++ {
			if !isAlpha(tld[k]) {
				return false
			}
		}
	}
	if notTLDs[strings.ToLower(tld)] {
		return false
	}
	return !strings.Contains(d, "..") && !strings.Contains(d, ".-") && !strings.Contains(d, "-.")
}

// A digit run is digits with single separators (space, '-', '.') and
// parentheses, as phone numbers, card numbers and SSNs are written.
type digitRun struct {
	start, end int
	plus       bool
	digits     int
	groups     [12]uint8 // digit-group lengths
	ng         int
	seps       [12]byte // separator before each group after the first ('(' for a parenthesized group)
	paren      bool
}

func isRunSep(c byte) bool { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' }

// appendNumbers scans digit runs and classifies them as card numbers, SSNs,
// IBANs or phone numbers.
func appendNumbers(dst []Match, s string, base int) []Match {
	hasDigit := false
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			hasDigit = true
			break
		}
	}
	if !hasDigit {
		return dst
	}
	emails := cursor{ms: dst[base:]}
	nb := len(dst)
	dst = appendIBANs(dst, s)
	ibans := cursor{ms: dst[nb:]}
	runsFrom := len(dst)
	taken := func(start, end int) bool {
		if n := len(dst); n > runsFrom && dst[n-1].End > start {
			return true
		}
		return emails.overlaps(start, end) || ibans.overlaps(start, end)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if !(isDigit(c) || (c == '+' || c == '(') && i+1 < len(s) && isDigit(s[i+1])) {
			i++
			continue
		}
		if i > 0 {
			p := s[i-1]
			// A redaction placeholder counts as the word it replaced, so
			// redacting never exposes a new number.
			if isAlnum(p) || p == '_' || (p == '.' || p == '-' || p == '/' || p == ':' || p == ',') && i > 1 && isDigit(s[i-2]) || p == ']' && afterPlaceholder(s, i) {
				// Inside a word or a larger number: skip the rest of it.
				i++
				for i < len(s) && (isAlnum(s[i]) || s[i] == '.' || s[i] == '-') {
					i++
				}
				continue
			}
		}
		r, ok := scanRun(s, i)
		i = max(r.end, i+1)
		if !ok || taken(r.start, r.end) {
			continue
		}
		if m, ok := classifyRun(s, &r); ok {
			dst = append(dst, m)
			continue
		}
		// "Order 12345 4111 1111 1111 1111", "Tel 020 7946 0958 0612345678":
		// split the run at spaces into the leftmost-longest parts that
		// classify.
		for g := 0; g < r.ng; {
			found := false
			for e := r.ng - 1; e >= g && (g == 0 || r.seps[g] == ' '); e-- {
				if e < r.ng-1 && r.seps[e+1] != ' ' || g == 0 && e == r.ng-1 {
					continue
				}
				lo := r.start // with its '+' or '('
				if g > 0 {
					lo = groupStart(s, &r, g)
				}
				hi := groupStart(s, &r, e) + int(r.groups[e])
				sub, ok := scanRun(s[:hi], lo)
				if !ok || sub.end != hi {
					continue
				}
				if m, ok := classifyRun(s, &sub); ok {
					dst = append(dst, m)
					g, found = e+1, true
					break
				}
			}
			if !found {
				g++
			}
		}
	}
	return dst
}

// afterPlaceholder reports whether s[:i] ends with a redaction placeholder.
func afterPlaceholder(s string, i int) bool {
	k := strings.LastIndexByte(s[max(0, i-64):i], '[')
	return k >= 0 && strings.HasPrefix(s[max(0, i-64)+k:], placeholderPrefix)
}

// cursor answers overlap queries against sorted, non-overlapping matches
// for query starts that never decrease, in amortized constant time.
type cursor struct {
	ms []Match
	i  int
}

func (c *cursor) overlaps(start, end int) bool {
	for c.i < len(c.ms) && c.ms[c.i].End <= start {
		c.i++
	}
	return c.i < len(c.ms) && c.ms[c.i].Start < end
}

// groupStart returns the offset of digit group g of r.
func groupStart(s string, r *digitRun, g int) int {
	n := 0
	for k := r.start; k < r.end; k++ {
		if isDigit(s[k]) && (k == r.start || !isDigit(s[k-1])) {
			if n == g {
				return k
			}
			n++
		}
	}
	return r.end
}

func scanRun(s string, i int) (digitRun, bool) {
	r := digitRun{start: i}
	j := i
	if s[j] == '+' {
		r.plus = true
		j++
	}
	var sep byte
	for j < len(s) {
		c := s[j]
		if isDigit(c) {
			if r.ng == 0 || sep != 0 || (j > 0 && s[j-1] == '(') {
				if r.ng == len(r.groups) {
					return r, false
				}
				r.seps[r.ng] = sep
				r.ng++
				sep = 0
			}
			r.groups[r.ng-1]++
			r.digits++
			j++
			continue
		}
		if !isRunSep(c) {
			break
		}
		// Up to three separator bytes (") ", " - ") leading to a digit.
		k := j
		for k < len(s) && k-j < 3 && isRunSep(s[k]) {
			k++
		}
		if k >= len(s) || !isDigit(s[k]) {
			break
		}
		gap := s[j:k]
		switch {
		case strings.IndexByte(gap, '(') >= 0 || strings.IndexByte(gap, ')') >= 0:
			sep = '('
			r.paren = true
		case strings.IndexByte(gap, '-') >= 0:
			sep = '-'
		case strings.IndexByte(gap, '.') >= 0:
			sep = '.'
		default:
			sep = ' '
		}
		if len(gap) > 1 && sep != '(' && !(sep == '-' && gap == " - ") {
			break // "1.  2", "3 -- 4": not one number
		}
		if r.ng == 0 {
			// "+(…" or "(…": the separator precedes the first group.
			sep = 0
		}
		j = k
	}
	r.end = j
	// A trailing ')' closes "(0)": include it only if it was opened.
	if r.digits == 0 {
		return r, false
	}
	// Not followed by a letter, or by more of a dotted/dashed number.
	if j < len(s) && (isAlpha(s[j]) || s[j] == '_' || (s[j] == '.' || s[j] == '-' || s[j] == ',') && j+1 < len(s) && isDigit(s[j+1])) {
		return r, false
	}
	return r, true
}

func (r *digitRun) sepSet() (space, dash, dot, paren bool) {
	for g := 1; g < r.ng; g++ {
		switch r.seps[g] {
		case ' ':
			space = true
		case '-':
			dash = true
		case '.':
			dot = true
		case '(':
			paren = true
		}
	}
	return
}

func (r *digitRun) digitsOf(s string, buf []byte) []byte {
	for k := r.start; k < r.end; k++ {
		if isDigit(s[k]) {
			buf = append(buf, s[k])
		}
	}
	return buf
}

func (r *digitRun) groupsAre(want ...uint8) bool {
	if r.ng != len(want) {
		return false
	}
	for k, g := range want {
		if r.groups[k] != g {
			return false
		}
	}
	return true
}

func classifyRun(s string, r *digitRun) (Match, bool) {
	var buf [32]byte
	if r.digits > 24 {
		return Match{}, false
	}
	d := r.digitsOf(s, buf[:0])
	space, dash, dot, paren := r.sepSet()
	// Payment cards: 13-19 digits, one kind of separator, card grouping.
	if !r.plus && !paren && !dot && !(space && dash) && r.digits >= 13 && r.digits <= 19 && cardGrouping(r) && isCardNumber(string(d)) {
		return Match{KindCreditCard, r.start, r.end, 1}, true
	}
	// US SSN: 3-2-4 with dashes.
	if !r.plus && r.groupsAre(3, 2, 4) && dash && !space && !dot && !paren && ssnOK(d) {
		return Match{KindUSSSN, r.start, r.end, 1}, true
	}
	if phoneRun(s, r, d, space, dash, dot, paren) {
		return Match{KindPhone, r.start, r.end, 1}, true
	}
	return Match{}, false
}

func cardGrouping(r *digitRun) bool {
	if r.ng == 1 {
		return true
	}
	if r.groupsAre(4, 6, 5) || r.groupsAre(4, 6, 4) {
		return true
	}
	for g := 0; g < r.ng-1; g++ {
		if r.groups[g] != 4 {
			return false
		}
	}
	return r.groups[r.ng-1] >= 1 && r.groups[r.ng-1] <= 4
}

// isCardNumber checks a digit string's length, issuer prefix and Luhn sum.
func isCardNumber(d string) bool {
	n := len(d)
	if n < 13 || n > 19 {
		return false
	}
	p := func(k int) int {
		v := 0
		for i := 0; i < k; i++ {
			v = v*10 + int(d[i]-'0')
		}
		return v
	}
	ok := false
	switch {
	case d[0] == '4': // Visa
		ok = n == 13 || n == 16 || n == 19
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720: // Mastercard
		ok = n == 16
	case p(2) == 34 || p(2) == 37: // Amex
		ok = n == 15
	case p(4) == 6011, p(3) >= 644 && p(3) <= 649, p(2) == 65: // Discover
		ok = n >= 16
	case p(3) >= 300 && p(3) <= 305, p(2) == 36, p(2) == 38, p(2) == 39: // Diners
		ok = n >= 14
	case p(4) >= 3528 && p(4) <= 3589: // JCB
		ok = n >= 16
	case p(2) == 62: // UnionPay
		ok = n >= 16
	case p(4) >= 2200 && p(4) <= 2204: // Mir
		ok = n == 16
	case p(4) == 5018, p(4) == 5020, p(4) == 5038, p(4) == 5893, p(4) == 6304, p(4) == 6759, p(4) >= 6761 && p(4) <= 6763: // Maestro
		ok = true
	}
	return ok && luhn(d)
}

func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

func ssnOK(d []byte) bool {
	area := string(d[0:3])
	return area != "000" && area != "666" && d[0] != '9' && string(d[3:5]) != "00" && string(d[5:9]) != "0000"
}

// phoneKeywords precede numbers that are phone numbers by context only.
var phoneKeywords = [...]string{"phone", "tel", "mobile", "cell", "fax", "whatsapp", "sms", "call me", "call us", "telefon", "téléphone", "teléfono", "móvil", "handy", "contact number"}

func phoneRun(s string, r *digitRun, d []byte, space, dash, dot, paren bool) bool {
	n := r.digits
	if r.plus {
		if n < 8 || n > 15 || d[0] == '0' {
			return false
		}
		// "+1.5" is arithmetic, not a number.
		return r.ng > 1 || n >= 10
	}
	if n < 7 || n > 15 {
		return false
	}
	// Dates (2024-01-15, 15.01.2024, 01/02/24) and IP addresses.
	if r.ng == 3 && !paren && (r.groupsAre(4, 2, 2) || r.groupsAre(2, 2, 4) || r.groupsAre(2, 2, 2)) {
		return false
	}
	if dot && r.ng == 4 && r.groups[0] <= 3 && r.groups[1] <= 3 && r.groups[2] <= 3 && r.groups[3] <= 3 {
		return false
	}
	// North American: (415) 555-0132, 415-555-0132, 415.555.0132, 1-415-…
	nanp := r.groupsAre(3, 3, 4) || r.groupsAre(1, 3, 3, 4) && d[0] == '1'
	if nanp && r.ng > 1 {
		a := 0
		if r.ng == 4 {
			a = 1
		}
		if d[a] >= '2' && d[a+3] >= '2' && !(space && dot) && !(dash && dot) {
			return true
		}
	}
	// Trunk-prefixed national numbers, grouped: 020 7946 0958, 06-12345678.
	if d[0] == '0' && d[1] != '0' && n >= 9 && n <= 12 && r.ng >= 2 && !dot {
		ok := r.groups[0] >= 2 && r.groups[0] <= 5
		for g := 1; g < r.ng; g++ {
			ok = ok && r.groups[g] >= 2 && r.groups[g] <= 8
		}
		if ok {
			return true
		}
	}
	// French dotted: 01.23.45.67.89
	if dot && r.groupsAre(2, 2, 2, 2, 2) && d[0] == '0' {
		return true
	}
	return phoneContext(s, r.start)
}

// phoneContext reports whether a phone keyword precedes offset st closely.
func phoneContext(s string, st int) bool {
	lo := max(0, st-32)
	var buf [40]byte
	w := buf[:0]
	for k := lo; k < st; k++ {
		w = append(w, lower(s[k]))
	}
	ctx := string(w)
	for _, k := range phoneKeywords {
		// Not the kind name of a placeholder: "[REDACTED:phone] 555…".
		if i := strings.LastIndex(ctx, k); i >= 0 && (i == 0 || !isAlpha(ctx[i-1])) && !strings.HasSuffix(ctx[:i], "redacted:") {
			return true
		}
	}
	return false
}

// ibanLengths are IBAN lengths by country (SWIFT registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// appendIBANs finds IBANs, compact or printed in groups of four.
func appendIBANs(dst []Match, s string) []Match {
	for i := 0; i+15 <= len(s); i++ {
		if !isUpper(s[i]) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) || (i > 0 && isAlnum(s[i-1])) {
			continue
		}
		want := ibanLengths[s[i:i+2]]
		if want == 0 {
			continue
		}
		var buf [34]byte
		n, j := 0, i
		for j < len(s) && n < want {
			c := s[j]
			switch {
			case isUpper(c) || isDigit(c):
				buf[n] = c
				n++
				j++
			case c == ' ' && n%4 == 0 && j+1 < len(s) && isAlnum(s[j+1]):
				j++
			default:
				goto done
			}
		}
	done:
		if n != want || !boundaryAfter(s, j) || !ibanChecksum(buf[:n]) {
			continue
		}
		dst = append(dst, Match{KindIBAN, i, j, 1})
		i = j
	}
	return dst
}

func ibanChecksum(b []byte) bool {
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			v := int(c-'A') + 10
			rem = (rem*100 + v) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return rem == 1
}
