// Package cli implements gatehouse's subcommands. Each parses its flags,
// builds what it needs once and runs; the binary's main only dispatches.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// Environment variables read by gatehouse; flags win over them.
const (
	EnvConfig   = "GATEHOUSE_CONFIG"
	EnvListen   = "GATEHOUSE_LISTEN"
	EnvDataDir  = "GATEHOUSE_DATA_DIR"
	EnvLogLevel = "GATEHOUSE_LOG_LEVEL"

	EnvDatabaseURL    = "GATEHOUSE_DATABASE_URL"
	EnvAdminTokenFile = "GATEHOUSE_ADMIN_TOKEN_FILE"
	// EnvServer and EnvAdminToken tell the admin commands (apply, export,
	// approvals, audit) which gateway to talk to and as whom.
	EnvServer     = "GATEHOUSE_SERVER"
	EnvAdminToken = "GATEHOUSE_ADMIN_TOKEN"
)

const usage = `gatehouse — an MCP gateway: one authenticated, audited endpoint in front of many MCP servers.

Usage:
  gatehouse <command> [flags]

Commands:
  serve     run the gateway (see: gatehouse serve -h)
  apply     make the running gateway's config store match a YAML file (apply -h)
  export    print the running gateway's configuration as YAML (export -h)
  approvals list, show, approve or deny calls held for approval (approvals -h)
  audit     query, verify or export the audit trail (audit -h)
  worker    run approval workflows without serving agents (worker -h)
  check     validate a configuration file and exit
  keygen    generate an agent API key (or with --admin an admin token)
  bundle    verify an offline appliance bundle (bundle -h)
  health    ask a running gateway whether it is ready, for container health checks (health -h)
  hash-key  print the sha256 of a key read from stdin
  version   print the version

Environment:
  GATEHOUSE_CONFIG      configuration file (serve, check)
  GATEHOUSE_LISTEN      listen address, overrides the file's listen
  GATEHOUSE_DATA_DIR    data directory, overrides the file's data_dir
  GATEHOUSE_LOG_LEVEL   debug | info | warn | error
  GATEHOUSE_DATABASE_URL      config store (serve; default DATA_DIR/gatehouse.db)
  GATEHOUSE_ADMIN_TOKEN_FILE  bootstrap admin token file (serve)
  GATEHOUSE_SERVER      gateway URL for apply, export, approvals and audit (default http://127.0.0.1:8080)
  GATEHOUSE_ADMIN_TOKEN admin token for apply, export, approvals and audit
  GATEHOUSE_TEMPORAL_ADDRESS  external Temporal frontend host:port (serve, worker; default embedded)
  GATEHOUSE_TEMPORAL_API_KEY  API key of an external Temporal (serve, worker)
  GATEHOUSE_CLICKHOUSE_ADDR   ClickHouse server for the audit trail (serve, worker; default embedded engine)
  GATEHOUSE_CLICKHOUSE_PASSWORD  its password (serve, worker)
  GATEHOUSE_CHDB_LIB          libchdb.so of the embedded audit engine (serve, worker)
  GATEHOUSE_VAULT_ADDR        Vault or OpenBao address for secret bindings (serve, worker)
  GATEHOUSE_VAULT_TOKEN       its token (serve, worker; or --vault-token-file)

Agents connect to http://LISTEN/mcp/<virtual-server> (streamable HTTP) or
http://LISTEN/sse/<virtual-server> (legacy SSE) with
"Authorization: Bearer <api key>". Admins use the GraphQL API at
http://LISTEN/graphql with "Authorization: Bearer <admin token>".
`

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "apply":
		err = apply(ctx, args[1:], os.Stdin, stdout)
	case "approvals":
		err = approvalsCmd(ctx, args[1:], stdout)
	case "audit":
		err = auditCmd(ctx, args[1:], os.Stdin, stdout)
	case "worker":
		err = workerCmd(ctx, args[1:], stderr)
	case "export":
		err = export(ctx, args[1:], stdout)
	case "check":
		err = check(args[1:], stdout)
	case "keygen":
		err = keygen(args[1:], stdout)
	case "bundle":
		err = bundleCmd(args[1:], stdout, stderr)
	case "health":
		err = healthCmd(ctx, args[1:], stdout)
	case "hash-key":
		err = hashKey(args[1:], os.Stdin, stdout)
	case "version", "--version", "-v":
		if len(args) > 1 && isHelp(args[1]) {
			fmt.Fprintln(stdout, "Usage: gatehouse version\n\nPrints the version of this binary (the commit it was built from).")
			return 0
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "gatehouse version: unexpected argument %q\n", args[1])
			return 2
		}
		fmt.Fprintln(stdout, "gatehouse", Version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if errors.As(err, new(flagError)) {
			return 2 // printed with the usage by the flag package
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "gatehouse %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "gatehouse %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type usageError struct{ error }

// flagError is a command line the flag package refused; it has printed
// the error and the command's usage already.
type flagError struct{ error }

// parseFlags parses args into fs: flag.ErrHelp as is (-h), a flagError
// for a command line fs refused.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return flagError{err}
}

// Version returns the module version stamped by the build, or proxy.Version.
func Version() string {
	if proxy.Version != "dev" {
		return proxy.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// loadConfig reads the file (if any) and applies environment and flag
// overrides, then validates, CEL expressions included.
func loadConfig(path, listen, dataDir, logLevel string) (*config.Document, error) {
	if path == "" {
		path = os.Getenv(EnvConfig)
	}
	var doc *config.Document
	if path != "" {
		d, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		doc = d
	} else {
		doc = new(config.Document)
		doc.ApplyDefaults()
	}
	override := func(dst *string, flagVal, env string) {
		if v := os.Getenv(env); v != "" {
			*dst = v
		}
		if flagVal != "" {
			*dst = flagVal
		}
	}
	override(&doc.Listen, listen, EnvListen)
	override(&doc.DataDir, dataDir, EnvDataDir)
	override(&doc.Log.Level, logLevel, EnvLogLevel)
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	// CEL too, as the gateway will compile it, before anything starts.
	if err := doc.CheckExpressions(policy.CheckExpression); err != nil {
		if path != "" {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	return doc, nil
}

func check(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (default $GATEHOUSE_CONFIG)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gatehouse check [--config] FILE\n\nValidates the file (keys, references, static name collisions, CEL expressions)\nand exits 0 if it is valid. Names that collide only once upstreams answer are\nfound by serve and by apply --dry-run against a running gateway.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 1 || fs.NArg() == 1 && *path != "":
		return usageError{fmt.Errorf("one configuration file, not %q", fs.Args())}
	case fs.NArg() == 1:
		*path = fs.Arg(0)
	}
	if *path == "" && os.Getenv(EnvConfig) == "" {
		return usageError{errors.New("give the configuration file: gatehouse check FILE (or --config FILE, or $" + EnvConfig + ")")}
	}
	doc, err := loadConfig(*path, "", "", "")
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "ok: %d upstreams, %d virtual servers, %d agents\n", len(doc.Upstreams), len(doc.VirtualServers), len(doc.Agents))
	return nil
}

func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	admin := fs.Bool("admin", false, "generate an admin token (gha_...) for serve --admin-token-file instead")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gatehouse keygen [--admin]\n\nPrints a new API key (give it to the agent; it is shown once) and the\nsha256 to put under agents[].api_keys in the configuration. With --admin,\nprints an admin token to hand to serve --admin-token-file.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *admin {
		fmt.Fprintln(stdout, store.NewAdminToken())
		return nil
	}
	key := identity.NewAPIKey()
	fmt.Fprintf(stdout, "key:    %s\nsha256: %s\n", key, identity.HashKey(key))
	return nil
}

// isHelp reports whether arg asks a command for its usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

func hashKey(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, "Usage: gatehouse hash-key < key-file\n\nReads an agent API key from stdin and prints its SHA-256, the form the\nconfiguration stores (agents[].api_keys[].sha256).\n")
			return flag.ErrHelp
		}
		return usageError{fmt.Errorf("unexpected argument %q: the key is read from stdin", args[0])}
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return usageError{errors.New("no key on stdin")}
	}
	fmt.Fprintln(stdout, identity.HashKey(key))
	return nil
}
