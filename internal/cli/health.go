package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

const healthUsage = `Usage: gatehouse health [flags]

Asks a running gateway whether it is ready (GET /readyz) or, with --live,
alive (GET /healthz), prints the answer and exits 0 when it is, 1 when it is
not or cannot be reached. A degraded gateway (an upstream down, say: the
answer's status says "degraded") serves and counts as ready; one that is
starting does not. For container health checks in images without a shell
or HTTP client:

  HEALTHCHECK CMD ["gatehouse", "health"]

The gateway is found at --url, else at $` + EnvServer + ` (as the admin
commands), else at $` + EnvListen + ` (a wildcard host means this host's
loopback), else at ` + config.DefaultListen + `.

Flags:
`

func healthCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	url := fs.String("url", "", "gateway base URL, e.g. http://127.0.0.1:8080 (default $"+EnvServer+", else from $"+EnvListen+")")
	live := fs.Bool("live", false, "check liveness (/healthz) instead of readiness (/readyz)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), healthUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	base := firstNonEmpty(*url, os.Getenv(EnvServer))
	if base == "" {
		base = "http://" + loopbackFor(firstNonEmpty(os.Getenv(EnvListen), config.DefaultListen))
	}
	path := "/readyz"
	if *live {
		path = "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("gateway at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprint(stdout, string(body))
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// loopbackFor turns a listen address into one to dial from this host: a
// wildcard or empty host becomes 127.0.0.1.
func loopbackFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
