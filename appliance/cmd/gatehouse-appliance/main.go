// Command gatehouse-appliance builds Gatehouse's appliance images and
// offline bundle from binaries built beforehand (see `make appliance`).
// Usage: gatehouse-appliance -h.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/appliance"
	"github.com/gatehouse-dev/gatehouse/appliance/bundle"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-appliance:", err)
		os.Exit(1)
	}
}

func run() error {
	var o appliance.Options
	var bo appliance.BuildOptions
	var full, slim, created, signKey string
	flag.StringVar(&o.Version, "version", "", "version: labels and tags (required)")
	flag.StringVar(&o.Revision, "revision", "", "source revision (commit) for the labels")
	flag.StringVar(&created, "created", os.Getenv("SOURCE_DATE_EPOCH"), "fixed creation time, Unix seconds (default $SOURCE_DATE_EPOCH; use the commit time)")
	flag.StringVar(&full, "full", "", "gatehouse binary of the full flavour (the default build; loads libchdb.so)")
	flag.StringVar(&slim, "slim", "", "gatehouse binary of the slim flavour (built with -tags nochdb: static)")
	flag.StringVar(&o.ChdbLib, "chdb-lib", "", "libchdb.so for the full flavour (make chdb)")
	flag.StringVar(&o.License, "license", "", "SPDX license expression for org.opencontainers.image.licenses (default NOASSERTION)")
	flag.StringVar(&bo.OutDir, "out", "dist", "output directory")
	flag.BoolVar(&bo.Bundle, "bundle", true, "also write the offline bundle")
	flag.StringVar(&bo.RepoRoot, "repo", ".", "checkout with graph/*.graphql and schema/clickhouse/*.sql, for the bundle")
	flag.StringVar(&signKey, "sign-key", "", "Ed25519 private key (PEM, PKCS #8) to sign the bundle's SHA256SUMS")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "Usage: gatehouse-appliance -version V -created UNIX [-full BIN -chdb-lib LIB] [-slim BIN] [-out DIR] [-sign-key KEY]\n\nWrites DIR/gatehouse-V-FLAVOUR.oci.tar per flavour and DIR/gatehouse-V-bundle.tar.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if o.Version == "" || created == "" {
		return fmt.Errorf("-version and -created (or $SOURCE_DATE_EPOCH) are required")
	}
	sec, err := strconv.ParseInt(created, 10, 64)
	if err != nil {
		return fmt.Errorf("-created %q: want Unix seconds: %w", created, err)
	}
	o.Created = time.Unix(sec, 0).UTC()
	o.Binaries = map[appliance.Flavour]string{appliance.Full: full, appliance.Slim: slim}
	if signKey != "" {
		b, err := os.ReadFile(signKey)
		if err != nil {
			return fmt.Errorf("sign key: %w", err)
		}
		if bo.SignKey, err = bundle.ParsePrivateKey(b); err != nil {
			return fmt.Errorf("sign key %s: %w", signKey, err)
		}
	}
	if bo.Bundle {
		env, err := exec.Command("go", "env", "GOMODCACHE", "GOROOT").Output()
		if err != nil {
			return fmt.Errorf("go env (the SBOM reads licenses from the module cache): %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(env)), "\n")
		if len(lines) != 2 {
			return fmt.Errorf("go env GOMODCACHE GOROOT: unexpected output %q", env)
		}
		bo.ModCache, bo.GoRoot = lines[0], lines[1]
	}
	start := time.Now()
	res, err := appliance.Build(&o, bo)
	if err != nil {
		return err
	}
	for _, ir := range res.Images {
		fmt.Printf("%-28s %s  %s  archive %s, unpacked %s\n", ir.Ref, ir.Digest, ir.Archive, mib(ir.ArchiveBytes), mib(ir.UnpackedBytes))
	}
	if res.Bundle != "" {
		st, err := os.Stat(res.Bundle)
		if err != nil {
			return err
		}
		signed := "unsigned"
		if bo.SignKey != nil {
			signed = "signed"
		}
		fmt.Printf("bundle %s (%s, %s)\n", res.Bundle, mib(st.Size()), signed)
	}
	fmt.Printf("built in %s\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
