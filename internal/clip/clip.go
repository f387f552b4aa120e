// Package clip shortens text that users or agents sent for logs and error
// messages, which repeat it: real names are short, and a name of 900 KB
// was once written out in full, twice per log line.
package clip

import "unicode/utf8"

// String returns s, or its first max bytes (whole runes) followed by "…"
// when it is longer.
func String(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
