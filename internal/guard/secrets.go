package guard

import (
	"math"
	"slices"
	"strings"
)

// Secret kinds.
const (
	KindPrivateKey        = "private_key"
	KindAWSAccessKey      = "aws_access_key"
	KindAWSSecretKey      = "aws_secret_key"
	KindGCPAPIKey         = "gcp_api_key"
	KindGCPOAuthToken     = "gcp_oauth_token"
	KindGCPClientSecret   = "gcp_oauth_client_secret"
	KindAzureStorageKey   = "azure_storage_key"
	KindAzureSharedKey    = "azure_shared_access_key"
	KindAzureSASToken     = "azure_sas_token"
	KindAzureClientSecret = "azure_client_secret"
	KindGitHubToken       = "github_token"
	KindGitLabToken       = "gitlab_token"
	KindSlackToken        = "slack_token"
	KindSlackWebhook      = "slack_webhook"
	KindStripeKey         = "stripe_key"
	KindOpenAIKey         = "openai_api_key"
	KindAnthropicKey      = "anthropic_api_key"
	KindNPMToken          = "npm_token"
	KindHuggingFaceToken  = "huggingface_token"
	KindGatehouseKey      = "gatehouse_key"
	KindJWT               = "jwt"
	KindBearerToken       = "bearer_token"
	KindBasicAuth         = "basic_auth"
	KindPasswordInURL     = "password_in_url"
	KindHighEntropy       = "high_entropy"
	KindSecretAssignment  = "secret_assignment"
)

// SecretKinds lists the kinds [DetectSecrets] reports.
var SecretKinds = []string{
	KindPrivateKey, KindAWSAccessKey, KindAWSSecretKey, KindGCPAPIKey, KindGCPOAuthToken, KindGCPClientSecret,
	KindAzureStorageKey, KindAzureSharedKey, KindAzureSASToken, KindAzureClientSecret,
	KindGitHubToken, KindGitLabToken, KindSlackToken, KindSlackWebhook, KindStripeKey,
	KindOpenAIKey, KindAnthropicKey, KindNPMToken, KindHuggingFaceToken, KindGatehouseKey,
	KindJWT, KindBearerToken, KindBasicAuth, KindPasswordInURL, KindHighEntropy, KindSecretAssignment,
}

// DetectSecrets finds credentials in text: PEM private keys, cloud and SaaS
// keys by their documented formats, JWTs (whose header decodes to JSON with
// "alg"), bearer and basic credentials, passwords in URLs, high-entropy
// tokens, and the values of assignments to keys named for secrets
// (password=..., "api_key": "...") that nothing else found. Matches are
// sorted by offset and do not overlap.
func DetectSecrets(text string) []Match {
	return appendSecrets(nil, text)
}

// secretPairs marks the first two bytes a keyed secret can begin with
// ("AK" of AKIA, "gh" of ghp_, "Be" of Bearer...), so most words are
// rejected with one lookup.
var secretPairs = func() (t [256][4]uint64) {
	for _, p := range []string{
		"AK", "AS", "AB", "AC", "AI", "Ac", "AW", "Aw", "aW", "aw",
		"Sh", "Se", "SE", "sE", "se", "sk", "si", "rk",
		"gh", "gi", "gl", "xo", "xa", "ho", "hf", "np", "ya", "GO", "ey",
		"Be", "BE", "be", "bE", "Ba", "BA", "ba", "bA",
	} {
		t[p[0]][p[1]>>6] |= 1 << (p[1] & 63)
	}
	return t
}()

func appendSecrets(dst []Match, s string) []Match {
	if len(s) < 10 {
		return dst
	}
	base := len(dst)
	var armors [][2]int
	if strings.Contains(s, "-----BEGIN ") {
		dst, armors = appendPEM(dst, s)
	}
	pems := dst[base:]
	weak := false
	// Visit word starts only: every keyed secret begins a word.
	for i := 0; i < len(s); {
		c := s[i]
		if !isWord(c) {
			i++
			continue
		}
		start := i
		for i++; i < len(s) && isWord(s[i]); i++ {
		}
		if start+1 >= len(s) || secretPairs[c][s[start+1]>>6]&(1<<(s[start+1]&63)) == 0 || len(pems) > 0 && inSpans(pems, start) {
			continue
		}
		m, ok := matchKeyed(s, start)
		if !ok {
			continue
		}
		dst = append(dst, m)
		if m.Kind == KindBearerToken || m.Kind == KindBasicAuth {
			// Weak: a JWT or a known key may start inside; keep scanning.
			weak = true
			i = max(start+1, m.Start)
			continue
		}
		i = max(i, m.End)
	}
	if strings.Contains(s, "8Q~") {
		dst = appendAzureClientSecrets(dst, s)
	}
	if strings.Contains(s, "://") {
		dst = appendURLPasswords(dst, s)
	}
	if weak {
		dst = dropWeakOverlaps(dst, base)
	}
	dst = pairAWSSecrets(dst, base, s)
	dst = appendHighEntropy(dst, s, base, armors)
	if strings.ContainsAny(s, "=:") {
		dst = appendAssignedSecrets(dst, s, base)
	}
	ms := dst[base:]
	slices.SortFunc(ms, func(a, b Match) int { return a.Start - b.Start })
	return dst
}

func inSpans(ms []Match, i int) bool {
	for _, m := range ms {
		if m.Start <= i && i < m.End {
			return true
		}
	}
	return false
}

func overlaps(ms []Match, start, end int) bool {
	for _, m := range ms {
		if m.Start < end && start < m.End {
			return true
		}
	}
	return false
}

// dropWeakOverlaps removes bearer and basic matches that overlap a more
// specific match (a JWT presented as a bearer token is reported as jwt).
func dropWeakOverlaps(dst []Match, base int) []Match {
	out := dst[:base]
	all := dst[base:]
	for _, m := range all {
		if m.Kind == KindBearerToken || m.Kind == KindBasicAuth {
			strong := false
			for _, o := range all {
				if o.Kind != KindBearerToken && o.Kind != KindBasicAuth && o.Start < m.End && m.Start < o.End {
					strong = true
					break
				}
			}
			if strong {
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// matchKeyed tries the secrets that start with a recognizable prefix at
// s[i], a word start.
func matchKeyed(s string, i int) (Match, bool) {
	rest := s[i:]
	switch s[i] {
	case 'A':
		if len(rest) >= 20 && (strings.HasPrefix(rest, "AKIA") || strings.HasPrefix(rest, "ASIA") || strings.HasPrefix(rest, "ABIA") || strings.HasPrefix(rest, "ACCA")) {
			if n := runLen(s, i+4, func(c byte) bool { return isUpper(c) || isDigit(c) }); n == 16 && boundaryAfter(s, i+20) {
				return Match{KindAWSAccessKey, i, i + 20, 1}, true
			}
		}
		if strings.HasPrefix(rest, "AIza") {
			if n := runLen(s, i+4, isB64URL); n == 35 {
				return Match{KindGCPAPIKey, i, i + 39, 1}, true
			}
		}
		if strings.HasPrefix(rest, "AccountKey=") {
			if m, ok := keyValue(s, i+len("AccountKey="), 40, KindAzureStorageKey); ok {
				return m, true
			}
		}
	case 'S':
		if strings.HasPrefix(rest, "SharedAccessKey=") {
			if m, ok := keyValue(s, i+len("SharedAccessKey="), 30, KindAzureSharedKey); ok {
				return m, true
			}
		}
	case 'g':
		switch {
		case len(rest) > 4 && rest[0] == 'g' && rest[1] == 'h' && strings.IndexByte("pousr", rest[2]) >= 0 && rest[3] == '_':
			if n := runLen(s, i+4, isAlnum); n >= 36 && n <= 40 {
				return Match{KindGitHubToken, i, i + 4 + n, 1}, true
			}
		case strings.HasPrefix(rest, "github_pat_"):
			if n := runLen(s, i+11, isWord); n >= 70 {
				return Match{KindGitHubToken, i, i + 11 + n, 1}, true
			}
		case strings.HasPrefix(rest, "glpat-"):
			if n := runLen(s, i+6, isB64URL); n >= 20 {
				return Match{KindGitLabToken, i, i + 6 + n, 1}, true
			}
		case strings.HasPrefix(rest, "gh_"):
			if n := runLen(s, i+3, isB64URL); n == 43 {
				return Match{KindGatehouseKey, i, i + 46, 1}, true
			}
		case strings.HasPrefix(rest, "gha_"):
			if n := runLen(s, i+4, isB64URL); n == 43 {
				return Match{KindGatehouseKey, i, i + 47, 1}, true
			}
		}
	case 'x':
		if len(rest) > 5 && strings.HasPrefix(rest, "xox") && strings.IndexByte("abposre", rest[3]) >= 0 && rest[4] == '-' {
			if n := runLen(s, i+5, func(c byte) bool { return isAlnum(c) || c == '-' }); n >= 10 {
				return Match{KindSlackToken, i, i + 5 + n, 1}, true
			}
		}
		if strings.HasPrefix(rest, "xapp-") {
			if n := runLen(s, i+5, func(c byte) bool { return isAlnum(c) || c == '-' }); n >= 20 {
				return Match{KindSlackToken, i, i + 5 + n, 1}, true
			}
		}
	case 'h':
		if strings.HasPrefix(rest, "hf_") {
			if n := runLen(s, i+3, isAlpha); n >= 34 && n <= 40 && boundaryAfter(s, i+3+n) {
				return Match{KindHuggingFaceToken, i, i + 3 + n, 1}, true
			}
		}
		for _, p := range [...]string{"hooks.slack.com/services/", "hooks.slack.com/workflows/", "hooks.slack.com/triggers/"} {
			if strings.HasPrefix(rest, p) {
				if n := runLen(s, i+len(p), func(c byte) bool { return isAlnum(c) || c == '/' }); n >= 20 {
					return Match{KindSlackWebhook, i, i + len(p) + n, 1}, true
				}
			}
		}
	case 's', 'r':
		if len(rest) > 8 && (rest[1] == 'k') && (strings.HasPrefix(rest[2:], "_live_") || strings.HasPrefix(rest[2:], "_test_")) {
			if n := runLen(s, i+8, isAlnum); n >= 20 {
				return Match{KindStripeKey, i, i + 8 + n, 1}, true
			}
		}
		if s[i] == 's' && strings.HasPrefix(rest, "sk-") {
			return matchSkDash(s, i)
		}
		if s[i] == 's' && strings.HasPrefix(rest, "sig=") {
			if n := runLen(s, i+4, func(c byte) bool { return isAlnum(c) || c == '%' || c == '+' || c == '/' || c == '=' }); n >= 30 && strings.Contains(s, "sv=") {
				return Match{KindAzureSASToken, i + 4, i + 4 + n, 1}, true
			}
		}
	case 'n':
		if strings.HasPrefix(rest, "npm_") {
			if n := runLen(s, i+4, isAlnum); n == 36 {
				return Match{KindNPMToken, i, i + 40, 1}, true
			}
		}
	case 'y':
		if strings.HasPrefix(rest, "ya29.") {
			if n := runLen(s, i+5, isB64URL); n >= 20 {
				return Match{KindGCPOAuthToken, i, i + 5 + n, 1}, true
			}
		}
	case 'G':
		if strings.HasPrefix(rest, "GOCSPX-") {
			if n := runLen(s, i+7, isB64URL); n >= 20 {
				return Match{KindGCPClientSecret, i, i + 7 + n, 1}, true
			}
		}
	case 'e':
		return matchJWT(s, i)
	}
	switch s[i] {
	case 'A', 'a', 'S', 's':
		if m, ok := matchAWSSecretKeyword(s, i); ok {
			return m, true
		}
	case 'B', 'b':
		if hasPrefixFold(s, i, "bearer") {
			return matchBearer(s, i+6)
		}
		if hasPrefixFold(s, i, "basic") {
			return matchBasic(s, i+5)
		}
	}
	return Match{}, false
}

// keyValue matches a base64 value of at least minLen characters at s[i]
// (connection string "Key=value" pairs).
func keyValue(s string, i, minLen int, kind string) (Match, bool) {
	n := runLen(s, i, func(c byte) bool { return isB64Std(c) || c == '=' })
	if n < minLen {
		return Match{}, false
	}
	return Match{kind, i, i + n, 1}, true
}

// matchSkDash matches OpenAI and Anthropic keys ("sk-...").
func matchSkDash(s string, i int) (Match, bool) {
	rest := s[i:]
	switch {
	case strings.HasPrefix(rest, "sk-ant-"):
		if n := runLen(s, i+7, isB64URL); n >= 32 {
			return Match{KindAnthropicKey, i, i + 7 + n, 1}, true
		}
	case strings.HasPrefix(rest, "sk-proj-"), strings.HasPrefix(rest, "sk-svcacct-"), strings.HasPrefix(rest, "sk-admin-"):
		p := strings.IndexByte(rest[3:], '-') + 4
		if n := runLen(s, i+p, isB64URL); n >= 20 {
			return Match{KindOpenAIKey, i, i + p + n, 1}, true
		}
	default:
		if n := runLen(s, i+3, isAlnum); n == 48 && (i+51 == len(s) || s[i+51] != '-') {
			return Match{KindOpenAIKey, i, i + 51, 1}, true
		}
	}
	return Match{}, false
}

// awsSecretKeywords introduce an AWS secret access key; lowercase.
var awsSecretKeywords = [...]string{"aws_secret_access_key", "aws_secret_key", "secret_access_key", "secretaccesskey", "aws-secret-access-key"}

func matchAWSSecretKeyword(s string, i int) (Match, bool) {
	for _, kw := range awsSecretKeywords {
		if !hasPrefixFold(s, i, kw) {
			continue
		}
		j := i + len(kw)
		for k := 0; k < 8 && j < len(s) && strings.IndexByte(" \t\"':=\\", s[j]) >= 0; k++ {
			j++
		}
		if n := runLen(s, j, isB64Std); n == 40 && (j+n == len(s) || s[j+n] != '=') {
			return Match{KindAWSSecretKey, j, j + 40, 1}, true
		}
		return Match{}, false
	}
	return Match{}, false
}

// pairAWSSecrets finds the secret key next to an access key id: an exact
// 40-character base64 token with upper and lower case and a digit, within
// 256 bytes.
func pairAWSSecrets(dst []Match, base int, s string) []Match {
	ms := dst[base:]
	hasID, hasSecret := false, false
	for _, m := range ms {
		hasID = hasID || m.Kind == KindAWSAccessKey
		hasSecret = hasSecret || m.Kind == KindAWSSecretKey
	}
	if !hasID || hasSecret {
		return dst
	}
	for _, m := range ms {
		if m.Kind != KindAWSAccessKey {
			continue
		}
		lo, hi := max(0, m.Start-256), min(len(s), m.End+256)
		for i := lo; i < hi; {
			if !isB64Std(s[i]) {
				i++
				continue
			}
			n := runLen(s, i, isB64Std)
			if n == 40 && (i == 0 || s[i-1] != '=') && (i+n == len(s) || s[i+n] != '=') && !overlaps(dst[base:], i, i+n) {
				var u, l, d bool
				for k := i; k < i+n; k++ {
					u, l, d = u || isUpper(s[k]), l || isLower(s[k]), d || isDigit(s[k])
				}
				if u && l && d {
					dst = append(dst, Match{KindAWSSecretKey, i, i + n, 1})
					return dst
				}
			}
			i += n
		}
	}
	return dst
}

// matchJWT matches a JWS (three parts) or JWE (five parts) whose header is
// base64url JSON with an "alg" member.
func matchJWT(s string, i int) (Match, bool) {
	if !strings.HasPrefix(s[i:], "eyJ") {
		return Match{}, false
	}
	j := i + runLen(s, i, isB64URL)
	if j-i < 10 || !jwtHeaderOK(s[i:j]) {
		return Match{}, false
	}
	parts, end := 1, j
	var lens [5]int
	lens[0] = j - i
	for parts < 5 && end < len(s) && s[end] == '.' {
		n := runLen(s, end+1, isB64URL)
		lens[parts] = n
		parts++
		end += 1 + n
	}
	// A sentence may end right after the token: "... abc." gives an empty
	// last part.
	if parts > 3 && lens[parts-1] == 0 {
		parts--
		end--
	}
	switch {
	case parts == 3 && lens[1] > 0:
	case parts == 5 && lens[1] > 0:
	default:
		return Match{}, false
	}
	return Match{KindJWT, i, end, 1}, true
}

// jwtHeaderOK decodes a base64url JWT header and checks it is a JSON object
// naming an algorithm.
func jwtHeaderOK(h string) bool {
	if len(h) > 600 {
		return false
	}
	var buf [450]byte
	n, ok := decodeBase64(buf[:], h, true)
	if !ok {
		return false
	}
	d := string(buf[:n])
	d = strings.TrimSpace(d)
	return strings.HasPrefix(d, "{") && strings.Contains(d, `"alg"`)
}

// decodeBase64 decodes s (padding optional) into dst, for small inputs.
func decodeBase64(dst []byte, s string, url bool) (int, bool) {
	s = strings.TrimRight(s, "=")
	var acc uint32
	bits, n := 0, 0
	for k := 0; k < len(s); k++ {
		c := s[k]
		var v byte
		switch {
		case isUpper(c):
			v = c - 'A'
		case isLower(c):
			v = c - 'a' + 26
		case isDigit(c):
			v = c - '0' + 52
		case url && c == '-' || !url && c == '+':
			v = 62
		case url && c == '_' || !url && c == '/':
			v = 63
		default:
			return 0, false
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			if n >= len(dst) {
				return 0, false
			}
			dst[n] = byte(acc >> bits)
			n++
		}
	}
	return n, true
}

func isTokenChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// matchBearer matches the credential after "Bearer" (i is just after it).
func matchBearer(s string, i int) (Match, bool) {
	j := i
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j == i {
		return Match{}, false
	}
	n := runLen(s, j, isTokenChar)
	end := j + n
	for end < len(s) && s[end] == '=' {
		end++
	}
	// Trailing sentence punctuation is not part of the token.
	for end > j && (s[end-1] == '.' || s[end-1] == '/') {
		end--
	}
	if end-j < 16 || !credentialLike(s[j:end]) {
		return Match{}, false
	}
	return Match{KindBearerToken, j, end, 1}, true
}

// credentialLike rejects placeholders ("YOUR_ACCESS_TOKEN", "xxxxxxxx..."):
// a credential has a digit or both cases, and more than a few distinct
// characters.
func credentialLike(t string) bool {
	var u, l, d bool
	var seen [128]bool
	distinct := 0
	for k := 0; k < len(t); k++ {
		c := t[k]
		u, l, d = u || isUpper(c), l || isLower(c), d || isDigit(c)
		if c < 128 && !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	return (d || u && l) && distinct >= 8
}

// matchBasic matches "Basic <base64 of user:password>" (i is just after
// "Basic").
func matchBasic(s string, i int) (Match, bool) {
	j := i
	for j < len(s) && s[j] == ' ' {
		j++
	}
	if j == i {
		return Match{}, false
	}
	n := runLen(s, j, isB64Std)
	end := j + n
	for end < len(s) && s[end] == '=' && end-j-n < 2 {
		end++
	}
	if n < 8 || n > 300 || !boundaryAfter(s, end) {
		return Match{}, false
	}
	var buf [256]byte
	m, ok := decodeBase64(buf[:], s[j:end], false)
	if !ok || m < 3 {
		return Match{}, false
	}
	colon := -1
	for k := 0; k < m; k++ {
		c := buf[k]
		if c < 0x20 || c > 0x7e {
			return Match{}, false
		}
		if c == ':' && colon < 0 {
			colon = k
		}
	}
	if colon <= 0 || colon == m-1 {
		return Match{}, false
	}
	return Match{KindBasicAuth, j, end, 1}, true
}

// appendAzureClientSecrets finds Entra ID client secrets: three characters,
// "8Q~", then 31 to 34 more.
func appendAzureClientSecrets(dst []Match, s string) []Match {
	ok := func(c byte) bool { return isAlnum(c) || c == '_' || c == '~' || c == '.' || c == '-' }
	for off := 0; ; {
		k := strings.Index(s[off:], "8Q~")
		if k < 0 {
			return dst
		}
		at := off + k
		off = at + 3
		st := at - 3
		if st < 0 || !ok(s[st]) || !ok(s[st+1]) || !ok(s[st+2]) || (st > 0 && ok(s[st-1])) {
			continue
		}
		n := runLen(s, at+3, ok)
		if n < 31 || n > 34 {
			continue
		}
		dst = append(dst, Match{KindAzureClientSecret, st, at + 3 + n, 1})
		off = at + 3 + n
	}
}

// appendURLPasswords finds the password of "scheme://user:password@host".
func appendURLPasswords(dst []Match, s string) []Match {
	for off := 0; ; {
		k := strings.Index(s[off:], "://")
		if k < 0 {
			return dst
		}
		at := off + k
		off = at + 3
		if at == 0 || !isAlpha(s[at-1]) {
			continue
		}
		u := at + 3
		j := u
		for j < len(s) && j-u < 256 && strings.IndexByte("@/?# \t\r\n\"'<>`", s[j]) < 0 {
			j++
		}
		if j >= len(s) || s[j] != '@' || j+1 >= len(s) || !isAlnum(s[j+1]) {
			continue
		}
		userinfo := s[u:j]
		c := strings.IndexByte(userinfo, ':')
		if strings.HasPrefix(userinfo, placeholderPrefix) {
			// A user redacted already: its placeholder's colon is not
			// the one before the password.
			c = -1
			if e := strings.IndexByte(userinfo, ']'); e >= 0 {
				if k := strings.IndexByte(userinfo[e:], ':'); k >= 0 {
					c = e + k
				}
			}
		}
		if c < 0 {
			continue
		}
		pw := s[u+c+1 : j]
		if pw == "" || placeholderPassword(pw) {
			continue
		}
		dst = append(dst, Match{KindPasswordInURL, u + c + 1, j, 1})
		off = j
	}
}

func placeholderPassword(pw string) bool {
	switch pw[0] {
	case '$', '{', '<', '*', '[', '%':
		return true
	}
	switch strings.ToLower(pw) {
	case "password", "pass", "passwd", "pwd", "secret", "changeme", "xxx", "xxxx", "xxxxxx", "pw", "p", "x":
		return true
	}
	same := true
	for k := 1; k < len(pw); k++ {
		same = same && pw[k] == pw[0]
	}
	return same && len(pw) > 1
}

// appendPEM finds PEM private key blocks, and returns the spans of other
// armored blocks (certificates, public keys), whose bodies are not
// secrets.
func appendPEM(dst []Match, s string) ([]Match, [][2]int) {
	var armors [][2]int
	for off := 0; ; {
		k := strings.Index(s[off:], "-----BEGIN ")
		if k < 0 {
			break
		}
		b := off + k
		ls := b + len("-----BEGIN ")
		e := strings.Index(s[ls:], "-----")
		if e < 0 || e > 64 {
			off = ls
			continue
		}
		label := s[ls : ls+e]
		body := ls + e + 5
		end := -1
		if x := strings.Index(s[body:], "-----END "+label+"-----"); x >= 0 {
			end = body + x + len("-----END "+label+"-----")
		} else {
			end = body + pemBodyLen(s, body)
		}
		if strings.HasSuffix(label, "PRIVATE KEY") || strings.HasSuffix(label, "PRIVATE KEY BLOCK") {
			dst = append(dst, Match{KindPrivateKey, b, end, 1})
		} else {
			armors = append(armors, [2]int{b, end})
		}
		off = end
	}
	return dst, armors
}

// pemBodyLen is the length of an unterminated PEM body: base64, whitespace,
// escaped newlines and headers.
func pemBodyLen(s string, i int) int {
	j := i
	for j < len(s) {
		c := s[j]
		if isB64Std(c) || c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == ':' || c == ',' || c == '-' {
			j++
			continue
		}
		if c == '\\' && j+1 < len(s) && (s[j+1] == 'n' || s[j+1] == 'r') {
			j += 2
			continue
		}
		break
	}
	return j - i
}

// High-entropy tokens.
//
// A token is a run of base64/base64url characters, 20 to 128 long (longer
// runs are data — images, certificates, encoded files — not credentials;
// slashes split paths, '=' splits key=value). Mixed tokens must have upper
// and lower case and a digit, switch between those classes often, not read
// as words run together (CamelCase identifiers), not decode as base64 to
// readable text, and have a Shannon entropy of at least 0.8·log2(min(n,
// 62)) bits per character. Pure hex tokens (hashes, git SHAs, UUIDs) are
// reported only when a credential keyword names them ("api_key: 3f9a…"),
// never after a hash keyword. Tokens named as hashes ("sha512-…" integrity
// strings, go.sum "h1:…"), data URIs, SSH public keys ("AAAA…") and Stripe
// publishable keys are skipped; base64 of "user:password" is reported as
// basic_auth. Measured on random data (TestHighEntropyRates): recall 0.92
// for 20-character base62 tokens, 0.98 from 32; false positives 0.9% on
// CamelCase identifiers, none on long blobs or encoded text.
const (
	minEntropyLen = 20
	maxEntropyLen = 128
)

func appendHighEntropy(dst []Match, s string, base int, armors [][2]int) []Match {
	// Skip loop: a run of token bytes that could start at i must fill
	// s[i:i+minEntropyLen]; the last non-token byte in that window is where
	// the next candidate starts. Prose is crossed a word at a time.
	for i := 0; i+minEntropyLen <= len(s); {
		k := i + minEntropyLen - 1
		for k >= i && ctab[s[k]] != 0 {
			k--
		}
		if k >= i {
			i = k + 1
			continue
		}
		st := i
		i += minEntropyLen
		for i < len(s) && ctab[s[i]] != 0 {
			i++
		}
		// "key=value": an '=' followed by more token bytes separates;
		// trailing '=' is base64 padding.
		for a := st; a < i; {
			b := a
			for b < i {
				if s[b] == '=' {
					e := b
					for e < i && s[e] == '=' {
						e++
					}
					if e < i {
						break
					}
					b = e
					break
				}
				b++
			}
			dst = entropyToken(dst, s, a, b, base, armors)
			for b < i && s[b] == '=' {
				b++
			}
			a = b
		}
	}
	return dst
}

func entropyToken(dst []Match, s string, st, en, base int, armors [][2]int) []Match {
	if en-st < minEntropyLen {
		return dst
	}
	// A run of two or more '-' ("-----BEGIN", "a--b") separates tokens:
	// base64 never repeats it, and evaluating the parts alone keeps
	// detection the same after a neighbour is redacted.
	if i := strings.Index(s[st:en], "--"); i >= 0 {
		a := st + i
		b := a
		for b < en && s[b] == '-' {
			b++
		}
		dst = entropyToken(dst, s, st, a, base, armors)
		return entropyToken(dst, s, b, en, base, armors)
	}
	if strings.IndexByte(s[st:en], '/') >= 0 && pathLike(s[st:en]) {
		// Evaluate each path segment on its own.
		for a := st; a < en; {
			b := a
			for b < en && s[b] != '/' {
				b++
			}
			dst = entropyCandidate(dst, s, a, b, base, armors)
			a = b + 1
		}
		return dst
	}
	return entropyCandidate(dst, s, st, en, base, armors)
}

// entropyPieces judges the parts of the token [st, en) that no earlier
// match covers, each as a token of its own: redacting those matches leaves
// the parts in the text, where the next scan sees them so ("sk-proj-…+tail"
// redacts the key and must not leave a high-entropy tail).
func entropyPieces(dst []Match, s string, st, en, base int, armors [][2]int) []Match {
	var spans [][2]int
	for _, m := range dst[base:] {
		if m.Start < en && st < m.End {
			spans = append(spans, [2]int{m.Start, m.End})
		}
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	cur := st
	for _, sp := range spans {
		if sp[0] > cur {
			dst = entropyToken(dst, s, cur, sp[0], base, armors)
		}
		cur = max(cur, sp[1])
	}
	if cur < en {
		dst = entropyToken(dst, s, cur, en, base, armors)
	}
	return dst
}

// pathLike reports whether a token with slashes is a path or URL rather
// than base64: at least half its segments are lowercase words or numbers
// ("role/S3ReadOnly", "com/repos/acme/api/v2"), where base64 segments mix
// cases.
func pathLike(t string) bool {
	segs, wordy := 0, 0
	for seg := range strings.SplitSeq(t, "/") {
		if seg == "" {
			continue
		}
		segs++
		w := len(seg) >= 3
		for k := 0; k < len(seg) && w; k++ {
			w = isLower(seg[k]) || isDigit(seg[k]) || seg[k] == '-' || seg[k] == '_'
		}
		if w {
			wordy++
		}
	}
	return 2*wordy >= segs
}

func entropyCandidate(dst []Match, s string, st, en, base int, armors [][2]int) []Match {
	for st < en && strings.IndexByte("-_/+=", s[st]) >= 0 {
		st++
	}
	for en > st && strings.IndexByte("-_/+=", s[en-1]) >= 0 {
		en--
	}
	n := en - st
	if n < minEntropyLen || n > maxEntropyLen {
		return dst
	}
	tok := s[st:en]
	for _, a := range armors {
		if a[0] <= st && st < a[1] {
			return dst
		}
	}
	if overlaps(dst[base:], st, en) {
		return entropyPieces(dst, s, st, en, base, armors)
	}
	if hashNamed(s, st, tok) {
		return dst
	}
	var up, lo, di, hex, trans int
	prev := 0
	for k := 0; k < n; k++ {
		c := tok[k]
		cls := 0
		switch {
		case isUpper(c):
			up++
			cls = 1
		case isLower(c):
			lo++
			cls = 2
		case isDigit(c):
			di++
			cls = 3
		}
		if isHex(c) || c == '-' {
			hex++
		}
		if cls != 0 && prev != 0 && cls != prev {
			trans++
		}
		if cls != 0 {
			prev = cls
		}
	}
	if hex == n {
		// Hex (hashes, UUIDs, ids): only after a credential keyword.
		if di == 0 || n-strings.Count(tok, "-") < 32 || !credentialContext(s, st) {
			return dst
		}
		h := entropy(tok)
		if h < 3.0 {
			return dst
		}
		return append(dst, Match{KindHighEntropy, st, en, min(1, h/4)})
	}
	switch encodedKind(tok) {
	case encCredentials:
		return append(dst, Match{KindBasicAuth, st, en, 1})
	case encText:
		return dst
	}
	if up == 0 || lo == 0 || di == 0 || strings.HasPrefix(tok, "AAAA") {
		return dst
	}
	if float64(trans) < 0.35*float64(n-1) || wordLike(tok) {
		return dst
	}
	h := entropy(tok)
	if h < 0.8*math.Log2(float64(min(n, 62))) {
		return dst
	}
	return append(dst, Match{KindHighEntropy, st, en, min(1, h/math.Log2(float64(min(n, 64))))})
}

// wordLike reports whether tok reads as words run together
// ("getUserAccountSettings2", "OAuth2TokenCache"): most of its letters sit
// in runs of an optional capital and two or more lowercase letters. In a
// random string few do.
func wordLike(tok string) bool {
	letters, inWords := 0, 0
	for i := 0; i < len(tok); {
		c := tok[i]
		if !isAlpha(c) {
			i++
			continue
		}
		j := i
		if isUpper(c) {
			j++
		}
		k := j
		for k < len(tok) && isLower(tok[k]) {
			k++
		}
		if k-j >= 2 {
			inWords += k - i
			letters += k - i
			i = k
			continue
		}
		letters++
		i++
	}
	return letters > 0 && inWords*4 >= letters*3
}

// hashNamed reports whether the token at st is named as a hash, is encoded
// data or is public: "sha512-…", "sha256:…", "h1:…", "base64,…", Stripe
// publishable keys.
func hashNamed(s string, st int, tok string) bool {
	for _, p := range [...]string{"sha1-", "sha256-", "sha384-", "sha512-", "md5-", "pk_live_", "pk_test_"} {
		if strings.HasPrefix(tok, p) {
			return true
		}
	}
	before := s[max(0, st-8):st]
	for _, p := range [...]string{"h1:", "sha256:", "sha512:", "sha1:", "md5:", "base64,"} {
		if strings.HasSuffix(before, p) {
			return true
		}
	}
	return false
}

const (
	encNone = iota
	encText
	encCredentials
)

// encodedKind classifies what a base64 token decodes to: readable text
// ("dGhpcyBp…" is "this is…", '{"event":…' JSON) is encoded data, not a
// secret; "user:password" (Docker registry auths, Kubernetes
// .dockerconfigjson) is a credential.
func encodedKind(tok string) int {
	var buf [96]byte
	n, ok := decodeBase64(buf[:], tok, strings.ContainsAny(tok, "-_"))
	if !ok || n < 8 {
		return encNone
	}
	text, colon := false, -1
	for k, c := range buf[:n] {
		if c < 0x20 && c != '\n' && c != '\t' || c > 0x7e {
			return encNone
		}
		text = text || c == ' ' || c == '"' || c == '{' || c == '<' || c == '\n'
		if c == ':' && colon < 0 {
			colon = k
		}
	}
	switch {
	case text:
		return encText
	case colon > 0 && colon < n-1:
		return encCredentials
	}
	return encNone
}

// credentialContext reports whether the 40 bytes before st on the same line
// name a credential and do not name a hash.
func credentialContext(s string, st int) bool {
	lo := max(0, st-40)
	if nl := strings.LastIndexByte(s[lo:st], '\n'); nl >= 0 {
		lo += nl + 1
	}
	var buf [40]byte
	w := buf[:0]
	for k := lo; k < st; k++ {
		w = append(w, lower(s[k]))
	}
	ctx := string(w)
	for _, h := range [...]string{"sha", "hash", "digest", "commit", "checksum", "md5", "etag", "fingerprint", "revision", "uuid", "request", "trace", "_id", "-id", "keyid"} {
		if strings.Contains(ctx, h) {
			return false
		}
	}
	for _, k := range [...]string{"key", "secret", "token", "passw", "pwd", "auth", "credential", "apikey", "api_key"} {
		i := strings.LastIndex(ctx, k)
		if i < 0 {
			continue
		}
		// The keyword names this value: only the rest of an identifier
		// ("_KEY", "word") and separators lie between them, not words
		// ("token-service at …").
		j := i + len(k)
		for j < len(ctx) && (isAlnum(ctx[j]) || ctx[j] == '_' || ctx[j] == '.') {
			j++
		}
		sep := 0
		for j < len(ctx) && strings.IndexByte(" \t:=\"'`>", ctx[j]) >= 0 {
			j++
			sep++
		}
		if j == len(ctx) && sep > 0 && sep <= 6 {
			return true
		}
	}
	return false
}

// entropy is the Shannon entropy of t in bits per byte.
func entropy(t string) float64 {
	var counts [256]uint16
	for k := 0; k < len(t); k++ {
		counts[t[k]]++
	}
	n := float64(len(t))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// Secrets assigned to keys named for them.
//
// A password of words ("password=hunter2", "PGPASSWORD: correct horse") has
// neither a known format nor the entropy of a key: what gives it away is
// the key. appendAssignedSecrets reports the value of an assignment
// (key=value, key: value, "key": "value", key => value) whose key names a
// password, secret, token or key, when no other match covers it already.
// Code that reads a secret from elsewhere (os.environ['X'], getpass(),
// config.db.password), placeholders (${X}, <password>, ****, changeme) and
// empty or null values are not secrets; values of secret, token and key
// names must have 8 bytes or more, and pagination tokens are not secrets.
func appendAssignedSecrets(dst []Match, s string, base int) []Match {
	for off := 0; off < len(s); {
		i := strings.IndexAny(s[off:], "=:")
		if i < 0 {
			break
		}
		i += off
		off = i + 1
		minLen := secretKey(s, i)
		if minLen == 0 {
			continue
		}
		j := i + 1
		if s[i] == '=' && j < len(s) && s[j] == '>' { // key => value
			j++
		}
		if s[i] == '=' && j < len(s) && s[j] == '=' { // a comparison
			continue
		}
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		start, end, quoted := assignedValue(s, j)
		if end-start < minLen || overlaps(dst[base:], start, end) || notASecret(s[start:end], quoted) {
			continue
		}
		dst = append(dst, Match{KindSecretAssignment, start, end, 1})
		off = end
	}
	return dst
}

// secretKey looks at the key before the '=' or ':' at i and returns the
// least length a secret assigned to it has: 4 for passwords, 8 for
// secrets, tokens and keys; 0 if the key names none of them.
func secretKey(s string, i int) int {
	j := i
	for j > 0 && (s[j-1] == ' ' || s[j-1] == '\t') && i-j < 4 {
		j--
	}
	if j > 0 && (s[j-1] == '"' || s[j-1] == '\'') {
		j--
	}
	end := j
	for j > 0 && end-j < 64 && (isWord(s[j-1]) || s[j-1] == '-' || s[j-1] == '.') {
		j--
	}
	if j == end || j > 0 && end-j == 64 {
		return 0
	}
	var buf [64]byte
	key := buf[:0]
	for k := j; k < end; k++ {
		c := lower(s[k])
		if c == '-' || c == '.' {
			c = '_'
		}
		key = append(key, c)
	}
	k := string(key)
	if k == "pass" || k == "pw" || k == "pwd" || hasAnySuffix(k, passwordKeys) {
		return 4
	}
	if hasAnySuffix(k, secretKeys) && !hasAnySuffix(k, notSecretKeys) {
		return 8
	}
	return 0
}

var (
	passwordKeys  = []string{"password", "passwd", "passphrase", "_pass", "_pwd"}
	secretKeys    = []string{"secret", "secret_key", "token", "api_key", "apikey", "access_key", "private_key", "auth_key", "credential", "credentials"}
	notSecretKeys = []string{"page_token", "pagetoken", "next_token", "nexttoken", "continuation_token", "sync_token", "max_token", "token_type"}
)

func hasAnySuffix(s string, suffixes []string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

// assignedValue returns the value that starts at j: up to the closing
// quote if it is quoted, else up to a space or a separator.
func assignedValue(s string, j int) (start, end int, quoted bool) {
	if j >= len(s) {
		return j, j, false
	}
	if q := s[j]; q == '"' || q == '\'' || q == '`' {
		k := strings.IndexByte(s[j+1:], q)
		if k < 0 {
			return j, j, false
		}
		if nl := strings.IndexByte(s[j+1:j+1+k], '\n'); nl >= 0 {
			return j, j, false
		}
		return j + 1, j + 1 + k, true
	}
	k := j
	for k < len(s) {
		switch s[k] {
		case ' ', '\t', '\r', '\n', '&', ';', ',', '"', '\'', '`', '<', '>', ')', '}', ']':
			return j, k, false
		}
		k++
	}
	return j, k, false
}

// notASecret reports values that are not secrets themselves: references to
// one, placeholders, empty values.
func notASecret(v string, quoted bool) bool {
	if placeholderPassword(v) || strings.HasSuffix(v, "...") || strings.HasPrefix(v, "[REDACTED") {
		return true
	}
	switch strings.ToLower(v) {
	case "none", "null", "nil", "true", "false", "undefined", "required", "optional", "string", "redacted", "hidden",
		"secret", "token", "empty", "unset", "your_password", "yourpassword", "example", "test":
		return true
	}
	if strings.ContainsAny(v, "([{") {
		return true // a call or an index: os.environ['X'], getpass()
	}
	if !quoted && dottedName(v) {
		return true // config.db.password, process.env.TOKEN
	}
	return false
}

// dottedName reports whether v is identifiers joined by dots.
func dottedName(v string) bool {
	parts := 0
	for p := range strings.SplitSeq(v, ".") {
		if p == "" || !isUpper(p[0]) && !isLower(p[0]) && p[0] != '_' {
			return false
		}
		for k := 0; k < len(p); k++ {
			if !isWord(p[k]) {
				return false
			}
		}
		parts++
	}
	return parts > 1
}
