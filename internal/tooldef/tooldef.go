// Package tooldef is the identity of a tool's definition: the canonical
// form that is hashed for pinning (a changed hash means the upstream changed
// the tool) and diffed for the admin who approves a new version.
package tooldef

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Definition is what an upstream announces about a tool.
type Definition struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
}

// FromMCP returns the definition of t as announced (before any renaming or
// description override by a virtual server).
func FromMCP(t *mcp.Tool) Definition {
	d := Definition{Name: t.Name, Title: t.Title, Description: t.Description}
	d.InputSchema = raw(t.InputSchema)
	d.OutputSchema = raw(t.OutputSchema)
	if t.Annotations != nil {
		d.Annotations = raw(t.Annotations)
	}
	return d
}

func raw(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}

// canonical returns d as canonical JSON: an object of name, title,
// description, inputSchema, outputSchema and annotations (absent ones null),
// keys sorted at every level, numbers as written, no insignificant space.
func (d Definition) canonical() ([]byte, error) {
	def := map[string]any{"name": d.Name, "title": d.Title, "description": d.Description}
	for k, r := range map[string]json.RawMessage{"inputSchema": d.InputSchema, "outputSchema": d.OutputSchema, "annotations": d.Annotations} {
		if r == nil {
			def[k] = nil
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("tool %q: %s is not JSON: %w", d.Name, k, err)
		}
		def[k] = v
	}
	// encoding/json sorts map keys and writes json.Number as is.
	return json.Marshal(def)
}

// Hash is the hex SHA-256 of the canonical definition. Any change the
// upstream makes to the tool's name, title, description, schemas or
// annotations changes it.
func (d Definition) Hash() (string, error) {
	b, err := d.canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Diff describes how b differs from a, field by field, for an admin deciding
// whether to approve b: "description:\n- old\n+ new" blocks; "" when equal.
func Diff(a, b Definition) string {
	var out strings.Builder
	field := func(name, x, y string) {
		if x == y {
			return
		}
		fmt.Fprintf(&out, "%s:\n", name)
		for _, l := range strings.Split(x, "\n") {
			if x != "" {
				fmt.Fprintf(&out, "- %s\n", l)
			}
		}
		for _, l := range strings.Split(y, "\n") {
			if y != "" {
				fmt.Fprintf(&out, "+ %s\n", l)
			}
		}
	}
	field("name", a.Name, b.Name)
	field("title", a.Title, b.Title)
	field("description", a.Description, b.Description)
	field("inputSchema", indent(a.InputSchema), indent(b.InputSchema))
	field("outputSchema", indent(a.OutputSchema), indent(b.OutputSchema))
	field("annotations", indent(a.Annotations), indent(b.Annotations))
	return out.String()
}

func indent(r json.RawMessage) string {
	if len(r) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, r, "", "  "); err != nil {
		return string(r)
	}
	return buf.String()
}
