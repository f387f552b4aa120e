// Package bundle writes and verifies Gatehouse's offline bundle: one tar
// archive that carries everything an air-gapped site installs, with a
// SHA256SUMS file over every other file and, when the publisher signs
// it, SHA256SUMS.sig: an Ed25519 signature over SHA256SUMS.
//
// Every entry sits under one top directory (e.g. gatehouse-1.4.0/).
// SHA256SUMS has the format of sha256sum(1), paths relative to the top
// directory, so `sha256sum -c SHA256SUMS` works on the unpacked bundle
// too. SHA256SUMS.sig holds the base64 signature on one line, for
// `gatehouse bundle verify --key`. Keys are PEM: PKCS #8 private keys
// and PKIX public keys, as `openssl genpkey -algorithm ed25519` and
// `openssl pkey -pubout` write them.
package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Names of the bundle's own files, relative to its top directory.
const (
	SumsFile      = "SHA256SUMS"
	SignatureFile = "SHA256SUMS.sig"
)

// File is one file of a bundle.
type File struct {
	// Name is the path inside the bundle's top directory, slash
	// separated, e.g. images/gatehouse-full.tar.
	Name string
	// Source is the host file with the content; Data is used without one.
	Source string
	Data   []byte
	// Mode is the permission bits. Zero means 0644.
	Mode int64
}

// Options configure [Write].
type Options struct {
	// Dir is the top directory every entry sits under (no slashes).
	// Required.
	Dir string
	// ModTime is every entry's modification time. Required (the bundle
	// of one commit is reproducible).
	ModTime time.Time
	// SignKey signs SHA256SUMS into SHA256SUMS.sig. Nil means unsigned.
	SignKey ed25519.PrivateKey
}

// Write writes a bundle of files to w: the files sorted by name, then
// SHA256SUMS and, with a key, SHA256SUMS.sig.
func Write(w io.Writer, files []File, opts Options) error {
	if err := write(w, files, opts); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

func write(w io.Writer, files []File, opts Options) error {
	if opts.Dir == "" || strings.Contains(opts.Dir, "/") || opts.ModTime.IsZero() {
		return errors.New("Options.Dir (one path element) and Options.ModTime are required")
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	var sums bytes.Buffer
	for i, f := range files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		if f.Name == SumsFile || f.Name == SignatureFile || (i > 0 && files[i-1].Name == f.Name) {
			return fmt.Errorf("%s: reserved or listed twice", f.Name)
		}
		sum, err := sumOf(f)
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, f.Name)
	}
	tw := tar.NewWriter(w)
	mtime := opts.ModTime.UTC()
	dirs := map[string]bool{}
	put := func(name string, mode int64, size int64, body io.Reader) error {
		full := opts.Dir + "/" + name
		for _, d := range parents(full) {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
					return err
				}
			}
		}
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: full, Mode: mode, Size: size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(tw, body)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if n != size {
			return fmt.Errorf("%s: changed size while written", name)
		}
		return nil
	}
	for _, f := range files {
		if err := putFile(f, put); err != nil {
			return err
		}
	}
	if err := put(SumsFile, 0o644, int64(sums.Len()), bytes.NewReader(sums.Bytes())); err != nil {
		return err
	}
	if opts.SignKey != nil {
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(opts.SignKey, sums.Bytes())) + "\n"
		if err := put(SignatureFile, 0o644, int64(len(sig)), strings.NewReader(sig)); err != nil {
			return err
		}
	}
	return tw.Close()
}

func putFile(f File, put func(name string, mode, size int64, body io.Reader) error) error {
	if f.Source == "" {
		return put(f.Name, f.Mode, int64(len(f.Data)), bytes.NewReader(f.Data))
	}
	src, err := os.Open(f.Source)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	return put(f.Name, f.Mode, st.Size(), src)
}

func sumOf(f File) (string, error) {
	h := sha256.New()
	if f.Source == "" {
		h.Write(f.Data)
	} else {
		src, err := os.Open(f.Source)
		if err != nil {
			return "", err
		}
		defer src.Close()
		if _, err := io.Copy(h, src); err != nil {
			return "", fmt.Errorf("hashing %s: %w", f.Source, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parents returns the directories above name, outermost first.
func parents(name string) []string {
	var out []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

// checkName refuses names that could leave the top directory or are not
// in canonical form.
func checkName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "\\") {
		return fmt.Errorf("%q: %w", name, ErrBadPath)
	}
	return nil
}

// ParsePrivateKey reads an Ed25519 private key in PEM (PKCS #8).
func ParsePrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("private key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key: %T, want Ed25519", k)
	}
	return ek, nil
}

// ParsePublicKey reads an Ed25519 public key in PEM (PKIX).
func ParsePublicKey(pemBytes []byte) (ed25519.PublicKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("public key: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T, want Ed25519", k)
	}
	return ek, nil
}
