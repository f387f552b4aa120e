package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gatehouse-dev/gatehouse/appliance/bundle"
)

const bundleUsage = `Usage: gatehouse bundle verify [--key PUBLIC.pem] BUNDLE.tar

Checks an offline bundle (make appliance writes dist/gatehouse-VERSION-bundle.tar)
before it is installed:

  - every file is listed in SHA256SUMS with its right SHA-256,
  - no file listed in SHA256SUMS is missing and no file is unlisted,
  - with --key, SHA256SUMS.sig is a valid Ed25519 signature over SHA256SUMS
    by that public key (PEM, PKIX: openssl pkey -pubout writes it).

Exits 0 when the bundle is intact (and signed by the key, if one is
given), 1 with every problem found otherwise. Without --key a signature
is not checked: the output says so.

Flags:
`

// bundleCmd runs `gatehouse bundle SUBCOMMAND`.
func bundleCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fs := bundleVerifyFlags(stderr, new(string))
		if len(args) == 0 {
			fs.Usage()
			return usageError{errors.New("want a subcommand: verify")}
		}
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if args[0] != "verify" {
		return usageError{fmt.Errorf("unknown subcommand %q (want verify)", args[0])}
	}
	var keyFile string
	fs := bundleVerifyFlags(stderr, &keyFile)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("want one bundle file: gatehouse bundle verify [--key PUBLIC.pem] BUNDLE.tar")}
	}
	return verifyBundle(fs.Arg(0), keyFile, stdout)
}

func bundleVerifyFlags(stderr io.Writer, keyFile *string) *flag.FlagSet {
	fs := flag.NewFlagSet("bundle verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(keyFile, "key", "", "Ed25519 public key (PEM) the bundle must be signed with")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), bundleUsage)
		fs.PrintDefaults()
	}
	return fs
}

func verifyBundle(path, keyFile string, stdout io.Writer) error {
	var key []byte
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("reading the key: %w", err)
		}
		pub, err := bundle.ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", keyFile, err)
		}
		key = pub
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the bundle: %w", err)
	}
	defer f.Close()
	rep, err := bundle.Verify(f, key)
	if err != nil {
		var msg strings.Builder
		fmt.Fprintf(&msg, "%s is NOT intact; do not install it:", path)
		for _, line := range strings.Split(err.Error(), "\n") {
			msg.WriteString("\n  " + line)
		}
		return errors.New(msg.String())
	}
	fmt.Fprintf(stdout, "ok: %s (%s): %d files match SHA256SUMS\n", path, rep.Dir, len(rep.Files))
	switch {
	case rep.SignatureVerified:
		sum := sha256.Sum256(key)
		fmt.Fprintf(stdout, "ok: SHA256SUMS is signed by the key %s (SHA256:%s)\n", keyFile, base64.RawStdEncoding.EncodeToString(sum[:]))
	case rep.Signed:
		fmt.Fprintln(stdout, "note: the bundle is signed, but no --key was given: the signature was not checked")
	default:
		fmt.Fprintln(stdout, "note: the bundle is not signed")
	}
	return nil
}
