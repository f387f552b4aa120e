package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// goEnv returns `go env NAME`.
func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// TestDetectLicenses classifies the license files of modules Gatehouse
// builds (so they are in the module cache, at the version go.mod selects)
// and of the Go distribution.
func TestDetectLicenses(t *testing.T) {
	t.Parallel()
	cache := goEnv(t, "GOMODCACHE")
	tests := []struct {
		module  string
		version string // set below: the version the build uses
		want    []string
	}{
		{module: "github.com/google/go-containerregistry", want: []string{"Apache-2.0"}},
		{module: "golang.org/x/mod", want: []string{"BSD-3-Clause"}},
		{module: "github.com/antlr4-go/antlr/v4", want: []string{"BSD-3-Clause"}},
		{module: "gopkg.in/yaml.v3", want: []string{"Apache-2.0", "MIT"}},
		{module: "github.com/davecgh/go-spew", want: []string{"ISC"}},
		{module: "github.com/hashicorp/golang-lru/v2", want: []string{"MPL-2.0"}},
		{module: "github.com/segmentio/asm", want: []string{"MIT-0"}},
		{module: "github.com/nexus-rpc/nexus-proto-annotations", want: []string{NoAssertion}}, // ships no license file
	}
	args := []string{"list", "-m", "-f", "{{.Path}} {{.Version}}"}
	for _, tt := range tests {
		args = append(args, tt.module)
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	versions := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if path, version, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			versions[path] = version
		}
	}
	for i, tt := range tests {
		if tests[i].version = versions[tt.module]; tests[i].version == "" {
			t.Fatalf("go list -m gave no version of %s:\n%s", tt.module, out)
		}
	}
	for _, tt := range tests {
		dir, err := moduleDir(cache, tt.module, tt.version)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s@%s is not in the module cache (go mod download): %v", tt.module, tt.version, err)
			continue
		}
		if got := DetectLicenses(dir); !slices.Equal(got, tt.want) {
			t.Errorf("%s@%s: %v, want %v", tt.module, tt.version, got, tt.want)
		}
	}
	if got := DetectLicenses(goEnv(t, "GOROOT")); !slices.Equal(got, []string{"BSD-3-Clause"}) {
		t.Errorf("Go distribution: %v, want BSD-3-Clause", got)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       []string
	}{
		{"a README naming a license is not one", "This project is licensed under the MIT License; see LICENSE.", nil},
		{"BSD-2-Clause", `Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
* Redistributions of source code must retain the above copyright notice.
* Redistributions in binary form must reproduce the above copyright notice.`, []string{"BSD-2-Clause"}},
		{"MPL-2.0 mentions the GNU licenses as secondary licenses", `Mozilla Public License Version 2.0
1.5. "Covered Software" means ... 1.12. "Secondary License" means either the GNU General Public
License, Version 2.0, the GNU Lesser General Public License, Version 2.1, the GNU Affero General
Public License, Version 3.0, or any later versions of those licenses.`, []string{"MPL-2.0"}},
		{"line comments and curly quotes", "// Permission is hereby granted, free of charge, to any person obtaining a copy\n// of this software ... The above copyright notice and this permission notice shall be included\n// in all copies. THE SOFTWARE IS PROVIDED “AS IS”", []string{"MIT"}},
	}
	for _, tt := range tests {
		if got := Classify(tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// buildDemoServer builds the demo MCP server, a small binary whose build
// information lists modules, one of them replaced by a local directory
// (the patched go-sdk in third_party/).
func buildDemoServer(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "demo-server")
	cmd := exec.Command("go", "build", "-trimpath", "-o", exe, "./test/fixtures/demo-server")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build demo-server: %v\n%s", err, out)
	}
	return exe
}

const repoRoot = "../.."

func TestGenerate(t *testing.T) {
	t.Parallel()
	exe := buildDemoServer(t)
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 0.0.0.0:8080\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := FileComponent("file", cfg, "gatehouse.yaml", "1.0", []string{NoAssertion}, "default configuration")
	if err != nil {
		t.Fatal(err)
	}
	tz := Component{Type: "data", Name: "tzdata", Version: "2025b", Licenses: []string{"LicenseRef-public-domain"}}
	opts := Options{
		Binary: exe, Name: "gatehouse-test", Version: "1.0", ModCache: goEnv(t, "GOMODCACHE"), GoRoot: goEnv(t, "GOROOT"), ModuleRoot: repoRoot,
		Files: []Component{file, tz}, Timestamp: time.Unix(1790000000, 0),
	}
	var out [2][]byte
	for i := range out {
		b, err := Generate(opts)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = b.MarshalIndent(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Fatal("two bills of the same binary differ")
	}
	var doc struct {
		BOMFormat, SpecVersion, SerialNumber string
		Metadata                             struct {
			Timestamp string
			Component struct {
				Name, Version string
				Hashes        []struct{ Alg, Content string }
			}
		}
		Components []struct {
			Type, Name, Version, PURL string
			Licenses                  []struct{ License struct{ ID, Name string } }
			Hashes                    []struct{ Alg, Content string }
		}
		Dependencies []struct {
			Ref       string
			DependsOn []string
		}
	}
	if err := json.Unmarshal(out[0], &doc); err != nil {
		t.Fatal(err)
	}
	if doc.BOMFormat != "CycloneDX" || doc.SpecVersion != "1.5" || !strings.HasPrefix(doc.SerialNumber, "urn:uuid:") || doc.Metadata.Timestamp != opts.Timestamp.UTC().Format(time.RFC3339) {
		t.Errorf("header: %s %s %s %s", doc.BOMFormat, doc.SpecVersion, doc.SerialNumber, doc.Metadata.Timestamp)
	}
	exeBytes, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(exeBytes)
	if mc := doc.Metadata.Component; mc.Name != "gatehouse-test" || mc.Version != "1.0" || len(mc.Hashes) != 1 || mc.Hashes[0].Content != hex.EncodeToString(sum[:]) {
		t.Errorf("main component: %+v", mc)
	}
	licenses := map[string]string{}
	for _, c := range doc.Components {
		var ids []string
		for _, l := range c.Licenses {
			ids = append(ids, l.License.ID+l.License.Name)
			// CycloneDX ids are SPDX list identifiers only.
			if l.License.ID == NoAssertion || strings.HasPrefix(l.License.ID, "LicenseRef-") {
				t.Errorf("%s: %q given as a license id, not a name", c.Name, l.License.ID)
			}
		}
		licenses[c.Name] = strings.Join(ids, ",")
		if c.Version == "" || len(ids) == 0 {
			t.Errorf("component without version or license: %+v", c)
		}
	}
	for name, want := range map[string]string{
		"golang.org/x/sys": "BSD-3-Clause", "github.com/segmentio/asm": "MIT-0", "stdlib": "BSD-3-Clause", "gatehouse.yaml": NoAssertion, "tzdata": "LicenseRef-public-domain",
		// a local replacement: its license comes from the checkout
		"github.com/modelcontextprotocol/go-sdk": "Apache-2.0,MIT",
	} {
		if licenses[name] != want {
			t.Errorf("%s: license %q, want %q", name, licenses[name], want)
		}
	}
	if len(doc.Dependencies) != 1 || len(doc.Dependencies[0].DependsOn) != len(doc.Components) {
		t.Errorf("dependencies: %+v", doc.Dependencies)
	}
}
