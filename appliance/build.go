package appliance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/gatehouse-dev/gatehouse/appliance/bundle"
	"github.com/gatehouse-dev/gatehouse/appliance/image"
	"github.com/gatehouse-dev/gatehouse/appliance/sbom"
)

// BuildOptions say what [Build] writes besides the images.
type BuildOptions struct {
	// OutDir receives the image archives and the bundle. Required.
	OutDir string
	// Bundle also writes the offline bundle.
	Bundle bool
	// RepoRoot is the checkout the bundle takes the GraphQL schema
	// (graph/*.graphql) and ClickHouse DDL (schema/clickhouse/*.sql)
	// from. Required with Bundle.
	RepoRoot string
	// ModCache and GoRoot are where the SBOM reads licenses (go env
	// GOMODCACHE, GOROOT). Required with Bundle.
	ModCache, GoRoot string
	// SignKey signs the bundle's SHA256SUMS. Nil means unsigned.
	SignKey ed25519.PrivateKey
}

// Result describes what [Build] wrote.
type Result struct {
	Images []ImageResult
	// Bundle is the bundle's path; empty without BuildOptions.Bundle.
	Bundle string
}

// ImageResult describes one image archive.
type ImageResult struct {
	Flavour Flavour
	Ref     string // repository:tag
	Archive string // path of the archive
	Digest  string // manifest digest, sha256:…
	// ArchiveBytes is the archive's size (what a site loads);
	// UnpackedBytes the size of its layers uncompressed.
	ArchiveBytes, UnpackedBytes int64
	sbom                        []byte
}

// ArchiveName is the file name of a flavour's image archive.
func (o *Options) ArchiveName(f Flavour) string {
	return Repository + "-" + o.Tag(f) + ".oci.tar"
}

// Build writes the image archive of every flavour opts has a binary for
// and, with bo.Bundle, the offline bundle.
func Build(opts *Options, bo BuildOptions) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(bo.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("appliance: %w", err)
	}
	res := &Result{}
	for _, f := range Flavours {
		if o.Binaries[f] == "" {
			continue
		}
		ir, err := buildImage(f, o, bo)
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, *ir)
	}
	if len(res.Images) == 0 {
		return nil, fmt.Errorf("appliance: no binaries given (want one of %v)", Flavours)
	}
	if bo.Bundle {
		if res.Bundle, err = writeBundle(o, bo, res.Images); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func buildImage(f Flavour, o *Options, bo BuildOptions) (*ImageResult, error) {
	spec, err := ImageSpec(f, o)
	if err != nil {
		return nil, err
	}
	img, err := image.Build(spec)
	if err != nil {
		return nil, fmt.Errorf("appliance %s: %w", f, err)
	}
	defer img.Close()
	ir := &ImageResult{Flavour: f, Ref: Repository + ":" + o.Tag(f), Archive: filepath.Join(bo.OutDir, o.ArchiveName(f))}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("appliance %s: %w", f, err)
	}
	ir.Digest = d.String()
	ir.UnpackedBytes = img.UnpackedSize()
	if err := writeFileAtomic(ir.Archive, func(w *os.File) error {
		return image.WriteArchive(w, img, Repository, o.Tag(f), o.Created)
	}); err != nil {
		return nil, fmt.Errorf("appliance %s: %w", f, err)
	}
	st, err := os.Stat(ir.Archive)
	if err != nil {
		return nil, fmt.Errorf("appliance %s: %w", f, err)
	}
	ir.ArchiveBytes = st.Size()
	if bo.Bundle {
		if ir.sbom, err = flavourSBOM(f, o, bo); err != nil {
			return nil, err
		}
	}
	return ir, nil
}

// flavourSBOM is the bill of materials of flavour f: the binary's
// modules and the files the image adds to it.
func flavourSBOM(f Flavour, o *Options, bo BuildOptions) ([]byte, error) {
	var files []sbom.Component
	add := func(typ, path, name, version, lic, desc string) error {
		c, err := sbom.FileComponent(typ, path, name, version, []string{lic}, desc)
		if err != nil {
			return err
		}
		files = append(files, c)
		return nil
	}
	if err := add("data", o.CACerts, "ca-certificates", debianVersion("ca-certificates"), "MPL-2.0", "CA certificates ("+o.CACerts+" of the build host)"); err != nil {
		return nil, err
	}
	files = append(files, sbom.Component{Type: "data", Name: "tzdata", Version: debianVersion("tzdata"), Licenses: []string{"LicenseRef-public-domain"}, Description: "time zone database (" + o.ZoneInfo + ")"})
	files = append(files, sbom.Component{Type: "file", Name: "gatehouse.yaml", Version: o.Version, Licenses: []string{sbom.NoAssertion},
		SHA256: fmt.Sprintf("%x", sha256.Sum256(DefaultConfig)), Description: "default configuration at " + ConfigPath})
	if f == Full {
		version, license := npmPackage(o.ChdbLib)
		if err := add("library", o.ChdbLib, "libchdb.so", version, license, "embedded ClickHouse engine (npm @chdb/lib-linux-x64-gnu) at "+ChdbLibPath); err != nil {
			return nil, err
		}
		so, err := resolveShared([]string{o.Binaries[f], o.ChdbLib}, o.LibDirs, filepath.Base(o.ChdbLib))
		if err != nil {
			return nil, fmt.Errorf("appliance sbom: %w", err)
		}
		for name, host := range so.Libs {
			if err := add("library", host, name, debianVersion("libc6"), "LGPL-2.1-or-later", "glibc (Debian libc6) at /lib/x86_64-linux-gnu/"+name); err != nil {
				return nil, err
			}
		}
	}
	bom, err := sbom.Generate(sbom.Options{
		Binary: o.Binaries[f], Name: "gatehouse-" + string(f), Version: o.Version,
		ModCache: bo.ModCache, GoRoot: bo.GoRoot, ModuleRoot: bo.RepoRoot, Files: files, Timestamp: o.Created,
	})
	if err != nil {
		return nil, fmt.Errorf("appliance %s: %w", f, err)
	}
	return bom.MarshalIndent()
}

// debianVersion is the version of a Debian package on the build host,
// where the image's system files come from; "unknown" off Debian.
func debianVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// npmPackage reads the package.json next to libchdb.so (npm's layout).
func npmPackage(lib string) (version, license string) {
	var p struct{ Version, License string }
	b, err := os.ReadFile(filepath.Join(filepath.Dir(lib), "package.json"))
	if err != nil || json.Unmarshal(b, &p) != nil {
		return "unknown", sbom.NoAssertion
	}
	if p.License == "" {
		p.License = sbom.NoAssertion
	}
	return p.Version, p.License
}

//go:embed INSTALL.md.tmpl
var installTemplate string

// writeBundle writes the offline bundle: the image archives, their
// SBOMs, the default configuration, the GraphQL schema, the ClickHouse
// DDL and INSTALL.md, with SHA256SUMS (signed with bo.SignKey).
func writeBundle(o *Options, bo BuildOptions, images []ImageResult) (string, error) {
	dir := Repository + "-" + o.Version
	var files []bundle.File
	for _, ir := range images {
		files = append(files,
			bundle.File{Name: "images/" + filepath.Base(ir.Archive), Source: ir.Archive},
			bundle.File{Name: "sbom/" + Repository + "-" + string(ir.Flavour) + ".cdx.json", Data: ir.sbom})
	}
	files = append(files, bundle.File{Name: "config/gatehouse.yaml", Data: DefaultConfig})
	for _, g := range []struct{ glob, dir string }{{"graph/*.graphql", "graphql"}, {"schema/clickhouse/*.sql", "clickhouse"}} {
		matches, err := filepath.Glob(filepath.Join(bo.RepoRoot, g.glob))
		if err != nil || len(matches) == 0 {
			return "", fmt.Errorf("appliance bundle: no %s under %s", g.glob, bo.RepoRoot)
		}
		for _, m := range matches {
			files = append(files, bundle.File{Name: g.dir + "/" + filepath.Base(m), Source: m})
		}
	}
	var install bytes.Buffer
	t, err := template.New("INSTALL.md").Funcs(template.FuncMap{"base": filepath.Base}).Parse(installTemplate)
	if err != nil {
		return "", fmt.Errorf("appliance bundle: INSTALL.md: %w", err)
	}
	if err := t.Execute(&install, map[string]any{"Version": o.Version, "Dir": dir, "Images": images, "Signed": bo.SignKey != nil,
		"Port": Port, "DataDir": DataDir, "ConfigPath": ConfigPath, "UID": UID, "Repository": Repository}); err != nil {
		return "", fmt.Errorf("appliance bundle: INSTALL.md: %w", err)
	}
	files = append(files, bundle.File{Name: "INSTALL.md", Data: install.Bytes()})
	out := filepath.Join(bo.OutDir, dir+"-bundle.tar")
	err = writeFileAtomic(out, func(w *os.File) error {
		return bundle.Write(w, files, bundle.Options{Dir: dir, ModTime: o.Created, SignKey: bo.SignKey})
	})
	if err != nil {
		return "", fmt.Errorf("appliance bundle: %w", err)
	}
	return out, nil
}

// writeFileAtomic writes path through a temporary file renamed into
// place, so an interrupted build leaves no truncated archive behind.
func writeFileAtomic(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
