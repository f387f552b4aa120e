// Package image builds reproducible OCI images without a container
// engine, and writes them as one archive that `docker load`, `podman
// load` and skopeo (oci-archive: and docker-archive:) all accept.
//
// Reproducible means that the same [Spec] gives the same image digest:
// layer entries are sorted, carry [Spec.Created] as their modification
// time and the owner the spec names (never the builder's), gzip output
// has no name or time, and the config's timestamps are all
// [Spec.Created]. A host file's own time, owner and position on disk do
// not reach the image.
package image

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Entry is one file, directory or symbolic link of a layer.
type Entry struct {
	// Path is the absolute path in the image, e.g. /usr/bin/gatehouse.
	Path string
	// Mode holds the permission bits and, for a directory or symbolic
	// link, fs.ModeDir or fs.ModeSymlink. Zero means 0644 for a file.
	Mode fs.FileMode
	// UID and GID own the entry. Zero means root.
	UID, GID int
	// Source is the host file whose content a regular file gets. Only
	// its content is used: mode, owner and times come from the entry.
	Source string
	// Data is the content of a regular file without a Source.
	Data []byte
	// Link is the target of a symbolic link.
	Link string
}

// Layer is one image layer. Parent directories that no entry names are
// added as root-owned 0755 directories.
type Layer struct {
	// Comment describes the layer in the image history.
	Comment string
	Entries []Entry
}

// Spec describes an image.
type Spec struct {
	// Created is the image's creation time and the modification time of
	// every layer entry (e.g. the commit time, SOURCE_DATE_EPOCH).
	Created time.Time
	// Layers are applied in order over an empty root file system.
	Layers []Layer
	// Config is the runtime configuration: User, Env, Entrypoint, Cmd,
	// WorkingDir, Volumes, ExposedPorts, Labels, StopSignal.
	Config v1.Config
	// Annotations go on the manifest (e.g. org.opencontainers.image.*).
	Annotations map[string]string
	// TempDir holds the compressed layers until [Image.Close]. Empty
	// means os.TempDir().
	TempDir string
	// CompressionLevel is the gzip level of the layers. Zero means
	// gzip.DefaultCompression.
	CompressionLevel int
}

// Image is a built image whose layers live in temporary files.
type Image struct {
	v1.Image
	dir    string
	layers []*fileLayer
}

// UnpackedSize is the size of the image's layers uncompressed (tar
// archives), about what the image takes unpacked.
func (img *Image) UnpackedSize() int64 {
	var n int64
	for _, l := range img.layers {
		n += l.unpacked
	}
	return n
}

// Close removes the image's temporary files.
func (img *Image) Close() error { return os.RemoveAll(img.dir) }

// Build builds the image spec describes.
func Build(spec *Spec) (img *Image, err error) {
	if spec.Created.IsZero() {
		return nil, errors.New("build image: Created is required (reproducible builds need a fixed time)")
	}
	dir, err := os.MkdirTemp(spec.TempDir, "gatehouse-image-")
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	created := v1.Time{Time: spec.Created.UTC()}
	level := spec.CompressionLevel
	if level == 0 {
		level = gzip.DefaultCompression
	}
	var adds []mutate.Addendum
	var layers []*fileLayer
	for i, l := range spec.Layers {
		fl, err := writeLayer(filepath.Join(dir, fmt.Sprintf("layer-%d.tar.gz", i)), l.Entries, spec.Created.UTC(), level)
		if err != nil {
			return nil, fmt.Errorf("build image: layer %d (%s): %w", i, l.Comment, err)
		}
		layers = append(layers, fl)
		adds = append(adds, mutate.Addendum{
			Layer:     fl,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: "gatehouse appliance build", Comment: l.Comment},
		})
	}
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      created,
		Config:       spec.Config,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("build image: config: %w", err)
	}
	base = mutate.MediaType(base, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	out, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	if len(spec.Annotations) > 0 {
		out = mutate.Annotations(out, spec.Annotations).(v1.Image)
	}
	return &Image{Image: out, dir: dir, layers: layers}, nil
}

// writeLayer writes entries as a gzipped tar to file in one pass, hashing
// both the tar (the diff ID) and the gzip stream (the digest).
func writeLayer(file string, entries []Entry, mtime time.Time, level int) (*fileLayer, error) {
	entries, err := withParents(entries)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	digest, diffID := sha256.New(), sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, digest)}
	zw, err := gzip.NewWriterLevel(cw, level)
	if err != nil {
		return nil, err
	}
	uw := &countWriter{w: io.MultiWriter(zw, diffID)}
	tw := tar.NewWriter(uw)
	for _, e := range entries {
		if err := writeEntry(tw, e, mtime); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &fileLayer{path: file, size: cw.n, unpacked: uw.n, digest: hashOf(digest), diffID: hashOf(diffID)}, nil
}

// withParents validates and sorts entries and adds the directories
// between them and the root that no entry names.
func withParents(entries []Entry) ([]Entry, error) {
	seen := map[string]bool{}
	var out []Entry
	for _, e := range entries {
		p := path.Clean(e.Path)
		if !path.IsAbs(e.Path) || p == "/" {
			return nil, fmt.Errorf("entry path %q: want an absolute path below /", e.Path)
		}
		if seen[p] {
			return nil, fmt.Errorf("entry path %q: listed twice", p)
		}
		seen[p] = true
		e.Path = p
		out = append(out, e)
	}
	for _, e := range slices.Clone(out) {
		for d := path.Dir(e.Path); d != "/"; d = path.Dir(d) {
			if !seen[d] {
				seen[d] = true
				out = append(out, Entry{Path: d, Mode: fs.ModeDir | 0o755})
			}
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func writeEntry(tw *tar.Writer, e Entry, mtime time.Time) error {
	h := &tar.Header{
		Name:    strings.TrimPrefix(e.Path, "/"),
		Mode:    int64(e.Mode.Perm()),
		Uid:     e.UID,
		Gid:     e.GID,
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	if e.Mode&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	switch {
	case e.Mode.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		return tw.WriteHeader(h)
	case e.Mode&fs.ModeSymlink != 0:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		if h.Mode == 0 {
			h.Mode = 0o777
		}
		return tw.WriteHeader(h)
	}
	if h.Mode == 0 {
		h.Mode = 0o644
	}
	h.Typeflag = tar.TypeReg
	if e.Source == "" {
		h.Size = int64(len(e.Data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(e.Data)
		return err
	}
	src, err := os.Open(e.Source)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("source %s is not a regular file", e.Source)
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if n, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("copy %s: %w", e.Source, err)
	} else if n != h.Size {
		return fmt.Errorf("source %s changed size while copied", e.Source)
	}
	return nil
}

// fileLayer is a gzipped layer in a file whose hashes are known.
type fileLayer struct {
	path           string
	size, unpacked int64
	digest, diffID v1.Hash
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return gunzipFile(l.path) }

func gunzipFile(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}
