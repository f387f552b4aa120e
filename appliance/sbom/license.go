package sbom

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// NoAssertion is the license of a component whose license could not be
// determined.
const NoAssertion = "NOASSERTION"

// licenseFile matches the names under which modules ship their license
// texts: LICENSE, LICENCE, COPYING, with suffixes like .md, .txt,
// -APACHE, -MIT.
var licenseFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying)([.\-_][a-z0-9.\-]*)?$`)

// DetectLicenses returns the SPDX identifiers of the license texts in the
// top directory of dir (a module's root), sorted and without duplicates,
// or [NoAssertion] when there is none it recognizes.
func DetectLicenses(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []string{NoAssertion}
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() || !licenseFile.MatchString(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		ids = append(ids, Classify(string(b))...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return []string{NoAssertion}
	}
	return ids
}

// licenseRule recognizes one license by phrases its text must contain
// (all of) and must not contain (none of), after [normalize].
type licenseRule struct {
	id          string
	all, absent []string
}

// licenseRules are tried in order; a text may match several (a file
// that holds two licenses). The phrases are the distinctive sentences
// of each license, not its title alone, so a README-like notice that
// only names a license is not taken for it.
var licenseRules = []licenseRule{
	{id: "Apache-2.0", all: []string{"apache license", "version 2.0", "terms and conditions for use, reproduction, and distribution"}},
	{id: "Apache-2.0", all: []string{"licensed under the apache license, version 2.0"}},
	{id: "MPL-2.0", all: []string{"mozilla public license", "2.0", "\"covered software\" means"}},
	{id: "MIT", all: []string{"permission is hereby granted, free of charge, to any person obtaining a copy", "the above copyright notice and this permission notice shall be included"}},
	{id: "MIT-0", all: []string{"permission is hereby granted, free of charge, to any person obtaining a copy"}, absent: []string{"the above copyright notice and this permission notice shall be included"}},
	{id: "ISC", all: []string{"permission to use, copy, modify, and", "distribute this software for any purpose with or without fee is hereby granted", "the software is provided \"as is\" and the author disclaims all warranties"}},
	{id: "BSD-3-Clause", all: []string{"redistribution and use in source and binary forms", "redistributions in binary form must reproduce", "endorse or promote products derived from this software"}},
	{id: "BSD-2-Clause", all: []string{"redistribution and use in source and binary forms", "redistributions in binary form must reproduce"}, absent: []string{"endorse or promote products derived from this software"}},
	{id: "0BSD", all: []string{"permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted"}, absent: []string{"copyright notice and this permission notice appear in all copies"}},
	{id: "Unlicense", all: []string{"this is free and unencumbered software released into the public domain"}},
	{id: "CC0-1.0", all: []string{"creative commons", "cc0 1.0 universal"}},
	// MPL-2.0 names the GNU licenses as "secondary licenses": the GNU
	// rules need their own preambles' dates.
	{id: "LGPL-3.0-only", all: []string{"gnu lesser general public license", "version 3, 29 june 2007"}},
	{id: "LGPL-2.1-only", all: []string{"gnu lesser general public license", "version 2.1, february 1999"}},
	{id: "GPL-3.0-only", all: []string{"gnu general public license", "version 3, 29 june 2007"}, absent: []string{"gnu lesser general public license"}},
	{id: "GPL-2.0-only", all: []string{"gnu general public license", "version 2, june 1991"}, absent: []string{"gnu lesser general public license"}},
}

// Classify returns the SPDX identifiers of the licenses whose texts
// appear in text, in rule order without duplicates.
func Classify(text string) []string {
	t := normalize(text)
	var ids []string
rules:
	for _, r := range licenseRules {
		for _, p := range r.all {
			if !strings.Contains(t, p) {
				continue rules
			}
		}
		for _, p := range r.absent {
			if strings.Contains(t, p) {
				continue rules
			}
		}
		if !slices.Contains(ids, r.id) {
			ids = append(ids, r.id)
		}
	}
	return ids
}

var space = regexp.MustCompile(`\s+`)

// normalize lowercases text, unifies quotes and collapses white space
// (license texts are wrapped and indented differently everywhere), and
// drops comment markers some projects put before each line.
func normalize(text string) string {
	t := strings.ToLower(text)
	t = strings.NewReplacer("“", `"`, "”", `"`, "‘", "'", "’", "'", "\n//", "\n", "\n#", "\n", "\n *", "\n").Replace(t)
	return space.ReplaceAllString(t, " ")
}
