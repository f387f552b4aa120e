package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/appliance/bundle"
)

// writeTestBundle writes a bundle with two files, signed with key when
// not nil, and returns its path.
func writeTestBundle(t *testing.T, dir string, key ed25519.PrivateKey) string {
	t.Helper()
	var buf bytes.Buffer
	files := []bundle.File{
		{Name: "INSTALL.md", Data: []byte("# Installing\n")},
		{Name: "images/gatehouse-1.0-full.oci.tar", Data: bytes.Repeat([]byte("image-bytes "), 1000)},
	}
	if err := bundle.Write(&buf, files, bundle.Options{Dir: "gatehouse-1.0", ModTime: time.Unix(1790000000, 0), SignKey: key}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "bundle.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rewriteBundle copies the bundle at src to a new file, passing each
// regular file through edit (nil drops it) and appending extra entries.
func rewriteBundle(t *testing.T, src string, edit func(name string, body []byte) []byte, extra map[string]string) string {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(f), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if body = edit(strings.TrimPrefix(h.Name, "gatehouse-1.0/"), body); body == nil {
				continue
			}
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range extra {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "gatehouse-1.0/" + name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tampered.tar")
	if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePublicKey(t *testing.T, dir string, pub ed25519.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "publisher.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBundleVerifyCommand runs `gatehouse bundle verify` on a good bundle
// and on bundles tampered with in each way it must catch.
func TestBundleVerifyCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	good := writeTestBundle(t, dir, priv)
	pubFile := writePublicKey(t, dir, pub)
	keep := func(_ string, b []byte) []byte { return b }
	tests := []struct {
		name string
		args []string
		code int
		want []string // in stdout (code 0) or stderr
	}{
		{name: "good bundle, signature checked", args: []string{"--key", pubFile, good}, code: 0,
			want: []string{"ok: " + good + " (gatehouse-1.0): 2 files match SHA256SUMS", "ok: SHA256SUMS is signed by the key " + pubFile}},
		{name: "good bundle, no key", args: []string{good}, code: 0,
			want: []string{"2 files match", "signed, but no --key was given: the signature was not checked"}},
		{name: "changed byte", code: 1, args: []string{"--key", pubFile, rewriteBundle(t, good, func(name string, b []byte) []byte {
			if name == "images/gatehouse-1.0-full.oci.tar" {
				b[7] ^= 0x20
			}
			return b
		}, nil)}, want: []string{"NOT intact", "images/gatehouse-1.0-full.oci.tar: checksum does not match SHA256SUMS"}},
		{name: "extra file", code: 1, args: []string{"--key", pubFile, rewriteBundle(t, good, keep, map[string]string{"images/backdoor.tar": "x"})},
			want: []string{"images/backdoor.tar: in the bundle but not listed in SHA256SUMS"}},
		{name: "missing file", code: 1, args: []string{"--key", pubFile, rewriteBundle(t, good, func(name string, b []byte) []byte {
			if name == "INSTALL.md" {
				return nil
			}
			return b
		}, nil)}, want: []string{"INSTALL.md: listed in SHA256SUMS but not in the bundle"}},
		{name: "signed by another key", code: 1, args: []string{"--key", pubFile, writeTestBundle(t, t.TempDir(), otherPriv)},
			want: []string{"SHA256SUMS.sig: signature does not verify with the given key"}},
		{name: "unsigned bundle, key given", code: 1, args: []string{"--key", pubFile, writeTestBundle(t, t.TempDir(), nil)},
			want: []string{"the bundle is not signed"}},
		{name: "no such file", code: 1, args: []string{filepath.Join(dir, "nope.tar")}, want: []string{"opening the bundle"}},
		{name: "no bundle named", code: 2, args: nil, want: []string{"want one bundle file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"bundle", "verify"}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, &stdout, &stderr)
			}
			got := stdout.String()
			if code != 0 {
				got = stderr.String()
				if stdout.Len() > 0 {
					t.Errorf("a failed verify printed to stdout: %s", &stdout)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestBundleHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"bundle", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "gatehouse bundle verify [--key PUBLIC.pem] BUNDLE.tar") {
		t.Errorf("bundle -h: exit %d\n%s%s", code, &stdout, &stderr)
	}
	stdout.Reset()
	stderr.Reset()
	if code := Main(context.Background(), []string{"bundle", "sign"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown subcommand "sign"`) {
		t.Errorf("bundle sign: exit %d\n%s", code, &stderr)
	}
}
