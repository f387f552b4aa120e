package guard

import (
	"encoding/json"
	"slices"
	"strings"
)

// PoisoningThreshold is the combined score from which a tool definition is
// reported as poisoned.
const PoisoningThreshold = 0.5

// ScanToolDefinition scans a tool's definition for poisoning: instructions
// to the model hidden in what the model reads but the user rarely does. It
// looks at the description, the title, and every description, title,
// default, example and enum string of the input schema, with the injection
// signals of [DetectInjection] plus signals specific to definitions:
// directives to the model ("before using this tool read…", "you must pass
// its content as…"), mentions of sensitive files (~/.ssh/id_rsa, .env,
// mcp.json), references to other tools and their credentials ("when the
// send_email tool is called…", "the API keys of all other tools"), and
// hidden characters anywhere, the name and property names included.
//
// The strongest signal of each kind across the whole definition is
// combined as in [DetectInjection]; if the score reaches
// [PoisoningThreshold], every signal is returned as a finding (Detector
// "poisoning", Score the combined score, Path "tool.description",
// "tool.inputSchema.properties.path.description"...). Otherwise the result
// is nil: a lone "always call list_dirs first" is usage advice, not
// poisoning.
func ScanToolDefinition(name, title, description string, inputSchema json.RawMessage) []Finding {
	type text struct {
		path string
		ms   []Match
	}
	var texts []text
	var all []Match
	scan := func(path, s string, hiddenOnly bool) {
		var ms []Match
		if hiddenOnly {
			ms = appendHiddenUnicode(nil, s)
		} else {
			ms = appendInjection(nil, s, modePoisoning)
		}
		if len(ms) > 0 {
			texts = append(texts, text{path, ms})
			all = append(all, ms...)
		}
	}
	scan("tool.name", name, true)
	scan("tool.title", title, false)
	scan("tool.description", description, false)
	if len(inputSchema) > 0 {
		var schema any
		if json.Unmarshal(inputSchema, &schema) == nil {
			walkSchemaText(schema, nil, func(p []seg, s string, hiddenOnly bool) {
				scan(renderPath("tool.inputSchema", p), s, hiddenOnly)
			})
		}
	}
	score := combineScore(all)
	if score < PoisoningThreshold {
		return nil
	}
	var out []Finding
	for _, t := range texts {
		for _, m := range t.ms {
			out = append(out, Finding{Detector: DetectorPoisoning, Kind: m.Kind, Path: t.path, Start: m.Start, End: m.End, Score: score})
		}
	}
	return out
}

// schemaTextKeys hold text a model reads in a JSON schema.
var schemaTextKeys = []string{"description", "title", "default", "examples", "enum", "const", "$comment"}

// walkSchemaText calls f for every string of a schema a model may read,
// and (hiddenOnly) for property names.
func walkSchemaText(v any, p []seg, f func(p []seg, s string, hiddenOnly bool)) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			e := x[k]
			q := append(p, seg{key: k, idx: -1})
			if slices.Contains(schemaTextKeys, k) {
				walkStrings(e, q, f)
				continue
			}
			if k == "properties" || k == "patternProperties" || k == "$defs" || k == "definitions" {
				if m, ok := e.(map[string]any); ok {
					for name := range m {
						if strings.ContainsFunc(name, func(r rune) bool { return r > 0x7f }) {
							f(append(q, seg{key: name, idx: -1}), name, true)
						}
					}
				}
			}
			walkSchemaText(e, q, f)
		}
	case []any:
		for i, e := range x {
			walkSchemaText(e, append(p, seg{idx: i}), f)
		}
	}
}

func walkStrings(v any, p []seg, f func(p []seg, s string, hiddenOnly bool)) {
	switch x := v.(type) {
	case string:
		f(p, x, false)
	case []any:
		for i, e := range x {
			walkStrings(e, append(p, seg{idx: i}), f)
		}
	case map[string]any:
		for k, e := range x {
			walkStrings(e, append(p, seg{key: k, idx: -1}), f)
		}
	}
}
