package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WriteArchive writes img as a tar archive holding both an OCI image
// layout (oci-layout, index.json, blobs/sha256/…) and the manifest.json
// of `docker save`, over the same blobs, as Docker 25 and later write
// it. `docker load`, `podman load`, `skopeo … oci-archive:FILE` and
// `skopeo … docker-archive:FILE` read it. repo and tag name the image
// (e.g. "gatehouse", "1.4.0-full"); mtime is every entry's time.
func WriteArchive(w io.Writer, img v1.Image, repo, tag string, mtime time.Time) error {
	if err := writeArchive(w, img, repo, tag, mtime.UTC()); err != nil {
		return fmt.Errorf("write image archive %s:%s: %w", repo, tag, err)
	}
	return nil
}

func writeArchive(w io.Writer, img v1.Image, repo, tag string, mtime time.Time) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	ref := repo + ":" + tag
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Digest:    digest,
			Size:      int64(len(manifest)),
			Annotations: map[string]string{
				"io.containerd.image.name":          "docker.io/library/" + ref,
				"org.opencontainers.image.ref.name": tag,
			},
		}},
	})
	if err != nil {
		return err
	}
	type dockerManifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	dm := dockerManifest{Config: blobPath(configName), RepoTags: []string{ref}}

	tw := tar.NewWriter(w)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, size int64, body io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if n, err := io.Copy(tw, body); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		} else if n != size {
			return fmt.Errorf("%s: wrote %d bytes, want %d", name, n, size)
		}
		return nil
	}
	bytesFile := func(name string, b []byte) error { return file(name, int64(len(b)), bytes.NewReader(b)) }

	// Blobs in digest order, then the three index files: sorted names,
	// the order `docker save` writes too.
	blobs := map[string]func() error{
		configName.Hex: func() error { return bytesFile(blobPath(configName), config) },
		digest.Hex:     func() error { return bytesFile(blobPath(digest), manifest) },
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		dm.Layers = append(dm.Layers, blobPath(d))
		blobs[d.Hex] = func() error {
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			return file(blobPath(d), size, rc)
		}
	}
	docker, err := json.Marshal([]dockerManifest{dm})
	if err != nil {
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	for _, hex := range slices.Sorted(maps.Keys(blobs)) {
		if err := blobs[hex](); err != nil {
			return err
		}
	}
	if err := bytesFile("index.json", index); err != nil {
		return err
	}
	if err := bytesFile("manifest.json", docker); err != nil {
		return err
	}
	if err := bytesFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	return tw.Close()
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
