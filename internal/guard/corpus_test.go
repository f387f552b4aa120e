package guard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

const corpusPath = "../../test/testdata/guardrails/corpus.jsonl"

type corpusCase struct {
	ID       string   `json:"id"`
	Text     string   `json:"text"`
	Detector string   `json:"detector"`
	Kinds    []string `json:"kinds"`
	Note     string   `json:"note"`
}

func loadCorpus(tb testing.TB) []corpusCase {
	tb.Helper()
	f, err := os.Open(corpusPath)
	if err != nil {
		tb.Fatalf("opening corpus: %v", err)
	}
	defer f.Close()
	var cases []corpusCase
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c corpusCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			tb.Fatalf("corpus line %d: %v", line, err)
		}
		if seen[c.ID] {
			tb.Fatalf("corpus line %d: duplicate id %q", line, c.ID)
		}
		seen[c.ID] = true
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return cases
}

// predictKinds runs the detector a corpus case is labelled for and returns
// the kinds it reports (injection: only when the score reaches the default
// threshold).
func predictKinds(c corpusCase) []string {
	var ms []Match
	switch c.Detector {
	case "secrets":
		ms = DetectSecrets(c.Text)
	case "pii":
		ms = DetectPII(c.Text)
	case "injection":
		score, m := DetectInjection(c.Text)
		if score >= 0.5 {
			ms = m
		}
	case "poisoning":
		for _, f := range ScanToolDefinition("tool", "", c.Text, nil) {
			ms = append(ms, Match{Kind: f.Kind})
		}
	}
	var kinds []string
	for _, m := range ms {
		if !slices.Contains(kinds, m.Kind) {
			kinds = append(kinds, m.Kind)
		}
	}
	sort.Strings(kinds)
	return kinds
}

type counts struct{ tp, fp, fn, tn int }

func (c counts) precision() float64 {
	if c.tp+c.fp == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fp)
}

func (c counts) recall() float64 {
	if c.tp+c.fn == 0 {
		return 1
	}
	return float64(c.tp) / float64(c.tp+c.fn)
}

// corpusFloors are the minimum precision and recall per detector, case
// level (did the detector fire on a positive and stay quiet on a
// negative?) and kind level (micro-averaged over kinds: every expected kind
// found, no unexpected kind reported). Set just under the numbers measured
// on the corpus; see the table the test prints.
var corpusFloors = map[string]struct{ casePrec, caseRec, kindPrec, kindRec float64 }{
	"secrets":   {0.97, 0.98, 0.97, 0.98}, // measured 0.982 1.000 0.984 1.000
	"pii":       {0.98, 0.98, 0.98, 0.98}, // measured 1.000 1.000 1.000 1.000
	"injection": {0.93, 0.97, 0.92, 0.95}, // measured 0.950 1.000 0.941 0.980
	"poisoning": {0.97, 0.97, 0.97, 0.95}, // measured 1.000 1.000 1.000 0.971
}

func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 120 {
		t.Fatalf("corpus has %d cases, want at least 120", len(cases))
	}
	byDet := map[string]*counts{}
	kindLevel := map[string]*counts{}
	perKind := map[string]map[string]*counts{}
	var misses []string
	for _, c := range cases {
		got := predictKinds(c)
		want := slices.Clone(c.Kinds)
		sort.Strings(want)
		if byDet[c.Detector] == nil {
			byDet[c.Detector], kindLevel[c.Detector], perKind[c.Detector] = &counts{}, &counts{}, map[string]*counts{}
		}
		d := byDet[c.Detector]
		switch {
		case len(want) > 0 && len(got) > 0:
			d.tp++
		case len(want) == 0 && len(got) > 0:
			d.fp++
		case len(want) > 0 && len(got) == 0:
			d.fn++
		default:
			d.tn++
		}
		kc := func(k string) *counts {
			if perKind[c.Detector][k] == nil {
				perKind[c.Detector][k] = &counts{}
			}
			return perKind[c.Detector][k]
		}
		for _, k := range got {
			if slices.Contains(want, k) {
				kc(k).tp++
				kindLevel[c.Detector].tp++
			} else {
				kc(k).fp++
				kindLevel[c.Detector].fp++
			}
		}
		for _, k := range want {
			if !slices.Contains(got, k) {
				kc(k).fn++
				kindLevel[c.Detector].fn++
			}
		}
		if !slices.Equal(got, want) {
			misses = append(misses, fmt.Sprintf("  %-28s want %v got %v", c.ID, want, got))
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "guardrail corpus: %d cases\n", len(cases))
	fmt.Fprintf(&b, "%-10s %5s %4s %4s %4s %4s  %-9s %-9s  %-9s %-9s\n", "detector", "cases", "TP", "FP", "FN", "TN", "case-P", "case-R", "kind-P", "kind-R")
	dets := []string{"secrets", "pii", "injection", "poisoning"}
	for _, det := range dets {
		d, k := byDet[det], kindLevel[det]
		if d == nil {
			t.Errorf("no corpus cases for detector %s", det)
			continue
		}
		fmt.Fprintf(&b, "%-10s %5d %4d %4d %4d %4d  %-9.3f %-9.3f  %-9.3f %-9.3f\n", det, d.tp+d.fp+d.fn+d.tn, d.tp, d.fp, d.fn, d.tn, d.precision(), d.recall(), k.precision(), k.recall())
	}
	fmt.Fprintf(&b, "per kind (TP/FP/FN):\n")
	for _, det := range dets {
		var ks []string
		for k := range perKind[det] {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			c := perKind[det][k]
			fmt.Fprintf(&b, "  %-10s %-24s %2d/%d/%d  P=%.2f R=%.2f\n", det, k, c.tp, c.fp, c.fn, c.precision(), c.recall())
		}
	}
	if len(misses) > 0 {
		fmt.Fprintf(&b, "cases that differ from their label:\n%s\n", strings.Join(misses, "\n"))
	}
	// Printed, not logged, so the table shows in every run that shows
	// output (go test -v, or go test in the package directory).
	fmt.Print(b.String())

	for _, det := range dets {
		d, k, fl := byDet[det], kindLevel[det], corpusFloors[det]
		if d == nil {
			continue
		}
		if d.precision() < fl.casePrec || d.recall() < fl.caseRec {
			t.Errorf("%s: case precision %.3f recall %.3f, floors %.2f %.2f", det, d.precision(), d.recall(), fl.casePrec, fl.caseRec)
		}
		if k.precision() < fl.kindPrec || k.recall() < fl.kindRec {
			t.Errorf("%s: kind precision %.3f recall %.3f, floors %.2f %.2f", det, k.precision(), k.recall(), fl.kindPrec, fl.kindRec)
		}
	}
}
