package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 8, "short"},
		{"exactly8", 8, "exactly8"},
		{"longer than eight", 8, "longer t…"},
		{"ééééé", 3, "é…"}, // never half a rune
		{strings.Repeat("x", 1000), 4, "xxxx…"},
	} {
		got := String(tc.in, tc.max)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("String(%.20q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
