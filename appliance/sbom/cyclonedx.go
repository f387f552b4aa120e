package sbom

import "strings"

// The CycloneDX 1.5 JSON document, the subset this package writes
// (https://cyclonedx.org/docs/1.5/json/).

// BOM is a CycloneDX bill of materials.
type BOM struct {
	BOMFormat    string       `json:"bomFormat"`
	SpecVersion  string       `json:"specVersion"`
	SerialNumber string       `json:"serialNumber,omitempty"`
	Version      int          `json:"version"`
	Metadata     metadata     `json:"metadata"`
	Components   []component  `json:"components"`
	Dependencies []dependency `json:"dependencies"`
}

type metadata struct {
	Timestamp string    `json:"timestamp"`
	Tools     tools     `json:"tools"`
	Component component `json:"component"`
}

type tools struct {
	Components []component `json:"components"`
}

type component struct {
	BOMRef      string        `json:"bom-ref"`
	Type        string        `json:"type"`
	Name        string        `json:"name"`
	Version     string        `json:"version,omitempty"`
	Description string        `json:"description,omitempty"`
	PURL        string        `json:"purl,omitempty"`
	Hashes      []hash        `json:"hashes,omitempty"`
	Licenses    []licenseItem `json:"licenses,omitempty"`
	Properties  []property    `json:"properties,omitempty"`
}

type hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type licenseItem struct {
	License license `json:"license"`
}

// license carries an SPDX id, or a name for what is not one
// (NOASSERTION, LicenseRef-…).
type license struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

type property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

func newComponent(c Component) component {
	out := component{
		Type: c.Type, Name: c.Name, Version: c.Version, PURL: c.PURL, Description: c.Description,
		BOMRef: c.PURL,
	}
	if out.Type == "" {
		out.Type = "library"
	}
	if out.BOMRef == "" {
		out.BOMRef = out.Type + ":" + c.Name + "@" + c.Version
	}
	if c.SHA256 != "" {
		out.Hashes = []hash{{Alg: "SHA-256", Content: c.SHA256}}
	}
	ids := c.Licenses
	if len(ids) == 0 {
		ids = []string{NoAssertion}
	}
	for _, id := range ids {
		// CycloneDX takes only SPDX list identifiers as ids; anything else
		// (NOASSERTION, LicenseRef-…) is a name.
		if id == NoAssertion || strings.HasPrefix(id, "LicenseRef-") {
			out.Licenses = append(out.Licenses, licenseItem{License: license{Name: id}})
		} else {
			out.Licenses = append(out.Licenses, licenseItem{License: license{ID: id}})
		}
	}
	return out
}
