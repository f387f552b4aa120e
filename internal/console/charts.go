package console

import (
	"fmt"
	"html"
	"html/template"
	"sort"
	"strings"
	"time"
)

// charts are the audit explorer's rollups, drawn as inline SVG on the
// server: no script, no chart library, and they print.
type charts struct {
	Activity template.HTML // calls per bucket, denials and errors stacked
	Latency  template.HTML // p99 latency per bucket
	Agents   template.HTML // top agents by calls
	Tools    template.HTML // top tools by calls
	Empty    bool
}

const (
	chartW = 640
	chartH = 180
	padL   = 64
	padB   = 24
	padT   = 10
)

func buildCharts(series, agents, tools []auditStat, from, to time.Time, interval time.Duration) charts {
	byBucket := map[int64]auditStat{}
	for _, s := range series {
		if s.Bucket != nil {
			byBucket[s.Bucket.Unix()] = s
		}
	}
	var buckets []time.Time
	for t := from.Truncate(interval); t.Before(to); t = t.Add(interval) {
		buckets = append(buckets, t)
	}
	if len(buckets) == 0 {
		buckets = []time.Time{from}
	}
	stats := make([]auditStat, len(buckets))
	total := 0
	for i, b := range buckets {
		stats[i] = byBucket[b.Unix()]
		total += stats[i].Calls
	}
	return charts{
		Activity: activityChart(buckets, stats, interval),
		Latency:  latencyChart(buckets, stats, interval),
		Agents:   topChart("Top agents by calls", agents),
		Tools:    topChart("Top tools by calls", tools),
		Empty:    total == 0,
	}
}

// niceMax rounds m up to 1, 2 or 5 times a power of ten (at least 1).
func niceMax(m float64) float64 {
	if m <= 0 {
		return 1
	}
	p := 1.0
	for p*10 <= m {
		p *= 10
	}
	for _, f := range []float64{1, 2, 5, 10} {
		if f*p >= m {
			return f * p
		}
	}
	return 10 * p
}

func tickLabel(t time.Time, interval time.Duration) string {
	if interval >= 24*time.Hour {
		return t.UTC().Format("01-02")
	}
	if interval >= 3*time.Hour {
		return t.UTC().Format("01-02 15h")
	}
	return t.UTC().Format("15:04")
}

// svgOpen starts an accessible chart: its title is read out as its name.
func svgOpen(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg"><title>%s</title>`,
		chartW, chartH, html.EscapeString(title), html.EscapeString(title))
}

// axes draws the y axis labels (0 and max) and x labels every few bars.
func axes(b *strings.Builder, max float64, unit string, buckets []time.Time, interval time.Duration) {
	plotH := chartH - padB - padT
	fmt.Fprintf(b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, chartH-padB, chartW, chartH-padB)
	fmt.Fprintf(b, `<text class="tick" x="%d" y="%d" text-anchor="end">0</text>`, padL-4, chartH-padB)
	fmt.Fprintf(b, `<text class="tick" x="%d" y="%d" text-anchor="end">%s%s</text>`, padL-4, padT+8, trimFloat(max), unit)
	fmt.Fprintf(b, `<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, padT+plotH/2, chartW, padT+plotH/2)
	step := max1(len(buckets) / 6)
	bw := float64(chartW-padL) / float64(len(buckets))
	for i := 0; i < len(buckets); i += step {
		if padL+float64(i)*bw > chartW-40 {
			break // no label cut at the right edge
		}
		fmt.Fprintf(b, `<text class="tick" x="%.1f" y="%d">%s</text>`, padL+float64(i)*bw, chartH-6, tickLabel(buckets[i], interval))
	}
}

// durationText is d without zero units: "1m", "3h", "1d".
func durationText(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.1f", f)
	return strings.TrimSuffix(s, ".0")
}

func activityChart(buckets []time.Time, stats []auditStat, interval time.Duration) template.HTML {
	var b strings.Builder
	svgOpen(&b, "Calls over time ("+durationText(interval)+" buckets): allowed, denied and failed")
	m := 0.0
	for _, s := range stats {
		m = max(m, float64(s.Calls))
	}
	m = niceMax(m)
	axes(&b, m, "", buckets, interval)
	plotH := float64(chartH - padB - padT)
	bw := float64(chartW-padL) / float64(len(buckets))
	for i, s := range stats {
		x := padL + float64(i)*bw + 1
		y := float64(chartH - padB)
		for _, part := range []struct {
			n     int
			class string
		}{{s.Calls - s.Denied - s.Errors, "ok"}, {s.Denied, "denied"}, {s.Errors, "failed"}} {
			if part.n <= 0 {
				continue
			}
			h := float64(part.n) / m * plotH
			y -= h
			fmt.Fprintf(&b, `<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d %s</title></rect>`,
				part.class, x, y, max(bw-2, 1), h, buckets[i].UTC().Format("2006-01-02 15:04"), part.n, part.class)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func latencyChart(buckets []time.Time, stats []auditStat, interval time.Duration) template.HTML {
	var b strings.Builder
	svgOpen(&b, "p99 latency over time ("+durationText(interval)+" buckets), milliseconds")
	m := 0.0
	for _, s := range stats {
		m = max(m, s.P99Us/1000)
	}
	m = niceMax(m)
	axes(&b, m, " ms", buckets, interval)
	plotH := float64(chartH - padB - padT)
	bw := float64(chartW-padL) / float64(len(buckets))
	var pts []string
	for i, s := range stats {
		if s.Calls == 0 {
			continue
		}
		x := padL + float64(i)*bw + bw/2
		y := float64(chartH-padB) - s.P99Us/1000/m*plotH
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="3"><title>%s: p99 %.1f ms</title></circle>`,
			x, y, buckets[i].UTC().Format("2006-01-02 15:04"), s.P99Us/1000)
	}
	if len(pts) > 1 {
		fmt.Fprintf(&b, `<polyline class="line" points="%s"/>`, strings.Join(pts, " "))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// topChart draws the five groups with the most calls as horizontal bars.
func topChart(title string, rows []auditStat) template.HTML {
	rows = append([]auditStat(nil), rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Calls > rows[j].Calls })
	if len(rows) > 5 {
		rows = rows[:5]
	}
	const rowH, labelW, h = 28, 180, 5*28 + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg"><title>%s</title>`,
		chartW, h, html.EscapeString(title), html.EscapeString(title))
	m := 1.0
	for _, r := range rows {
		m = max(m, float64(r.Calls))
	}
	for i, r := range rows {
		name := "(none)"
		if len(r.Group) > 0 && r.Group[0] != "" {
			name = r.Group[0]
		}
		if rs := []rune(name); len(rs) > 26 {
			name = string(rs[:25]) + "…"
		}
		y := 4 + i*rowH
		w := float64(r.Calls) / m * float64(chartW-labelW-60)
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, labelW-8, y+17, html.EscapeString(name))
		fmt.Fprintf(&b, `<rect class="bar ok" x="%d" y="%d" width="%.1f" height="%d"><title>%s: %d calls, %d denied, %d failed</title></rect>`,
			labelW, y+4, max(w, 1), rowH-10, html.EscapeString(name), r.Calls, r.Denied, r.Errors)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d">%d</text>`, float64(labelW)+max(w, 1)+6, y+17, r.Calls)
	}
	if len(rows) == 0 {
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d">No calls in this range.</text>`, labelW, 20)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
