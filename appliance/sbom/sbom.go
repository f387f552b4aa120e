// Package sbom writes a CycloneDX 1.5 software bill of materials (JSON)
// for a Go binary and the files shipped with it: every Go module linked
// into the binary, from its build information, with its version and the
// license detected from the module's LICENSE file in the Go module cache.
//
// The output is reproducible: components are sorted, the timestamp is
// the caller's, and the serial number is derived from the content.
package sbom

import (
	"cmp"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
)

// Component is one part of what the bill lists.
type Component struct {
	// Type is a CycloneDX component type: application, library, file,
	// data, operating-system. Empty means library.
	Type    string
	Name    string
	Version string
	// PURL is the package URL. Empty means none.
	PURL string
	// Licenses are SPDX identifiers. Empty means [NoAssertion].
	Licenses []string
	// SHA256 is the hex SHA-256 of the component's file, if it is one.
	SHA256 string
	// Description is a short note on what it is.
	Description string
}

// Options configure [Generate].
type Options struct {
	// Binary is the Go executable whose build information lists the
	// modules. Required.
	Binary string
	// Name and Version name the product (the bill's subject). Name
	// defaults to the main module's path, Version to its version.
	Name, Version string
	// ModCache is the Go module cache (go env GOMODCACHE) where module
	// licenses are read. Required.
	ModCache string
	// ModuleRoot is the main module's directory, where modules replaced
	// by local directories (replace => ./dir) are found. Empty means
	// such modules' licenses are [NoAssertion].
	ModuleRoot string
	// GoRoot holds the LICENSE of the Go standard library (go env
	// GOROOT). Empty means the standard library's license is
	// [NoAssertion].
	GoRoot string
	// Files are the other components shipped with the binary.
	Files []Component
	// Timestamp is the bill's creation time (e.g. the commit time).
	// Required: reproducible bills need a fixed time.
	Timestamp time.Time
}

// Generate builds the bill for opts.
func Generate(opts Options) (*BOM, error) {
	if opts.Timestamp.IsZero() {
		return nil, fmt.Errorf("sbom: Timestamp is required")
	}
	bi, err := buildinfo.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("sbom: reading build information of %s: %w", opts.Binary, err)
	}
	sum, err := fileSHA256(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	name := cmp.Or(opts.Name, bi.Main.Path)
	mainRef := "pkg:golang/" + bi.Main.Path + "@" + url.PathEscape(cmp.Or(opts.Version, bi.Main.Version))
	main := component{
		BOMRef: mainRef, Type: "application", Name: name, Version: cmp.Or(opts.Version, bi.Main.Version), PURL: mainRef,
		Hashes: []hash{{Alg: "SHA-256", Content: sum}},
	}
	var comps []component
	stdLicenses := []string{NoAssertion}
	if opts.GoRoot != "" {
		stdLicenses = DetectLicenses(opts.GoRoot)
	}
	goVersion := strings.TrimPrefix(bi.GoVersion, "go")
	comps = append(comps, newComponent(Component{
		Name: "stdlib", Version: goVersion, PURL: "pkg:golang/stdlib@" + url.PathEscape(goVersion),
		Licenses: stdLicenses, Description: "Go standard library and runtime (" + bi.GoVersion + ")",
	}))
	for _, dep := range bi.Deps {
		comps = append(comps, newComponent(moduleComponent(dep, opts.ModCache, opts.ModuleRoot)))
	}
	for _, f := range opts.Files {
		comps = append(comps, newComponent(f))
	}
	slices.SortFunc(comps, func(a, b component) int { return strings.Compare(a.BOMRef, b.BOMRef) })
	refs := make([]string, len(comps))
	for i, c := range comps {
		refs[i] = c.BOMRef
	}
	props := []property{{Name: "go:version", Value: bi.GoVersion}}
	for _, s := range bi.Settings {
		switch s.Key {
		case "-tags", "-trimpath", "CGO_ENABLED", "GOOS", "GOARCH", "GOAMD64", "-ldflags":
			props = append(props, property{Name: "go:build:" + s.Key, Value: s.Value})
		}
	}
	main.Properties = props
	b := &BOM{
		BOMFormat:   "CycloneDX",
		SpecVersion: "1.5",
		Version:     1,
		Metadata: metadata{
			Timestamp: opts.Timestamp.UTC().Format(time.RFC3339),
			Tools:     tools{Components: []component{{Type: "application", Name: "gatehouse-appliance", BOMRef: "tool:gatehouse-appliance"}}},
			Component: main,
		},
		Components:   comps,
		Dependencies: []dependency{{Ref: mainRef, DependsOn: refs}},
	}
	// The serial number is a UUID (version 5 layout) over the content, so
	// the same inputs give the same bill.
	content, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	h := sha256.Sum256(content)
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	b.SerialNumber = fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
	return b, nil
}

// moduleComponent describes a linked module: the replacement when there
// is one (that is what was compiled), with its license from the module
// cache, or from the main module's tree for a local replacement.
func moduleComponent(dep *debug.Module, modCache, moduleRoot string) Component {
	c := Component{Name: dep.Path, Version: dep.Version, Licenses: []string{NoAssertion}}
	m := dep
	if r := dep.Replace; r != nil {
		if isLocal(r.Path) {
			c.Description = "local copy at " + r.Path + " replacing " + dep.Path + " " + dep.Version
			if moduleRoot != "" {
				c.Licenses = DetectLicenses(filepath.Join(moduleRoot, filepath.FromSlash(r.Path)))
			}
			c.PURL = "pkg:golang/" + dep.Path + "@" + url.PathEscape(dep.Version)
			return c
		}
		c.Name, c.Version = r.Path, r.Version
		c.Description = "replaces " + dep.Path + " " + dep.Version
		m = r
	}
	c.PURL = "pkg:golang/" + m.Path + "@" + url.PathEscape(m.Version)
	if dir, err := moduleDir(modCache, m.Path, m.Version); err == nil {
		c.Licenses = DetectLicenses(dir)
	}
	return c
}

// isLocal says a replacement is a directory, not a module version.
func isLocal(path string) bool {
	return strings.HasPrefix(path, "./") || strings.HasPrefix(path, "../") || filepath.IsAbs(path)
}

// moduleDir is where the module cache keeps path@version.
func moduleDir(modCache, path, version string) (string, error) {
	if version == "" || version == "(devel)" {
		return "", fmt.Errorf("module %s has no version", path)
	}
	p, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	v, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return filepath.Join(modCache, filepath.FromSlash(p)+"@"+v), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// FileComponent describes the file at path as a component of type typ,
// with its SHA-256.
func FileComponent(typ, path, name, version string, licenses []string, description string) (Component, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return Component{}, fmt.Errorf("sbom: %w", err)
	}
	return Component{Type: typ, Name: name, Version: version, Licenses: licenses, SHA256: sum, Description: description}, nil
}

// MarshalIndent returns the bill as indented JSON.
func (b *BOM) MarshalIndent() ([]byte, error) {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return append(out, '\n'), nil
}
