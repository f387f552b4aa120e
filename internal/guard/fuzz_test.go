package guard

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

func checkSpans(t *testing.T, what, text string, ms []Match) {
	t.Helper()
	for _, m := range ms {
		if m.Start < 0 || m.End > len(text) || m.Start >= m.End {
			t.Fatalf("%s: span %d..%d out of 0..%d (%s)", what, m.Start, m.End, len(text), m.Kind)
		}
		if m.Score < 0 || m.Score > 1 {
			t.Fatalf("%s: score %v", what, m.Score)
		}
	}
}

// FuzzDetectors: detectors never panic, spans lie within the text, and
// redaction is idempotent: redacted text holds nothing new of a redacted
// kind.
func FuzzDetectors(f *testing.F) {
	for _, c := range loadCorpus(f) {
		f.Add(c.Text)
	}
	set, err := Compile(append(benchRules(),
		config.Guardrail{Name: "all-secrets", Detector: "secrets", Action: "redact"},
		config.Guardrail{Name: "all-pii", Detector: "pii", Action: "redact"},
		config.Guardrail{Name: "all-injection", Detector: "injection", Threshold: 0.01, Action: "redact"},
		config.Guardrail{Name: "literal-free", Detector: "regex", Pattern: `\b\d{3}-\d{2}-\d{4}\b`, Action: "redact"},
	))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		detectors := []struct {
			name   string
			detect func(string) []Match
		}{
			{"secrets", DetectSecrets},
			{"pii", DetectPII},
			{"injection", func(s string) []Match {
				score, ms := DetectInjection(s)
				if score < 0 || score > 1 {
					t.Fatalf("injection score %v", score)
				}
				return ms
			}},
		}
		for _, d := range detectors {
			ms := d.detect(text)
			checkSpans(t, d.name, text, ms)
			if len(ms) == 0 {
				continue
			}
			kinds := map[string]bool{}
			for _, m := range ms {
				kinds[m.Kind] = true
			}
			red := Redact(text, ms)
			for _, m := range d.detect(red) {
				if kinds[m.Kind] {
					t.Fatalf("%s: redacted text %q still has %s at %q (original %q)", d.name, red, m.Kind, red[m.Start:m.End], text)
				}
			}
		}
		for _, fd := range ScanToolDefinition(text, text, text, nil) {
			if fd.Start < 0 || fd.End > len(text) || fd.Start >= fd.End {
				t.Fatalf("poisoning finding %+v out of range", fd)
			}
		}
		for _, dir := range []string{"request", "response"} {
			v := map[string]any{"t": text, "l": []any{text}}
			_, r := set.Check(dir, "ops", "deploy_x", "args", v)
			for _, fd := range r.Findings {
				if fd.Detector != "size" && (fd.Start < 0 || fd.End > len(text) || fd.Start >= fd.End) {
					t.Fatalf("finding %+v out of range", fd)
				}
			}
		}
	})
}

// FuzzArgValidation: arbitrary schemas and arguments never panic, the
// verdict is the library's, and messages never quote argument strings.
func FuzzArgValidation(f *testing.F) {
	schemas := []string{
		testSchema,
		`{"type":"object","properties":{"text":{"type":"string","maxLength":40,"pattern":"^[a-z ]*$"}},"required":["text"],"additionalProperties":false}`,
		`{"type":"object","properties":{"text":{"anyOf":[{"type":"integer"},{"type":"string","minLength":500}]}}}`,
		`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"text":{"enum":["a","b"]},"n":{"type":["integer","null"]}}}`,
		`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"t":{"type":"string"}},"properties":{"text":{"$ref":"#/definitions/t","maxLength":3},"n":{"not":{"multipleOf":2}}},"dependencies":{"n":["text"]}}`,
		`{"type":"object","patternProperties":{"^x-":{"type":"integer"}},"propertyNames":{"maxLength":8},"properties":{"n":{"if":{"minimum":10},"then":{"multipleOf":5},"else":{"exclusiveMaximum":3}},"text":{"oneOf":[{"type":"string"},{"const":{"a":[1,2]}}]}},"additionalProperties":{"type":["string","number"]}}`,
		`{"type":"object","properties":{"l":{"type":"array","prefixItems":[{"type":"integer"},{"enum":[null,true,{"k":"v"}]}],"items":{"type":"string"},"uniqueItems":true,"maxItems":4},"text":{"allOf":[{"minLength":2},{"pattern":"^[^0-9]*$"}],"anyOf":[{"maxLength":10},{"const":"x"}]},"n":{"$ref":"#/$defs/pos"}},"$defs":{"pos":{"type":"number","exclusiveMinimum":0}},"unevaluatedProperties":false}`,
	}
	for i, c := range loadCorpus(f) {
		b, _ := json.Marshal(map[string]any{"text": c.Text, "query": c.Text, "n": float64(i)})
		f.Add(schemas[i%len(schemas)], string(b))
	}
	f.Fuzz(func(t *testing.T, schema, args string) {
		for _, fd := range ScanToolDefinition("t", "", "", json.RawMessage(schema)) {
			if fd.Start < 0 || fd.Start >= fd.End {
				t.Fatalf("poisoning finding %+v", fd)
			}
		}
		v, err := CompileArgs(json.RawMessage(schema))
		if err != nil {
			return
		}
		var a map[string]any
		if json.Unmarshal([]byte(args), &a) != nil {
			return
		}
		err = v.Validate(a)
		var inst any = a
		if a == nil {
			inst = map[string]any{}
		}
		libErr := error(nil)
		if v.resolved != nil {
			libErr = v.resolved.Validate(inst)
		}
		if (err == nil) != (libErr == nil) {
			t.Fatalf("Validate = %v, library = %v", err, libErr)
		}
		if err == nil {
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "args") {
			t.Fatalf("message %q does not start with the path", msg)
		}
		var walk func(any)
		walk = func(x any) {
			switch y := x.(type) {
			case string:
				if len(y) >= 12 && strings.Contains(msg, y) && !strings.Contains(schema, y) {
					t.Fatalf("message %q quotes argument %q", msg, y)
				}
			case []any:
				for _, e := range y {
					walk(e)
				}
			case map[string]any:
				for _, e := range y {
					walk(e)
				}
			}
		}
		walk(a)
	})
}
