package secrets

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Auth methods the client logs in with.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthJWT        = "jwt"
	AuthKubernetes = "kubernetes"
)

// KubernetesTokenFile is where a pod's service account token is mounted;
// the default JWT file of the kubernetes auth method.
const KubernetesTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Config says how to reach and log in to Vault (or OpenBao, which speaks
// the same API).
type Config struct {
	// Address is Vault's URL, e.g. https://vault.internal:8200.
	Address string
	// Namespace is the Vault Enterprise / OpenBao namespace; empty for none.
	Namespace string
	// CACert is a PEM file of CAs to trust for Vault's TLS certificate,
	// instead of the system roots. TLSServerName overrides the name checked.
	CACert        string
	TLSServerName string

	// Auth is token (the default), approle, jwt or kubernetes.
	Auth string
	// Token is the token of token auth. TokenFile, if set instead, is read
	// at every (re-)login, so a Vault Agent sink can rotate it.
	Token     string
	TokenFile string
	// RoleID and SecretIDFile log in with AppRole; the secret ID file is
	// read at every login.
	RoleID       string
	SecretIDFile string
	// Role and JWTFile log in with jwt or kubernetes auth; the JWT file is
	// read at every login (kubernetes default: KubernetesTokenFile).
	Role    string
	JWTFile string
	// AuthMount is where the auth method is mounted; default its name.
	AuthMount string

	// Timeout bounds one Vault request. Default 5s.
	Timeout time.Duration
	// KVCacheTTL is how long a KV secret read is reused; 0 reads Vault for
	// every request. Dynamic credentials are never cached across leases.
	KVCacheTTL time.Duration
}

func (c *Config) validate() error {
	if c.Address == "" {
		return errors.New("vault address is empty")
	}
	u, err := url.Parse(c.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("vault address %q: want http(s)://host:port", c.Address)
	}
	switch c.Auth {
	case "", AuthToken:
		if c.Token == "" && c.TokenFile == "" {
			return errors.New("vault token auth: give a token file or $VAULT_TOKEN")
		}
	case AuthAppRole:
		if c.RoleID == "" || c.SecretIDFile == "" {
			return errors.New("vault approle auth: give a role ID and a secret ID file")
		}
	case AuthJWT, AuthKubernetes:
		if c.Role == "" {
			return fmt.Errorf("vault %s auth: give a role", c.Auth)
		}
		if c.Auth == AuthJWT && c.JWTFile == "" {
			return errors.New("vault jwt auth: give a JWT file")
		}
	default:
		return fmt.Errorf("vault auth %q: want token, approle, jwt or kubernetes", c.Auth)
	}
	for _, f := range []string{c.CACert, c.TokenFile, c.SecretIDFile, c.JWTFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
	}
	return nil
}

func (c *Config) method() string {
	if c.Auth == "" {
		return AuthToken
	}
	return c.Auth
}

// Client is a logged-in Vault client that keeps its token alive: it
// renews the token while it can and logs in again when renewal ends, and
// tracks whether Vault is reachable. Safe for concurrent use.
type Client struct {
	cfg Config
	api *vault.Client
	log *slog.Logger

	relogin chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu        sync.Mutex
	loginDone chan struct{} // closed by the next successful login
	loginErr  error         // nil once logged in
	reachErr  error         // the last transport failure, nil after a success
	loggedIn  bool

	kv kvCache
}

// NewClient checks cfg and builds a client; it does not contact Vault.
// [Client.Start] logs in.
func NewClient(cfg Config, log *slog.Logger) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	vc := vault.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault client: %w", vc.Error)
	}
	vc.Address = cfg.Address
	vc.Timeout = cfg.Timeout
	vc.MaxRetries = 1
	// Always configured from Config alone: the Vault library would
	// otherwise take TLS settings (VAULT_SKIP_VERIFY among them) from the
	// environment behind the operator's back.
	if tr, ok := vc.HttpClient.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		tls := tr.TLSClientConfig
		tls.InsecureSkipVerify, tls.ServerName, tls.RootCAs, tls.GetClientCertificate = false, "", nil, nil
	}
	if err := vc.ConfigureTLS(&vault.TLSConfig{CACert: cfg.CACert, TLSServerName: cfg.TLSServerName}); err != nil {
		return nil, fmt.Errorf("vault TLS: %w", err)
	}
	api, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	api.ClearToken() // never pick up $VAULT_TOKEN behind the configured auth's back
	api.SetNamespace(cfg.Namespace)
	return &Client{
		cfg:       cfg,
		api:       api,
		log:       log,
		relogin:   make(chan struct{}, 1),
		loginDone: make(chan struct{}),
		loginErr:  errors.New("not logged in yet"),
		kv:        kvCache{ttl: cfg.KVCacheTTL, entries: map[string]kvEntry{}},
	}, nil
}

// Start logs in and keeps the token alive until ctx ends or Close. It
// returns at once; [Client.Ready] tells when the client can serve.
func (c *Client) Start(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go c.run(ctx)
}

// Close stops renewing. Leases already handed out are not revoked here.
func (c *Client) Close() {
	if c != nil && c.cancel != nil {
		c.cancel()
		<-c.done
	}
}

// Ready returns nil when the client is logged in and Vault answered its
// last request, else why not.
func (c *Client) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loginErr != nil {
		return c.loginErr
	}
	return c.reachErr
}

// Check is Ready, except that a client unready because Vault was
// unreachable asks Vault again first (rather than waiting for the next
// background probe).
func (c *Client) Check(ctx context.Context) error {
	c.mu.Lock()
	loginErr, reachErr := c.loginErr, c.reachErr
	c.mu.Unlock()
	if loginErr != nil || reachErr == nil {
		return c.Ready()
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	_, err := c.api.Sys().HealthWithContext(pctx)
	cancel()
	c.observe(err)
	return c.Ready()
}

// WaitReady waits until the client is ready or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		err := c.Ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vault not ready: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run is the token's life: log in, renew, log in again.
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	probe := time.NewTicker(5 * time.Second)
	defer probe.Stop()
	backoff := time.Second
	for ctx.Err() == nil {
		auth, err := c.login(ctx)
		if err != nil {
			c.setLogin(fmt.Errorf("vault login (%s): %s", c.cfg.method(), reason(err)))
			c.log.Warn("vault login failed", "auth", c.cfg.method(), "retry_in", backoff.String(), "error", reason(err))
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		c.setLogin(nil)
		c.log.Info("vault logged in", "auth", c.cfg.method(), "ttl", time.Duration(auth.LeaseDuration)*time.Second, "renewable", auth.Renewable)
		c.keepAlive(ctx, auth, probe.C)
	}
}

// keepAlive renews the token until renewal ends (or a request found the
// token rejected), probing Vault's health meanwhile.
func (c *Client) keepAlive(ctx context.Context, auth *vault.SecretAuth, probe <-chan time.Time) {
	var done <-chan error
	var renewed <-chan *vault.RenewOutput
	if auth.LeaseDuration > 0 {
		w, err := c.api.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: &vault.Secret{Auth: auth}})
		if err == nil {
			go w.Start()
			defer w.Stop()
			done, renewed = w.DoneCh(), w.RenewCh()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-done:
			if err != nil {
				c.log.Warn("vault token renewal failed; logging in again", "error", reason(err))
			} else {
				c.log.Info("vault token reached its maximum TTL; logging in again")
			}
			return
		case r := <-renewed:
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("vault token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
			c.observe(nil)
		case <-c.relogin:
			// A request was refused: is it the token itself (expired,
			// revoked) or just a path the policy does not allow?
			lctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
			_, err := c.api.Auth().Token().LookupSelfWithContext(lctx)
			cancel()
			var re *vault.ResponseError
			if errors.As(err, &re) && re.StatusCode == 403 {
				c.log.Info("vault rejected the token; logging in again")
				return
			}
		case <-probe:
			pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
			_, err := c.api.Sys().HealthWithContext(pctx)
			cancel()
			if ctx.Err() == nil {
				c.observe(err)
			}
		}
	}
}

// login authenticates with the configured method and sets the token.
func (c *Client) login(ctx context.Context) (*vault.SecretAuth, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if c.cfg.method() == AuthToken {
		tok := c.cfg.Token
		if c.cfg.TokenFile != "" {
			b, err := os.ReadFile(c.cfg.TokenFile)
			if err != nil {
				return nil, err
			}
			tok = strings.TrimSpace(string(b))
		}
		c.api.SetToken(tok)
		s, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			c.observe(err)
			return nil, err
		}
		ttl, _ := s.TokenTTL()
		renewable, _ := s.TokenIsRenewable()
		return &vault.SecretAuth{ClientToken: tok, LeaseDuration: int(ttl.Seconds()), Renewable: renewable}, nil
	}
	mount := c.cfg.AuthMount
	if mount == "" {
		mount = c.cfg.method()
	}
	body := map[string]any{}
	switch c.cfg.method() {
	case AuthAppRole:
		b, err := os.ReadFile(c.cfg.SecretIDFile)
		if err != nil {
			return nil, err
		}
		body["role_id"], body["secret_id"] = c.cfg.RoleID, strings.TrimSpace(string(b))
	case AuthJWT, AuthKubernetes:
		f := c.cfg.JWTFile
		if f == "" {
			f = KubernetesTokenFile
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		body["role"], body["jwt"] = c.cfg.Role, strings.TrimSpace(string(b))
	}
	c.api.ClearToken()
	s, err := c.api.Logical().WriteWithContext(ctx, "auth/"+strings.Trim(mount, "/")+"/login", body)
	if err != nil {
		c.observe(err)
		return nil, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, errors.New("login returned no token")
	}
	c.observe(nil)
	c.api.SetToken(s.Auth.ClientToken)
	return s.Auth, nil
}

func (c *Client) setLogin(err error) {
	c.mu.Lock()
	c.loginErr = err
	c.loggedIn = err == nil
	if err == nil {
		close(c.loginDone)
		c.loginDone = make(chan struct{})
	}
	c.mu.Unlock()
}

// relogged reports, for a request Vault refused, whether the refusal was
// of the token itself (it expired between renewals, or was revoked) and a
// new login has since succeeded: the request is then worth one retry. A
// refusal of the path to a valid token is not.
func (c *Client) relogged(ctx context.Context, err error) bool {
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		return false
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	_, lerr := c.api.Auth().Token().LookupSelfWithContext(lctx)
	cancel()
	if !errors.As(lerr, &re) || re.StatusCode != 403 {
		return false
	}
	c.mu.Lock()
	next := c.loginDone
	c.mu.Unlock()
	select {
	case c.relogin <- struct{}{}:
	default:
	}
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	select {
	case <-next:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// observe records the outcome of a Vault request: transport failures make
// the client unready until a request succeeds again; a rejected token
// triggers a new login.
func (c *Client) observe(err error) {
	var re *vault.ResponseError
	switch {
	case err == nil || errors.As(err, &re) && re.StatusCode != 403:
		// Vault answered.
		c.mu.Lock()
		c.reachErr = nil
		c.mu.Unlock()
	case errors.As(err, &re):
		c.mu.Lock()
		c.reachErr = nil
		loggedIn := c.loggedIn
		c.mu.Unlock()
		if loggedIn {
			select {
			case c.relogin <- struct{}{}:
			default:
			}
		}
	default:
		c.mu.Lock()
		c.reachErr = fmt.Errorf("vault unreachable: %s", reason(err))
		c.mu.Unlock()
	}
}

// reason reduces a Vault client error to a short cause: Vault's own error
// messages, or the network or TLS failure, without URLs or request dumps.
func reason(err error) string {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		if len(re.Errors) > 0 {
			msgs := make([]string, len(re.Errors))
			for i, m := range re.Errors {
				msgs[i] = strings.TrimSpace(m)
			}
			return fmt.Sprintf("vault answered %d: %s", re.StatusCode, strings.Join(msgs, "; "))
		}
		return fmt.Sprintf("vault answered %d", re.StatusCode)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		// The one TLS failure whose x509 text does not point at the fix (a
		// wrong name lists the names the certificate has).
		return ua.Error() + " (configure the CA bundle that verifies Vault's certificate)"
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
