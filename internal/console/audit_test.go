package console

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuditFilterProblems: what the explorer's query string says that it
// does not understand is left out of the filter and said on the page, not
// dropped in silence.
func TestAuditFilterProblems(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f := parseAuditFilter(url.Values{"from": {"garbage"}, "to": {"2026-12-03T10:00"}, "range": {"forever"}, "agent": {"ci"}}, now)
	if len(f.Problems) != 2 || !strings.Contains(f.Problems[0], "forever") || !strings.Contains(f.Problems[1], `"garbage" is not a date or time for From`) {
		t.Errorf("problems: %q", f.Problems)
	}
	if f.Range != "24h" || f.FromText != "" || !f.From.Equal(now.Add(-24*time.Hour)) || f.ToText != "2026-12-03T10:00" || f.Fields["agent"] != "ci" {
		t.Errorf("filter: %+v", f)
	}
	if f := parseAuditFilter(url.Values{"from": {"2026-12-01"}, "range": {"7d"}}, now); len(f.Problems) != 0 {
		t.Errorf("a valid filter has problems: %q", f.Problems)
	}
}
