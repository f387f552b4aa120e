package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"
)

// ErrNotFound is returned for a secret path that holds nothing (or only a
// deleted version).
var ErrNotFound = errors.New("no secret at this path")

// Fields are a secret's data, by field name.
type Fields map[string]Value

// kvCache keeps KV reads for a short TTL, so a burst of calls reads Vault
// once. Misses for the same key share one read.
type kvCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]kvEntry
	mounts  []kvMount
	group   singleflight.Group
}

type kvEntry struct {
	fields  Fields
	expires time.Time
}

// kvMount is a KV secrets engine mount, found by the preflight the vault
// CLI uses (sys/internal/ui/mounts).
type kvMount struct {
	path string // with trailing slash: "secret/"
	v2   bool
}

// ReadKV reads a KV secret's fields. path includes the mount
// ("secret/github", "kv/agents/a1/github"); version pins a KV v2 version
// (0: latest). Reads are cached for the configured KV cache TTL.
func (c *Client) ReadKV(ctx context.Context, path string, version int) (Fields, error) {
	path = strings.Trim(path, "/")
	key := path + "@" + strconv.Itoa(version)
	if c.kv.ttl > 0 {
		c.kv.mu.Lock()
		e, ok := c.kv.entries[key]
		c.kv.mu.Unlock()
		if ok && time.Now().Before(e.expires) {
			return e.fields, nil
		}
	}
	v, err, _ := c.kv.group.Do(key, func() (any, error) {
		f, err := c.readKV(ctx, path, version)
		if err == nil && c.kv.ttl > 0 {
			c.kv.mu.Lock()
			c.kv.entries[key] = kvEntry{fields: f, expires: time.Now().Add(c.kv.ttl)}
			c.kv.mu.Unlock()
		}
		return f, err
	})
	if err != nil {
		return nil, err
	}
	return v.(Fields), nil
}

func (c *Client) readKV(ctx context.Context, path string, version int) (Fields, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	m := c.kvMountOf(ctx, path)
	rest := strings.TrimPrefix(path, strings.TrimSuffix(m.path, "/"))
	rest = strings.TrimPrefix(rest, "/")
	read := func() (*vault.Secret, error) {
		if m.v2 {
			var q map[string][]string
			if version > 0 {
				q = map[string][]string{"version": {strconv.Itoa(version)}}
			}
			return c.api.Logical().ReadWithDataWithContext(ctx, m.path+"data/"+rest, q)
		}
		return c.api.Logical().ReadWithContext(ctx, m.path+rest)
	}
	s, err := read()
	if err != nil && c.relogged(ctx, err) {
		s, err = read()
	}
	c.observe(err)
	if err != nil {
		return nil, errors.New(reason(err))
	}
	if s == nil || s.Data == nil {
		return nil, ErrNotFound
	}
	data := s.Data
	if m.v2 {
		d, ok := s.Data["data"].(map[string]any)
		if !ok || d == nil {
			return nil, ErrNotFound // deleted or destroyed version
		}
		data = d
	}
	return fieldsOf(data), nil
}

// kvMountOf finds the KV mount path lives under: a mount already seen, the
// preflight's answer, or (when the token may not ask) the first path
// segment as a KV v2 mount.
func (c *Client) kvMountOf(ctx context.Context, path string) kvMount {
	c.kv.mu.Lock()
	best := kvMount{}
	for _, m := range c.kv.mounts {
		if strings.HasPrefix(path+"/", m.path) && len(m.path) > len(best.path) {
			best = m
		}
	}
	c.kv.mu.Unlock()
	if best.path != "" {
		return best
	}
	m := kvMount{path: strings.SplitN(path, "/", 2)[0] + "/", v2: true}
	s, err := c.api.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	if err == nil && s != nil && s.Data != nil {
		if p, _ := s.Data["path"].(string); p != "" {
			m.path = p
			m.v2 = false
			if opts, ok := s.Data["options"].(map[string]any); ok {
				m.v2 = fmt.Sprint(opts["version"]) == "2"
			}
			if t, _ := s.Data["type"].(string); t != "" && t != "kv" && t != "generic" {
				m.v2 = false
			}
		}
	} else {
		return m // not remembered: the next read asks again
	}
	c.kv.mu.Lock()
	c.kv.mounts = append(c.kv.mounts, m)
	c.kv.mu.Unlock()
	return m
}

// Lease is dynamic credentials a secrets engine issued.
type Lease struct {
	ID        string
	Duration  time.Duration
	Renewable bool
	Fields    Fields
	secret    *vault.Secret
}

// Lease requests new credentials from a secrets engine role
// ({mount}/creds/{role}).
func (c *Client) Lease(ctx context.Context, mount, role string) (*Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	p := strings.Trim(mount, "/") + "/creds/" + strings.Trim(role, "/")
	s, err := c.api.Logical().ReadWithContext(ctx, p)
	if err != nil && c.relogged(ctx, err) {
		s, err = c.api.Logical().ReadWithContext(ctx, p)
	}
	c.observe(err)
	if err != nil {
		return nil, errors.New(reason(err))
	}
	if s == nil || s.Data == nil {
		return nil, ErrNotFound
	}
	return &Lease{ID: s.LeaseID, Duration: time.Duration(s.LeaseDuration) * time.Second,
		Renewable: s.Renewable, Fields: fieldsOf(s.Data), secret: s}, nil
}

// Revoke ends a lease now; the secrets engine deletes the credentials.
func (c *Client) Revoke(ctx context.Context, leaseID string) error {
	if leaseID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	err := c.api.Sys().RevokeWithContext(ctx, leaseID)
	if err != nil && c.relogged(ctx, err) {
		err = c.api.Sys().RevokeWithContext(ctx, leaseID)
	}
	c.observe(err)
	if err != nil {
		return errors.New(reason(err))
	}
	return nil
}

// watch renews l until stop is closed or renewal ends; gone is called
// (once) when the lease can no longer be used.
func (c *Client) watch(l *Lease, stop <-chan struct{}, gone func()) {
	if !l.Renewable || l.ID == "" {
		go func() {
			select {
			case <-stop:
			case <-time.After(l.Duration * 9 / 10):
				gone()
			}
		}()
		return
	}
	w, err := c.api.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: l.secret})
	if err != nil {
		gone()
		return
	}
	go w.Start()
	go func() {
		defer w.Stop()
		for {
			select {
			case <-stop:
				return
			case <-w.RenewCh():
			case err := <-w.DoneCh():
				if err != nil {
					c.log.Warn("vault lease renewal ended", "lease_id", l.ID, "error", reason(err))
				}
				gone()
				return
			}
		}
	}()
}

// fieldsOf wraps a secret's data: strings as they are, other JSON values
// encoded.
func fieldsOf(data map[string]any) Fields {
	f := make(Fields, len(data))
	for k, v := range data {
		switch v := v.(type) {
		case string:
			f[k] = NewValue(v)
		case nil:
		default:
			b, _ := json.Marshal(v)
			f[k] = NewValue(string(b))
		}
	}
	return f
}
