package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Conditions [Verify] reports, each wrapped with the file it concerns;
// test them with errors.Is.
var (
	ErrBadPath   = errors.New("unsafe or malformed path")
	ErrChecksum  = errors.New("checksum does not match SHA256SUMS")
	ErrMissing   = errors.New("listed in SHA256SUMS but not in the bundle")
	ErrUnlisted  = errors.New("in the bundle but not listed in SHA256SUMS")
	ErrUnsigned  = errors.New("the bundle is not signed (no " + SignatureFile + ")")
	ErrSignature = errors.New("signature does not verify with the given key")
	ErrMalformed = errors.New("malformed bundle")
)

// Report is what [Verify] found.
type Report struct {
	// Dir is the bundle's top directory.
	Dir string
	// Files are the verified files (not SHA256SUMS and its signature),
	// sorted.
	Files []string
	// Signed says the bundle has SHA256SUMS.sig; SignatureVerified that
	// it was checked against a key and holds.
	Signed, SignatureVerified bool
}

// Limits on the bundle's own small files, read into memory.
const (
	maxSumsSize = 1 << 20
	maxSigSize  = 4 << 10
)

// Verify reads a bundle from r and checks that SHA256SUMS lists exactly
// the bundle's other files with their right checksums and, when key is
// not nil, that SHA256SUMS.sig is a valid signature over SHA256SUMS by
// key. Every problem found is reported (joined), each naming its file.
// A nil error means the bundle is intact (and signed by key, if given).
func Verify(r io.Reader, key ed25519.PublicKey) (*Report, error) {
	rep := &Report{}
	var errs []error
	fail := func(name string, err error) { errs = append(errs, fmt.Errorf("%s: %w", name, err)) }
	actual := map[string]string{} // name → hex sha256
	var sums, sig []byte
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read bundle: %w: %v", ErrMalformed, err)
		}
		top, name, ok := strings.Cut(strings.TrimSuffix(h.Name, "/"), "/")
		if rep.Dir == "" {
			rep.Dir = top
		}
		if top != rep.Dir || top == "" || top == "." || top == ".." {
			fail(h.Name, fmt.Errorf("%w: every entry must be under one top directory (%s/)", ErrBadPath, rep.Dir))
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if ok {
				if err := checkName(name); err != nil {
					fail(h.Name, ErrBadPath)
				}
			}
			continue
		case tar.TypeReg:
		default:
			fail(h.Name, fmt.Errorf("%w: entry type %q is not a regular file or directory", ErrMalformed, h.Typeflag))
			continue
		}
		if !ok || checkName(name) != nil {
			fail(h.Name, ErrBadPath)
			continue
		}
		if _, dup := actual[name]; dup {
			fail(name, fmt.Errorf("%w: present twice", ErrMalformed))
			continue
		}
		digest := sha256.New()
		var body io.Writer = digest
		var keep *bytes.Buffer
		switch name {
		case SumsFile, SignatureFile:
			limit := int64(maxSumsSize)
			if name == SignatureFile {
				limit = maxSigSize
			}
			if h.Size > limit {
				fail(name, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, h.Size, limit))
				continue
			}
			keep = new(bytes.Buffer)
			body = io.MultiWriter(digest, keep)
		}
		if _, err := io.Copy(body, tr); err != nil {
			return nil, fmt.Errorf("read bundle: %s: %w: %v", name, ErrMalformed, err)
		}
		actual[name] = hex.EncodeToString(digest.Sum(nil))
		switch name {
		case SumsFile:
			sums = keep.Bytes()
		case SignatureFile:
			sig = keep.Bytes()
		}
	}
	if rep.Dir == "" {
		return nil, fmt.Errorf("read bundle: %w: empty archive", ErrMalformed)
	}
	if sums == nil {
		return rep, errors.Join(append(errs, fmt.Errorf("%s: %w", SumsFile, ErrMissing))...)
	}
	listed, err := parseSums(sums)
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("%s: %w", SumsFile, err))...)
	}
	delete(actual, SumsFile)
	delete(actual, SignatureFile)
	for _, name := range slices.Sorted(maps.Keys(listed)) {
		got, ok := actual[name]
		switch {
		case !ok:
			fail(name, ErrMissing)
		case got != listed[name]:
			fail(name, fmt.Errorf("%w (listed %s, is %s)", ErrChecksum, listed[name], got))
		default:
			rep.Files = append(rep.Files, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(actual)) {
		if _, ok := listed[name]; !ok {
			fail(name, ErrUnlisted)
		}
	}
	rep.Signed = sig != nil
	if key != nil {
		switch {
		case sig == nil:
			errs = append(errs, ErrUnsigned)
		case !verifySignature(key, sums, sig):
			fail(SignatureFile, ErrSignature)
		default:
			rep.SignatureVerified = true
		}
	}
	return rep, errors.Join(errs...)
}

func verifySignature(key ed25519.PublicKey, sums, sig []byte) bool {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(key, sums, raw)
}

// parseSums reads sha256sum(1) lines: 64 hex digits, two spaces (or a
// space and '*'), a name.
func parseSums(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		if len(line) < 67 || (line[64:66] != "  " && line[64:66] != " *") {
			return nil, fmt.Errorf("%w: line %d is not \"SHA256  NAME\"", ErrMalformed, n)
		}
		sum, name := line[:64], line[66:]
		if _, err := hex.DecodeString(sum); err != nil || strings.ToLower(sum) != sum {
			return nil, fmt.Errorf("%w: line %d: %q is not a lowercase hex SHA-256", ErrMalformed, n, sum)
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if name == SumsFile || name == SignatureFile {
			return nil, fmt.Errorf("%w: line %d lists %s", ErrMalformed, n, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: line %d lists %s again", ErrMalformed, n, name)
		}
		out[name] = sum
	}
	return out, sc.Err()
}
