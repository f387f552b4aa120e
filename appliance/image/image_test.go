package image

import (
	"io/fs"
	"strings"
	"testing"
	"time"
)

func TestWithParents(t *testing.T) {
	t.Parallel()
	got, err := withParents([]Entry{
		{Path: "/usr/bin/gatehouse", Mode: 0o755},
		{Path: "/var/lib/gatehouse", Mode: fs.ModeDir | 0o750, UID: 65532},
		{Path: "/etc/passwd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range got {
		paths = append(paths, e.Path)
		if e.Path == "/var/lib/gatehouse" && e.UID != 65532 {
			t.Error("a listed directory lost its owner")
		}
		if e.Path == "/var/lib" && (e.Mode != fs.ModeDir|0o755 || e.UID != 0) {
			t.Errorf("an added parent: %+v", e)
		}
	}
	want := "/etc /etc/passwd /usr /usr/bin /usr/bin/gatehouse /var /var/lib /var/lib/gatehouse"
	if strings.Join(paths, " ") != want {
		t.Errorf("entries %v, want %s", paths, want)
	}
	for _, bad := range [][]Entry{{{Path: "relative/x"}}, {{Path: "/"}}, {{Path: "/a"}, {Path: "/b/../a"}}} {
		if _, err := withParents(bad); err == nil {
			t.Errorf("withParents(%+v) accepted", bad)
		}
	}
}

func TestBuildNeedsFixedTime(t *testing.T) {
	t.Parallel()
	if _, err := Build(&Spec{}); err == nil || !strings.Contains(err.Error(), "Created is required") {
		t.Errorf("Build without a time: %v", err)
	}
	img, err := Build(&Spec{Created: time.Unix(1790000000, 0), TempDir: t.TempDir(), Layers: []Layer{{Entries: []Entry{{Path: "/etc/motd", Data: []byte("hi\n")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	again, err := Build(&Spec{Created: time.Unix(1790000000, 0), TempDir: t.TempDir(), Layers: []Layer{{Entries: []Entry{{Path: "/etc/motd", Data: []byte("hi\n")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("digests %s and %s of one spec", d1, d2)
	}
	// 2 KiB of tar: header, content block, directory header, end blocks.
	if n := img.UnpackedSize(); n < 2048 || n > 10240 {
		t.Errorf("UnpackedSize %d", n)
	}
}
