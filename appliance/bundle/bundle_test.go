package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var epoch = time.Unix(1790000000, 0)

func testFiles(t *testing.T) []File {
	src := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(src, bytes.Repeat([]byte("layer"), 10000), 0o600); err != nil {
		t.Fatal(err)
	}
	return []File{
		{Name: "INSTALL.md", Data: []byte("# install\n")},
		{Name: "images/gatehouse-full.oci.tar", Source: src},
		{Name: "clickhouse/001_audit_events.sql", Data: []byte("CREATE TABLE t (x UInt8) ENGINE = Memory;\n")},
	}
}

func writeBundle(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, testFiles(t), Options{Dir: "gatehouse-1.0", ModTime: epoch, SignKey: key}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// entry is one tar entry, for rewriting bundles in tests.
type entry struct {
	hdr  *tar.Header
	body []byte
}

func readEntries(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{h, body})
	}
}

func writeEntries(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		e.hdr.Size = int64(len(e.body))
		if err := tw.WriteHeader(e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// edit returns b with f applied to its entries.
func edit(t *testing.T, b []byte, f func([]entry) []entry) []byte {
	return writeEntries(t, f(readEntries(t, b)))
}

func TestWriteIsReproducibleAndSorted(t *testing.T) {
	t.Parallel()
	a, b := writeBundle(t, nil), writeBundle(t, nil)
	if !bytes.Equal(a, b) {
		t.Fatal("two bundles of the same files differ")
	}
	var names []string
	for _, e := range readEntries(t, a) {
		names = append(names, e.hdr.Name)
		if !e.hdr.ModTime.Equal(epoch) || e.hdr.Uid != 0 || e.hdr.Uname != "" {
			t.Errorf("%s: mtime %v uid %d uname %q, want the fixed time and root", e.hdr.Name, e.hdr.ModTime, e.hdr.Uid, e.hdr.Uname)
		}
	}
	want := []string{"gatehouse-1.0/", "gatehouse-1.0/INSTALL.md", "gatehouse-1.0/clickhouse/", "gatehouse-1.0/clickhouse/001_audit_events.sql",
		"gatehouse-1.0/images/", "gatehouse-1.0/images/gatehouse-full.oci.tar", "gatehouse-1.0/SHA256SUMS"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("entries:\n %v\nwant\n %v", names, want)
	}
	sums := string(readEntries(t, a)[6].body)
	sum := sha256.Sum256([]byte("# install\n"))
	if !strings.Contains(sums, hex.EncodeToString(sum[:])+"  INSTALL.md\n") {
		t.Errorf("SHA256SUMS is not in sha256sum(1) format:\n%s", sums)
	}
}

func hexOf(b []byte) []byte { return []byte(hex.EncodeToString(b)) }

func TestVerify(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	signed := writeBundle(t, priv)
	unsigned := writeBundle(t, nil)
	byName := func(name string, f func(*entry)) func([]entry) []entry {
		return func(es []entry) []entry {
			for i := range es {
				if es[i].hdr.Name == "gatehouse-1.0/"+name {
					f(&es[i])
				}
			}
			return es
		}
	}
	tests := []struct {
		name    string
		bundle  []byte
		key     ed25519.PublicKey
		want    []error // nil: verifies
		mention string
	}{
		{name: "signed, key given", bundle: signed, key: pub},
		{name: "signed, no key", bundle: signed},
		{name: "unsigned, no key", bundle: unsigned},
		{name: "changed byte", bundle: edit(t, signed, byName("images/gatehouse-full.oci.tar", func(e *entry) { e.body[100] ^= 1 })), key: pub,
			want: []error{ErrChecksum}, mention: "images/gatehouse-full.oci.tar"},
		{name: "extra file", bundle: edit(t, signed, func(es []entry) []entry {
			return append(es, entry{&tar.Header{Typeflag: tar.TypeReg, Name: "gatehouse-1.0/images/evil.tar", Mode: 0o644}, []byte("x")})
		}), key: pub, want: []error{ErrUnlisted}, mention: "images/evil.tar"},
		{name: "missing file", bundle: edit(t, signed, func(es []entry) []entry {
			return deleteEntry(es, "gatehouse-1.0/INSTALL.md")
		}), key: pub, want: []error{ErrMissing}, mention: "INSTALL.md"},
		{name: "missing SHA256SUMS", bundle: edit(t, unsigned, func(es []entry) []entry {
			return deleteEntry(es, "gatehouse-1.0/SHA256SUMS")
		}), want: []error{ErrMissing}, mention: "SHA256SUMS"},
		{name: "bad signature", bundle: edit(t, signed, byName(SignatureFile, func(e *entry) {
			e.body = []byte(strings.Repeat("A", 86) + "==\n")
		})), key: pub, want: []error{ErrSignature}},
		{name: "signed by another key", bundle: writeBundle(t, otherPriv), key: pub, want: []error{ErrSignature}},
		{name: "SHA256SUMS edited to match a changed file", bundle: edit(t, signed, func(es []entry) []entry {
			es = byName("INSTALL.md", func(e *entry) { e.body = []byte("# evil\n") })(es)
			sum := sha256.Sum256([]byte("# evil\n"))
			return byName(SumsFile, func(e *entry) {
				old := sha256.Sum256([]byte("# install\n"))
				e.body = bytes.Replace(e.body, hexOf(old[:]), hexOf(sum[:]), 1)
			})(es)
		}), key: pub, want: []error{ErrSignature}},
		{name: "unsigned but key given", bundle: unsigned, key: pub, want: []error{ErrUnsigned}},
		{name: "path escapes the top directory", bundle: edit(t, unsigned, func(es []entry) []entry {
			return append(es, entry{&tar.Header{Typeflag: tar.TypeReg, Name: "gatehouse-1.0/../etc/passwd", Mode: 0o644}, []byte("x")})
		}), want: []error{ErrBadPath}},
		{name: "symbolic link", bundle: edit(t, unsigned, func(es []entry) []entry {
			return append(es, entry{&tar.Header{Typeflag: tar.TypeSymlink, Name: "gatehouse-1.0/link", Linkname: "/etc/shadow"}, nil})
		}), want: []error{ErrMalformed}},
		{name: "two faults at once", bundle: edit(t, signed, func(es []entry) []entry {
			es = deleteEntry(es, "gatehouse-1.0/INSTALL.md")
			return byName("clickhouse/001_audit_events.sql", func(e *entry) { e.body = append(e.body, ' ') })(es)
		}), key: pub, want: []error{ErrMissing, ErrChecksum}},
		{name: "not a tar", bundle: []byte("hello, this is not a bundle"), want: []error{ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Verify(bytes.NewReader(tt.bundle), tt.key)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(rep.Files) != 3 || rep.Dir != "gatehouse-1.0" || rep.SignatureVerified != (tt.key != nil) {
					t.Errorf("report %+v", rep)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted a bad bundle")
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not report %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not name %q", err, tt.mention)
			}
		})
	}
}

func deleteEntry(es []entry, name string) []entry {
	out := es[:0]
	for _, e := range es {
		if e.hdr.Name != name {
			out = append(out, e)
		}
	}
	return out
}

func TestKeysRoundTripPEM(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	gotPriv, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("private key: %v", err)
	}
	gotPub, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("public key: %v", err)
	}
	if _, err := ParsePublicKey([]byte("not pem")); err == nil {
		t.Error("garbage accepted as a public key")
	}
}

func TestWriteRefusesBadNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"../x", "/etc/x", "a/../../x", "SHA256SUMS", ""} {
		err := Write(io.Discard, []File{{Name: name, Data: []byte("x")}}, Options{Dir: "d", ModTime: epoch})
		if err == nil {
			t.Errorf("Write accepted the name %q", name)
		}
	}
}
