package cli

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// Environment variables of the Vault client (VAULT_ADDR, VAULT_TOKEN and
// VAULT_NAMESPACE are honoured too, after these).
const (
	EnvVaultAddr  = "GATEHOUSE_VAULT_ADDR"
	EnvVaultToken = "GATEHOUSE_VAULT_TOKEN"
)

// vaultFlags are the flags of serve and worker that say where secret
// bindings get their secrets.
type vaultFlags struct {
	cfg secrets.Config
}

func (v *vaultFlags) register(fs *flag.FlagSet) {
	c := &v.cfg
	fs.StringVar(&c.Address, "vault-addr", "", "Vault (or OpenBao) address for secret bindings, e.g. https://vault:8200 (default $"+EnvVaultAddr+", else $VAULT_ADDR; none: requests that need a secret fail)")
	fs.StringVar(&c.Namespace, "vault-namespace", "", "Vault namespace (default $VAULT_NAMESPACE)")
	fs.StringVar(&c.CACert, "vault-ca-cert", "", "PEM CA bundle that verifies Vault's TLS certificate (default: system roots)")
	fs.StringVar(&c.TLSServerName, "vault-tls-server-name", "", "server name to verify instead of the address's host")
	fs.StringVar(&c.Auth, "vault-auth", secrets.AuthToken, "how to log in to Vault: token | approle | jwt | kubernetes")
	fs.StringVar(&c.TokenFile, "vault-token-file", "", "token auth: file holding the token, re-read at every login (default $"+EnvVaultToken+", else $VAULT_TOKEN)")
	fs.StringVar(&c.RoleID, "vault-role-id", "", "approle auth: the role ID")
	fs.StringVar(&c.SecretIDFile, "vault-secret-id-file", "", "approle auth: file holding the secret ID, re-read at every login")
	fs.StringVar(&c.Role, "vault-role", "", "jwt and kubernetes auth: the Vault role to log in as")
	fs.StringVar(&c.JWTFile, "vault-jwt-file", "", "jwt and kubernetes auth: file holding the JWT, re-read at every login (kubernetes default "+secrets.KubernetesTokenFile+")")
	fs.StringVar(&c.AuthMount, "vault-auth-mount", "", "path the auth method is mounted at (default: the method's name)")
	fs.DurationVar(&c.KVCacheTTL, "vault-kv-cache-ttl", 30*time.Second, "how long a KV secret read is reused (0: read Vault for every request); dynamic credentials are leased, never cached")
	fs.DurationVar(&c.Timeout, "vault-timeout", 5*time.Second, "bound on one Vault request")
}

// start returns a started client, or nil when no Vault is configured. A
// Vault that is down is not an error: requests that need a secret fail
// (naming the binding) until it answers, and /readyz says so.
func (v *vaultFlags) start(ctx context.Context, log *slog.Logger) (*secrets.Client, error) {
	c := v.cfg
	c.Address = firstNonEmpty(c.Address, os.Getenv(EnvVaultAddr), os.Getenv("VAULT_ADDR"))
	if c.Address == "" {
		return nil, nil
	}
	if c.KVCacheTTL < 0 {
		return nil, usageError{errors.New("--vault-kv-cache-ttl must not be negative")}
	}
	c.Namespace = firstNonEmpty(c.Namespace, os.Getenv("VAULT_NAMESPACE"))
	if (c.Auth == "" || c.Auth == secrets.AuthToken) && c.TokenFile == "" {
		c.Token = firstNonEmpty(os.Getenv(EnvVaultToken), os.Getenv("VAULT_TOKEN"))
	}
	client, err := secrets.NewClient(c, log)
	if err != nil {
		return nil, usageError{err}
	}
	client.Start(ctx)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := client.WaitReady(wctx); err != nil {
		log.Warn("vault is not ready yet: requests that need a secret fail until it is", "vault_addr", c.Address, "error", err)
	} else {
		log.Info("vault ready", "vault_addr", c.Address, "auth", firstNonEmpty(c.Auth, secrets.AuthToken), "namespace", c.Namespace, "kv_cache_ttl", c.KVCacheTTL)
	}
	return client, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
