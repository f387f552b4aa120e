package main

import (
	"slices"
	"strings"
	"testing"
)

func TestTurnOrder(t *testing.T) {
	for _, tc := range []struct {
		n, round int
		want     []int
	}{
		{1, 0, []int{0}},
		{1, 1, []int{0}},
		{2, 0, []int{0, 1}},
		{2, 1, []int{1, 0}},
		{2, 2, []int{0, 1}},
		{3, 1, []int{2, 1, 0}},
	} {
		if got := turnOrder(tc.n, tc.round); !slices.Equal(got, tc.want) {
			t.Errorf("turnOrder(%d, %d) = %v, want %v", tc.n, tc.round, got, tc.want)
		}
	}
}

// fakeRun is a report with one saturating gateway scenario, one paced one and
// the direct path, as measure leaves it.
func fakeRun(fullRPS, fullCPU, halfP99 float64, kbPerSession float64) *report {
	rep := &report{Results: []*result{
		{Scenario: "direct", Requests: 1, RPS: 10000, P50: 1, P99: 3},
		{Scenario: "full", Requests: 1, RPS: fullRPS, P50: 2, P99: 5, CPUPer1k: ptr(fullCPU), RSSMB: ptr(500.0)},
		{Scenario: "direct@half", Requests: 1, OfferedRPS: 2500, RPS: 2500, P50: 0.8, P99: 2},
		{Scenario: "full@half", Requests: 1, OfferedRPS: 2500, RPS: 2500, P50: 1, P99: 2 + halfP99, CPUPer1k: ptr(0.25), RSSMB: ptr(520.0)},
	}, Sessions: &sessionsResult{KBPerSession: kbPerSession, OpenSeconds: 10}}
	rep.addedLatency()
	return rep
}

func TestComparisonSummary(t *testing.T) {
	c := &comparison{
		Builds: []build{{Label: "A", Dir: "a"}, {Label: "B", Dir: "b"}},
		Runs: [][]*report{
			{fakeRun(5000, 0.160, 5.0, 75), fakeRun(5200, 0.150, 4.0, 74)},
			{fakeRun(4000, 0.200, 9.0, 76), fakeRun(4100, 0.190, 3.0, 77)},
			{fakeRun(5100, 0.158, 4.0, 75), fakeRun(4900, 0.170, 6.0, 73)},
		},
	}
	c.summarise()
	row := func(scenario, metric string) metricRow {
		t.Helper()
		for _, r := range c.Summary {
			if r.Scenario == scenario && r.Metric == metric {
				return r
			}
		}
		t.Fatalf("no %s %s in the summary: %+v", scenario, metric, c.Summary)
		return metricRow{}
	}

	cpu := row("full", "gateway CPU")
	if a := cpu.Builds[0]; a.Median != 0.160 || a.Min != 0.158 || a.Max != 0.200 || !slices.Equal(a.Values, []float64{0.160, 0.200, 0.158}) {
		t.Errorf("A's CPU = %+v, want median 0.160 of 0.158–0.200 in round order", a)
	}
	if *cpu.Better != 2 {
		t.Errorf("B's CPU better in %d rounds, want 2 (lower is better)", *cpu.Better)
	}
	if tp := row("full", "throughput"); *tp.Better != 2 || tp.Builds[1].Median != 4900 {
		t.Errorf("throughput = %+v, better %d; want B's median 4900, better in 2 (higher is better)", tp, *tp.Better)
	}
	if p99 := row("full@half", "added p99"); p99.Builds[0].Median != 5 || p99.Builds[1].Median != 4 || *p99.Better != 2 {
		t.Errorf("full@half added p99 = %+v, better %d; want medians 5 and 4, B better in 2", p99, *p99.Better)
	}
	if kb := row("sessions", "RSS per session"); kb.Builds[1].Median != 74 || *kb.Better != 2 {
		t.Errorf("sessions = %+v, better %d; want B's median 74, better in 2", kb, *kb.Better)
	}
	for _, r := range c.Summary {
		switch {
		case r.Scenario == "full@half" && r.Metric == "throughput":
			t.Error("a paced scenario's throughput is its offered load, not a result: it must not be compared")
		case strings.HasPrefix(r.Scenario, "direct") && r.Metric != "throughput":
			t.Errorf("direct has no gateway, so no %s", r.Metric)
		}
	}

	var out strings.Builder
	c.print(&out)
	for _, want := range []string{
		"round 2, build B (b, )", // odd rounds run B first
		"Comparison: 3 round(s) of A = a () and B = b ()",
		"full                gateway CPU (ms/call)  0.160 (0.158–0.200)         0.170 (0.150–0.190)         +6.3 %     2 of 3",
		"full                gateway RSS (MB)       500 (500–500)               500 (500–500)               +0.0 %     0 of 3",
		"full@half           added p99 (ms)         5.00 (4.00–9.00)            4.00 (3.00–6.00)            -1.00      2 of 3",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the comparison lacks %q:\n%s", want, out.String())
		}
	}
	if i, j := strings.Index(out.String(), "round 2, build B"), strings.Index(out.String(), "round 2, build A"); i > j {
		t.Errorf("round 2 should print B's run before A's (the order it ran in):\n%s", out.String())
	}
}

func TestComparisonOfOneBuild(t *testing.T) {
	c := &comparison{Builds: []build{{Label: "A", Dir: "a"}}, Runs: [][]*report{{fakeRun(5000, 0.16, 5, 75)}, {fakeRun(4000, 0.2, 9, 76)}}}
	c.summarise()
	for _, r := range c.Summary {
		if r.Better != nil || len(r.Builds) != 1 {
			t.Errorf("%s %s: one build has ranges only, got %+v", r.Scenario, r.Metric, r)
		}
	}
	var out strings.Builder
	c.print(&out)
	if strings.Contains(out.String(), "B vs A") {
		t.Errorf("one build's summary compares with nothing:\n%s", out.String())
	}
}
