package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// A build is one gatehouse binary the harness measures: with -against,
// the -bin build is A and the -against build is B.
type build struct {
	Label     string `json:"label"`
	Dir       string `json:"dir"`
	Gatehouse string `json:"gatehouse"`
}

// A comparison is -rounds runs of every build, in turns. The host's speed
// drifts by tens of percent within an hour, so two builds are only
// compared on runs made together: each round runs every build once, and
// the order flips every round (A, B; then B, A; …) so that a drift does
// not always favour the same build.
type comparison struct {
	Time     time.Time `json:"time"`
	Builds   []build   `json:"builds"`
	HalfRate float64   `json:"half_rate,omitempty"`
	// Runs[round][build] is that build's report in that round, in the
	// order of Builds.
	Runs    [][]*report `json:"runs"`
	Summary []metricRow `json:"summary"`
}

// A metricRow is one metric of one scenario over the rounds, per build.
type metricRow struct {
	Scenario string      `json:"scenario"`
	Metric   string      `json:"metric"`
	Unit     string      `json:"unit"`
	Builds   []metricSet `json:"builds"`
	// Better, with two builds, is in how many rounds B did better than A
	// (lower, or higher for throughput).
	Better *int `json:"b_better_rounds,omitempty"`
	// additive is the metric's: B's change is a difference, not a ratio.
	additive bool
}

// A metricSet is one build's values of a metric, one per round.
type metricSet struct {
	Values []float64 `json:"values"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

// metric reads one number of a run: ok is false when the run has no
// such number (a paced scenario's throughput, the direct path's CPU, a
// run without the sessions scenario).
type metric struct {
	name, unit string
	higher     bool // higher is better
	additive   bool // compared by difference (ms), not by ratio
	get        func(rep *report, scenario string) (float64, bool)
}

// ofResult reads a metric of the scenario's result.
func ofResult(get func(r *result) (float64, bool)) func(*report, string) (float64, bool) {
	return func(rep *report, scenario string) (float64, bool) {
		if r := rep.get(scenario); r != nil {
			return get(r)
		}
		return 0, false
	}
}

// ofSessions reads a metric of the sessions scenario.
func ofSessions(get func(s *sessionsResult) float64) func(*report, string) (float64, bool) {
	return func(rep *report, _ string) (float64, bool) {
		if rep.Sessions == nil {
			return 0, false
		}
		return get(rep.Sessions), true
	}
}

var metrics = []metric{
	{"throughput", "req/s", true, false, ofResult(func(r *result) (float64, bool) { return r.RPS, r.OfferedRPS == 0 })},
	{"gateway CPU", "ms/call", false, false, ofResult(func(r *result) (float64, bool) { return deref(r.CPUPer1k) })},
	{"added p50", "ms", false, true, ofResult(func(r *result) (float64, bool) { return deref(r.AddedP50) })},
	{"added p99", "ms", false, true, ofResult(func(r *result) (float64, bool) { return deref(r.AddedP99) })},
	{"gateway RSS", "MB", false, false, ofResult(func(r *result) (float64, bool) { return deref(r.RSSMB) })},
}

var sessionMetrics = []metric{
	{"RSS per session", "KB", false, false, ofSessions(func(s *sessionsResult) float64 { return s.KBPerSession })},
	{"time to open", "s", false, false, ofSessions(func(s *sessionsResult) float64 { return s.OpenSeconds })},
}

func deref(v *float64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return *v, true
}

// compare measures every build rounds times, in turns, and summarises.
// A run's half rate is the first run's (half of its full throughput)
// unless -half-rate gives one, so that every build's @half scenarios get
// the same offered load. The demo upstream is the first build's in every
// run.
func compare(ctx context.Context, o options, builds []build, rounds int, progress io.Writer) (*comparison, error) {
	c := &comparison{Time: time.Now().UTC(), Builds: builds, HalfRate: o.halfRate}
	o.upstreamDir = builds[0].Dir
	for round := range rounds {
		runs := make([]*report, len(builds))
		for _, i := range turnOrder(len(builds), round) {
			b := builds[i]
			fmt.Fprintf(progress, "load: round %d of %d, build %s (%s)\n", round+1, rounds, b.Label, b.Dir)
			bo := o
			bo.binDir = b.Dir
			bo.halfRate = c.HalfRate
			rep, err := measure(ctx, bo)
			if err != nil {
				return nil, fmt.Errorf("round %d, build %s: %w", round+1, b.Label, err)
			}
			if f := rep.get("full"); c.HalfRate == 0 && f != nil && slices.Contains(o.scenarios, "half") {
				c.HalfRate = f.RPS / 2
			}
			runs[i] = rep
		}
		c.Runs = append(c.Runs, runs)
	}
	c.summarise()
	return c, nil
}

// turnOrder is the order in which round runs n builds: 0, 1, … in even
// rounds, reversed in odd ones.
func turnOrder(n, round int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if round%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// summarise fills in Summary: for every scenario of the first run and
// every metric it has in all runs, each build's values over the rounds.
func (c *comparison) summarise() {
	c.Summary = nil
	if len(c.Runs) == 0 {
		return
	}
	first := c.Runs[0][0]
	for _, r := range first.Results {
		for _, m := range metrics {
			c.addRow(r.Scenario, m)
		}
	}
	if first.Sessions != nil {
		for _, m := range sessionMetrics {
			c.addRow("sessions", m)
		}
	}
}

// addRow adds the scenario's metric m to Summary if every run has it.
func (c *comparison) addRow(scenario string, m metric) {
	row := metricRow{Scenario: scenario, Metric: m.name, Unit: m.unit, additive: m.additive}
	for bi := range c.Builds {
		var vals []float64
		for _, runs := range c.Runs {
			v, ok := m.get(runs[bi], scenario)
			if !ok {
				return
			}
			vals = append(vals, v)
		}
		row.Builds = append(row.Builds, newMetricSet(vals))
	}
	row.Better = betterRounds(row.Builds, m.higher)
	c.Summary = append(c.Summary, row)
}

func newMetricSet(vals []float64) metricSet {
	s := slices.Clone(vals)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return metricSet{Values: vals, Median: med, Min: s[0], Max: s[len(s)-1]}
}

// betterRounds counts the rounds in which the second build did better
// than the first; nil unless there are exactly two builds.
func betterRounds(sets []metricSet, higher bool) *int {
	if len(sets) != 2 {
		return nil
	}
	n := 0
	for i, a := range sets[0].Values {
		b := sets[1].Values[i]
		if (higher && b > a) || (!higher && b < a) {
			n++
		}
	}
	return &n
}

func (c *comparison) errors() int {
	n := 0
	for _, runs := range c.Runs {
		for _, r := range runs {
			n += r.errors()
		}
	}
	return n
}

// print writes every run's table and then the summary.
func (c *comparison) print(w io.Writer) {
	for round, runs := range c.Runs {
		for _, i := range turnOrder(len(runs), round) {
			fmt.Fprintf(w, "\nround %d, build %s (%s, %s):\n", round+1, c.Builds[i].Label, c.Builds[i].Dir, c.Builds[i].Gatehouse)
			runs[i].printTable(w)
		}
	}
	rounds := len(c.Runs)
	fmt.Fprintf(w, "\nComparison: %d round(s) of %s, in turns (the order flips every round)", rounds, c.buildList())
	if c.HalfRate > 0 {
		fmt.Fprintf(w, "; every @half scenario at %.0f calls/s", c.HalfRate)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-19s %-22s", "scenario", "metric")
	for _, b := range c.Builds {
		fmt.Fprintf(w, " %-27s", b.Label+": median (min–max)")
	}
	two := len(c.Builds) == 2
	if two {
		fmt.Fprintf(w, " %-10s %s", "B vs A", "B better")
	}
	fmt.Fprintln(w)
	for _, row := range c.Summary {
		fmt.Fprintf(w, "%-19s %-22s", row.Scenario, row.Metric+" ("+row.Unit+")")
		for _, s := range row.Builds {
			fmt.Fprintf(w, " %-27s", fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max)))
		}
		if two {
			fmt.Fprintf(w, " %-10s %d of %d", change(row.Builds[0].Median, row.Builds[1].Median, row.additive), *row.Better, rounds)
		}
		fmt.Fprintln(w)
	}
	if two {
		fmt.Fprint(w, `
- each round runs every build once with the same flags; a difference is worth believing when B is better (or worse) in
  every round and its range does not overlap A's: the host's own drift between runs is often 10-30 %
- B vs A: the change of the medians, in percent, or for added latency in ms
`)
	} else {
		fmt.Fprint(w, `
- the same build run again: each metric's range over the rounds is how much this host's noise moves it
`)
	}
}

func (c *comparison) buildList() string {
	var s []string
	for _, b := range c.Builds {
		s = append(s, fmt.Sprintf("%s = %s (%s)", b.Label, b.Dir, b.Gatehouse))
	}
	return strings.Join(s, " and ")
}

// num prints a value with three significant digits, at most.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// change is b against a: in percent, or for additive metrics in units.
func change(a, b float64, additive bool) string {
	if additive {
		return fmt.Sprintf("%+.2f", b-a)
	}
	if a == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.1f %%", 100*(b-a)/a)
}

// write saves the comparison as DIR/<timestamp>-compare.json.
func (c *comparison) write(dir string) (string, error) {
	return writeJSON(dir, c.Time.Format("20060102T150405Z")+"-compare.json", c)
}

// runComparison is the command with -against or -rounds above 1.
func runComparison(o options, builds []build, rounds int) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := compare(ctx, o, builds, rounds, os.Stderr)
	if err != nil {
		return failed(ctx, err)
	}
	first := c.Runs[0][0]
	fmt.Printf("\nGatehouse load, compared: %d cores (%s); pinning: %s; gateway to upstream over %s; %d concurrent sessions; %s measured after %s warm-up\n",
		first.Cores, first.Machine, first.Pinning, first.Upstream, first.Concurrency, first.Duration, first.Warmup)
	c.print(os.Stdout)
	fmt.Print(legend)
	return finish(o.jsonDir, c.write, c.errors())
}
