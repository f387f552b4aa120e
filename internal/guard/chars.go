package guard

import "strings"

// Byte classes shared by the detectors, as one table lookup each.

const (
	cDigit uint8 = 1 << iota
	cUpper
	cLower
	cUnderscore
	cDash
	cPlusSlash
	cEquals
	cHexLetter
)

var ctab = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = cUpper
		t[c+'a'-'A'] = cLower
	}
	for _, c := range "abcdefABCDEF" {
		t[c] |= cHexLetter
	}
	t['_'], t['-'], t['+'], t['/'], t['='] = cUnderscore, cDash, cPlusSlash, cPlusSlash, cEquals
	return t
}()

func isDigit(c byte) bool { return ctab[c]&cDigit != 0 }
func isUpper(c byte) bool { return ctab[c]&cUpper != 0 }
func isLower(c byte) bool { return ctab[c]&cLower != 0 }
func isAlpha(c byte) bool { return ctab[c]&(cUpper|cLower) != 0 }
func isAlnum(c byte) bool { return ctab[c]&(cDigit|cUpper|cLower) != 0 }

// isWord is a byte of a word for the secrets scanner: tokens start only
// after a non-word byte.
func isWord(c byte) bool { return ctab[c]&(cDigit|cUpper|cLower|cUnderscore) != 0 }

func isHex(c byte) bool { return ctab[c]&(cDigit|cHexLetter) != 0 }

func lower(c byte) byte {
	if isUpper(c) {
		return c + 'a' - 'A'
	}
	return c
}

// b64url: base64url alphabet (JWT parts, many API tokens).
func isB64URL(c byte) bool { return ctab[c]&(cDigit|cUpper|cLower|cDash|cUnderscore) != 0 }

// isB64Std: standard base64 alphabet without padding.
func isB64Std(c byte) bool { return ctab[c]&(cDigit|cUpper|cLower|cPlusSlash) != 0 }

// runLen returns how many bytes of s from i satisfy ok.
func runLen(s string, i int, ok func(byte) bool) int {
	j := i
	for j < len(s) && ok(s[j]) {
		j++
	}
	return j - i
}

// hasPrefixFold reports whether s[i:] starts with prefix, ASCII
// case-insensitively; prefix must be lowercase.
func hasPrefixFold(s string, i int, prefix string) bool {
	if len(s)-i < len(prefix) {
		return false
	}
	for k := 0; k < len(prefix); k++ {
		if lower(s[i+k]) != prefix[k] {
			return false
		}
	}
	return true
}

// indexFold is strings.Index for an ASCII lowercase needle, case-insensitive
// over ASCII.
func indexFold(s, needle string) int {
	if needle == "" {
		return 0
	}
	first := needle[0]
	if !isLower(first) {
		// Find the first byte (not a letter) fast, then compare.
		for off := 0; off+len(needle) <= len(s); {
			k := strings.IndexByte(s[off:len(s)-len(needle)+1], first)
			if k < 0 {
				return -1
			}
			if hasPrefixFold(s, off+k, needle) {
				return off + k
			}
			off += k + 1
		}
		return -1
	}
	// Two vectorized byte searches, one per case of the first letter,
	// each resumed only when consumed.
	upper := first - ('a' - 'A')
	end := len(s) - len(needle) + 1
	nextL, nextU := -2, -2
	for off := 0; off < end; {
		if nextL < off && nextL != -1 {
			if k := strings.IndexByte(s[off:end], first); k >= 0 {
				nextL = off + k
			} else {
				nextL = -1
			}
		}
		if nextU < off && nextU != -1 {
			if k := strings.IndexByte(s[off:end], upper); k >= 0 {
				nextU = off + k
			} else {
				nextU = -1
			}
		}
		i := nextL
		if i < 0 || nextU >= 0 && nextU < i {
			i = nextU
		}
		if i < 0 {
			return -1
		}
		if hasPrefixFold(s, i, needle) {
			return i
		}
		off = i + 1
	}
	return -1
}

// boundaryAfter reports whether s[j] (the byte after a token) is not
// alphanumeric.
func boundaryAfter(s string, j int) bool { return j >= len(s) || !isAlnum(s[j]) }
