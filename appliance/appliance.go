// Package appliance builds Gatehouse's appliance: an OCI image in two
// flavours, built without a container engine and reproducible (the same
// commit gives the same digest), and the offline bundle an air-gapped
// site installs from (the images, checksums, an SBOM per flavour, the
// default configuration, the GraphQL schema, the ClickHouse DDL and
// INSTALL.md).
//
// The full flavour carries the embedded ClickHouse engine (libchdb.so)
// and the glibc runtime it and the gatehouse binary load; the slim
// flavour is a static binary (built with the nochdb tag) for sites that
// send the audit trail to their own ClickHouse.
//
// Generic parts live in subpackages: [image] writes images,
// [sbom] bills of materials, [bundle] bundles (and verifies them, for
// `gatehouse bundle verify`).
package appliance

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gatehouse-dev/gatehouse/appliance/image"
)

// Flavour names an image variant.
type Flavour string

// The flavours.
const (
	// Full carries the embedded ClickHouse engine and glibc.
	Full Flavour = "full"
	// Slim is a static binary without the engine: audit goes to a
	// ClickHouse server ($GATEHOUSE_CLICKHOUSE_ADDR).
	Slim Flavour = "slim"
)

// Flavours lists every flavour, in build order.
var Flavours = []Flavour{Full, Slim}

// Where things are in the image.
const (
	BinaryPath  = "/usr/bin/gatehouse"
	ConfigPath  = "/etc/gatehouse/gatehouse.yaml"
	DataDir     = "/var/lib/gatehouse"
	ChdbLibPath = "/usr/lib/gatehouse/libchdb.so"
	// UID and GID of the gatehouse user the image runs as.
	UID, GID = 65532, 65532
	// Port is the port the gateway listens on.
	Port = 8080
	// Repository is the image's name; tags are VERSION-FLAVOUR.
	Repository = "gatehouse"
)

// DefaultConfig is the configuration at [ConfigPath]: process settings
// only (listen, data_dir, log, http).
//
//go:embed gatehouse.yaml
var DefaultConfig []byte

// Options describe one appliance build.
type Options struct {
	// Version and Revision (the commit) label the images. Version is
	// required.
	Version, Revision string
	// Created is the fixed time of every image, file and bill (the
	// commit time). Required.
	Created time.Time
	// Source is the org.opencontainers.image.source label. Empty means
	// https://github.com/gatehouse-dev/gatehouse.
	Source string
	// License is the org.opencontainers.image.licenses label, an SPDX
	// expression. Empty means NOASSERTION.
	License string
	// Binaries maps a flavour to its gatehouse binary; flavours without
	// one are not built. The slim binary must be static.
	Binaries map[Flavour]string
	// ChdbLib is libchdb.so, required for the full flavour.
	ChdbLib string
	// LibDirs are searched for the shared libraries the full flavour
	// needs. Empty means /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu.
	LibDirs []string
	// CACerts is the CA bundle copied to /etc/ssl/certs. Empty means
	// /etc/ssl/certs/ca-certificates.crt.
	CACerts string
	// ZoneInfo is the time zone database copied to /usr/share/zoneinfo.
	// Empty means /usr/share/zoneinfo.
	ZoneInfo string
	// TempDir holds intermediate files. Empty means os.TempDir().
	TempDir string
	// CompressionLevel is the gzip level of the layers. Zero means the
	// default.
	CompressionLevel int
}

func (o *Options) withDefaults() (*Options, error) {
	c := *o
	if c.Version == "" || c.Created.IsZero() {
		return nil, errors.New("appliance: Version and Created are required")
	}
	if c.Source == "" {
		c.Source = "https://github.com/gatehouse-dev/gatehouse"
	}
	if c.License == "" {
		c.License = "NOASSERTION"
	}
	if len(c.LibDirs) == 0 {
		c.LibDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}
	}
	if c.CACerts == "" {
		c.CACerts = "/etc/ssl/certs/ca-certificates.crt"
	}
	if c.ZoneInfo == "" {
		c.ZoneInfo = "/usr/share/zoneinfo"
	}
	return &c, nil
}

// Tag is the image tag of a flavour: VERSION-FLAVOUR.
func (o *Options) Tag(f Flavour) string { return o.Version + "-" + string(f) }

// ImageSpec returns the image of flavour f. Layers, bottom up: the base
// system files (users, CA certificates, time zones, the data volume),
// for the full flavour the glibc runtime and the engine, and last the
// gatehouse binary with its default configuration, the layer that
// changes with every release.
func ImageSpec(f Flavour, opts *Options) (*image.Spec, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	bin := o.Binaries[f]
	if bin == "" {
		return nil, fmt.Errorf("appliance %s: no gatehouse binary given", f)
	}
	base, err := baseLayer(o)
	if err != nil {
		return nil, fmt.Errorf("appliance %s: %w", f, err)
	}
	env := []string{
		"PATH=/usr/bin",
		"GATEHOUSE_CONFIG=" + ConfigPath,
		"GATEHOUSE_LISTEN=0.0.0.0:" + strconv.Itoa(Port),
		"GATEHOUSE_DATA_DIR=" + DataDir,
	}
	layers := []image.Layer{base}
	switch f {
	case Full:
		if o.ChdbLib == "" {
			return nil, errors.New("appliance full: ChdbLib (libchdb.so) is required")
		}
		runtime, err := glibcLayer(bin, o)
		if err != nil {
			return nil, fmt.Errorf("appliance full: %w", err)
		}
		layers = append(layers, runtime, image.Layer{
			Comment: "embedded ClickHouse engine (chDB)",
			Entries: []image.Entry{{Path: ChdbLibPath, Mode: 0o755, Source: o.ChdbLib}},
		})
		env = append(env, "GATEHOUSE_CHDB_LIB="+ChdbLibPath)
	case Slim:
		interp, _, err := elfDeps(bin)
		if err != nil {
			return nil, fmt.Errorf("appliance slim: %w", err)
		}
		if interp != "" {
			return nil, fmt.Errorf("appliance slim: %s is dynamically linked (loader %s); build it with -tags nochdb and CGO_ENABLED=0", bin, interp)
		}
	default:
		return nil, fmt.Errorf("appliance: unknown flavour %q", f)
	}
	layers = append(layers, image.Layer{
		Comment: "gatehouse " + o.Version,
		Entries: []image.Entry{
			{Path: BinaryPath, Mode: 0o755, Source: bin},
			{Path: ConfigPath, Mode: 0o644, Data: DefaultConfig},
		},
	})
	created := o.Created.UTC()
	labels := map[string]string{
		"org.opencontainers.image.title":       "Gatehouse",
		"org.opencontainers.image.description": "Gatehouse MCP gateway appliance (" + string(f) + ")",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.licenses":    o.License,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
		"dev.gatehouse.flavour":                string(f),
	}
	return &image.Spec{
		Created: created,
		Layers:  layers,
		Config: v1.Config{
			User:         strconv.Itoa(UID) + ":" + strconv.Itoa(GID),
			Env:          env,
			Entrypoint:   []string{BinaryPath, "serve"},
			WorkingDir:   DataDir,
			Volumes:      map[string]struct{}{DataDir: {}},
			ExposedPorts: map[string]struct{}{strconv.Itoa(Port) + "/tcp": {}},
			Labels:       labels,
			StopSignal:   "SIGTERM",
		},
		Annotations:      labels,
		TempDir:          o.TempDir,
		CompressionLevel: o.CompressionLevel,
	}, nil
}

// baseLayer holds what every flavour has: the users, name service files,
// CA certificates, time zones, /tmp and the data volume.
func baseLayer(o *Options) (image.Layer, error) {
	uid, gid := strconv.Itoa(UID), strconv.Itoa(GID)
	entries := []image.Entry{
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\ngatehouse:x:" + uid + ":" + gid + ":Gatehouse:" + DataDir + ":/sbin/nologin\n")},
		{Path: "/etc/group", Data: []byte("root:x:0:\ngatehouse:x:" + gid + ":\n")},
		{Path: "/etc/nsswitch.conf", Data: []byte("hosts: files dns\n")},
		{Path: "/etc/hosts", Data: []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")},
		{Path: "/etc/ssl/certs/ca-certificates.crt", Source: o.CACerts},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: DataDir, Mode: fs.ModeDir | 0o750, UID: UID, GID: GID},
		{Path: path.Dir(ConfigPath), Mode: fs.ModeDir | 0o755},
	}
	zones, err := treeEntries(o.ZoneInfo, "/usr/share/zoneinfo")
	if err != nil {
		return image.Layer{}, fmt.Errorf("time zones: %w", err)
	}
	return image.Layer{Comment: "base: users, CA certificates, time zones, data volume", Entries: append(entries, zones...)}, nil
}

// glibcLayer holds the dynamic loader and the libraries the binary and
// libchdb.so need, from the build host.
func glibcLayer(bin string, o *Options) (image.Layer, error) {
	so, err := resolveShared([]string{bin, o.ChdbLib}, o.LibDirs, filepath.Base(o.ChdbLib))
	if err != nil {
		return image.Layer{}, fmt.Errorf("glibc runtime: %w", err)
	}
	if so.Interpreter == "" {
		return image.Layer{}, fmt.Errorf("glibc runtime: %s is static: the full flavour wants the binary that loads libchdb.so", bin)
	}
	const libDir = "/lib/x86_64-linux-gnu"
	var entries []image.Entry
	for _, name := range slices.Sorted(maps.Keys(so.Libs)) {
		entries = append(entries, image.Entry{Path: libDir + "/" + name, Mode: 0o755, Source: so.Libs[name]})
	}
	if inImage := libDir + "/" + path.Base(so.Interpreter); inImage != so.Interpreter {
		entries = append(entries, image.Entry{Path: so.Interpreter, Mode: fs.ModeSymlink | 0o777, Link: inImage})
	}
	return image.Layer{Comment: "glibc runtime for the engine", Entries: entries}, nil
}

// treeEntries copies the host directory tree root to dst: directories,
// regular files and symbolic links (as links).
func treeEntries(root, dst string) ([]image.Entry, error) {
	var out []image.Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		target := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			out = append(out, image.Entry{Path: target, Mode: fs.ModeDir | 0o755})
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, image.Entry{Path: target, Mode: fs.ModeSymlink | 0o777, Link: link})
		case d.Type().IsRegular():
			out = append(out, image.Entry{Path: target, Mode: 0o644, Source: p})
		}
		return nil
	})
	return out, err
}
