package appliance

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const repoRoot = ".."

var created = time.Unix(1790000000, 0)

// buildStatic builds the demo MCP server (static, small) into dir: a
// stand-in for the slim gatehouse binary, which takes a minute to link.
func buildStatic(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "gatehouse")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", exe, "./test/fixtures/demo-server")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// buildSlim builds the slim image and the bundle from a freshly built
// binary in a directory of its own, with its inputs' times set to mtime.
func buildSlim(t *testing.T, when time.Time, mtime time.Time) *Result {
	t.Helper()
	dir := t.TempDir()
	bin := buildStatic(t, dir)
	if err := os.Chtimes(bin, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	res, err := Build(&Options{
		Version: "1.0.0", Revision: "0123456789abcdef", Created: when,
		Binaries: map[Flavour]string{Slim: bin}, TempDir: dir,
	}, BuildOptions{
		OutDir: filepath.Join(dir, "dist"), Bundle: true, RepoRoot: repoRoot,
		ModCache: goEnv(t, "GOMODCACHE"), GoRoot: goEnv(t, "GOROOT"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestReproducible: two builds of the same sources, each linking its own
// binary, in different directories at different times, give the same
// image digest and byte-identical archives and bundles; another creation
// time gives another digest.
func TestReproducible(t *testing.T) {
	t.Parallel()
	a := buildSlim(t, created, time.Now())
	b := buildSlim(t, created, time.Now().Add(-48*time.Hour))
	if a.Images[0].Digest != b.Images[0].Digest {
		t.Errorf("image digests differ: %s vs %s", a.Images[0].Digest, b.Images[0].Digest)
	}
	if ha, hb := sha256File(t, a.Images[0].Archive), sha256File(t, b.Images[0].Archive); ha != hb {
		t.Errorf("image archives differ: %s vs %s", ha, hb)
	}
	if ha, hb := sha256File(t, a.Bundle), sha256File(t, b.Bundle); ha != hb {
		t.Errorf("bundles differ: %s vs %s", ha, hb)
	}
	c := buildSlim(t, created.Add(time.Second), time.Now())
	if c.Images[0].Digest == a.Images[0].Digest {
		t.Error("another creation time gives the same digest: the time is not in the image")
	}
}

// archiveEntries reads a tar file into name → content (regular files).
func archiveEntries(t *testing.T, r io.Reader) (map[string][]byte, []*tar.Header) {
	t.Helper()
	files := map[string][]byte{}
	var hdrs []*tar.Header
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

// TestImageContent reads the archive as a runtime would: both indexes
// point at the same manifest, whose config runs gatehouse serve as the
// gatehouse user, and the layers hold the users, the data volume owned
// by that user, the binary and the default configuration, every entry
// with the fixed time.
func TestImageContent(t *testing.T) {
	t.Parallel()
	res := buildSlim(t, created, time.Now())
	f, err := os.Open(res.Images[0].Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, hdrs := archiveEntries(t, f)
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("archive entries are not sorted: %v", names)
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	var docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil || len(docker) != 1 {
		t.Fatalf("manifest.json: %v %s", err, files["manifest.json"])
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", files["oci-layout"])
	}
	if index.Manifests[0].Digest != res.Images[0].Digest || index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "1.0.0-slim" {
		t.Errorf("index.json: %+v, want digest %s", index.Manifests[0], res.Images[0].Digest)
	}
	if docker[0].RepoTags[0] != "gatehouse:1.0.0-slim" {
		t.Errorf("manifest.json RepoTags %v", docker[0].RepoTags)
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(files["blobs/sha256/"+strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")], &manifest); err != nil {
		t.Fatal(err)
	}
	if "blobs/sha256/"+strings.TrimPrefix(manifest.Config.Digest, "sha256:") != docker[0].Config || len(manifest.Layers) != len(docker[0].Layers) {
		t.Errorf("manifest.json and the OCI manifest disagree: %+v vs %+v", docker[0], manifest)
	}
	var config struct {
		Created string
		Config  struct {
			User       string
			Env        []string
			Entrypoint []string
			Volumes    map[string]any
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal(files[docker[0].Config], &config); err != nil {
		t.Fatal(err)
	}
	c := config.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/bin/gatehouse", "serve"}) || c.Volumes[DataDir] == nil ||
		!slices.Contains(c.Env, "GATEHOUSE_LISTEN=0.0.0.0:8080") || !slices.Contains(c.Env, "GATEHOUSE_DATA_DIR=/var/lib/gatehouse") ||
		c.Labels["org.opencontainers.image.version"] != "1.0.0" || c.Labels["org.opencontainers.image.revision"] != "0123456789abcdef" ||
		c.Labels["org.opencontainers.image.created"] != "2026-09-21T14:13:20Z" || config.Created != "2026-09-21T14:13:20Z" {
		t.Errorf("image config: %+v (created %s)", c, config.Created)
	}
	if slices.ContainsFunc(c.Env, func(e string) bool { return strings.HasPrefix(e, "GATEHOUSE_CHDB_LIB=") }) {
		t.Error("the slim image points at an engine it does not carry")
	}

	layerFiles := map[string]*tar.Header{}
	for _, l := range docker[0].Layers {
		zr, err := gzip.NewReader(strings.NewReader(string(files[l])))
		if err != nil {
			t.Fatalf("layer %s: %v", l, err)
		}
		_, hdrs := archiveEntries(t, zr)
		for _, h := range hdrs {
			layerFiles[strings.TrimSuffix(h.Name, "/")] = h
			if !h.ModTime.Equal(created) || h.Uname != "" {
				t.Errorf("layer entry %s: time %v, user name %q", h.Name, h.ModTime, h.Uname)
			}
		}
	}
	for name, want := range map[string]struct {
		mode     int64
		uid, gid int
	}{
		"var/lib/gatehouse":                 {0o750, UID, GID},
		"usr/bin/gatehouse":                 {0o755, 0, 0},
		"etc/gatehouse/gatehouse.yaml":      {0o644, 0, 0},
		"etc/passwd":                        {0o644, 0, 0},
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0, 0},
		"usr/share/zoneinfo/Etc/UTC":        {0o644, 0, 0},
		"tmp":                               {0o1777, 0, 0},
	} {
		h := layerFiles[name]
		if h == nil {
			t.Errorf("%s is not in the image", name)
			continue
		}
		if h.Mode != want.mode || h.Uid != want.uid || h.Gid != want.gid {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", name, h.Mode, h.Uid, h.Gid, want.mode, want.uid, want.gid)
		}
	}
	if _, ok := layerFiles["usr/lib/gatehouse/libchdb.so"]; ok {
		t.Error("the slim image carries the engine")
	}
}

// TestSkopeoReadsArchive: skopeo reads the archive both as an OCI archive
// and as a docker archive (what `docker load` reads).
func TestSkopeoReadsArchive(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed (make appliance-test installs it): apt-get install -y skopeo")
	}
	res := buildSlim(t, created, time.Now())
	for _, transport := range []string{"oci-archive", "docker-archive"} {
		out, err := exec.Command("skopeo", "inspect", transport+":"+res.Images[0].Archive).CombinedOutput()
		if err != nil {
			t.Errorf("skopeo inspect %s: %v\n%s", transport, err, out)
			continue
		}
		var info struct {
			Digest string
			Labels map[string]string
			Layers []string
		}
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("%s: %v", transport, err)
		}
		if info.Labels["org.opencontainers.image.version"] != "1.0.0" || len(info.Layers) != 2 {
			t.Errorf("%s: %+v", transport, info)
		}
		if transport == "oci-archive" && info.Digest != res.Images[0].Digest {
			t.Errorf("oci-archive digest %s, built %s", info.Digest, res.Images[0].Digest)
		}
	}
}

func TestSlimRefusesDynamicBinary(t *testing.T) {
	t.Parallel()
	_, err := ImageSpec(Slim, &Options{Version: "1", Created: created, Binaries: map[Flavour]string{Slim: "/bin/ls"}})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("ImageSpec(slim, /bin/ls) = %v, want a dynamically linked error", err)
	}
}

// TestResolveShared follows a host executable's libraries as the loader
// would: the glibc runtime the full flavour copies.
func TestResolveShared(t *testing.T) {
	t.Parallel()
	o, _ := (&Options{Version: "1", Created: created}).withDefaults()
	so, err := resolveShared([]string{"/bin/ls"}, o.LibDirs)
	if err != nil {
		t.Fatal(err)
	}
	if so.Interpreter != "/lib64/ld-linux-x86-64.so.2" || so.Libs["libc.so.6"] == "" || so.Libs["ld-linux-x86-64.so.2"] == "" {
		t.Errorf("resolved %+v", so)
	}
	for name, p := range so.Libs {
		if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s → %s is not a regular file (%v)", name, p, err)
		}
	}
}
