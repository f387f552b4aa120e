package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/guard"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// databaseURL is the config store's URL: the flag, else $GATEHOUSE_DATABASE_URL,
// else a SQLite file in the data directory.
func databaseURL(flagVal, dataDir string) string {
	if flagVal != "" {
		return flagVal
	}
	if v := os.Getenv(EnvDatabaseURL); v != "" {
		return v
	}
	abs, err := filepath.Abs(filepath.Join(dataDir, "gatehouse.db"))
	if err != nil {
		abs = filepath.Join(dataDir, "gatehouse.db")
	}
	return "sqlite://" + abs
}

// redactURL hides a password in a database URL, for logs.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return u
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// resolveKeys returns a copy of doc whose agent keys are all sha256 entries:
// keys given by environment variable or file are read and hashed here, on
// the machine that has them, because the store holds hashes only.
func resolveKeys(doc *config.Document) (*config.Document, error) {
	d := *doc
	d.Agents = slices.Clone(doc.Agents)
	var errs []error
	for i := range d.Agents {
		a := &d.Agents[i]
		a.APIKeys = slices.Clone(a.APIKeys)
		for j := range a.APIKeys {
			k := &a.APIKeys[j]
			if k.Env == "" && k.File == "" {
				continue
			}
			h, err := identity.ResolveKeyHash(k.SHA256, k.Env, k.File)
			if err != nil {
				errs = append(errs, fmt.Errorf("agents[%d].api_keys[%d]: %w", i, j, err))
				continue
			}
			k.SHA256, k.Env, k.File = h, "", ""
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &d, nil
}

// hasContent reports whether doc configures anything the store holds.
// withoutEntities is doc's process settings without its upstreams,
// virtual servers, agents and access rules: what a gateway whose stored
// configuration is invalid serves until it is repaired.
func withoutEntities(doc *config.Document) *config.Document {
	d := *doc
	d.Upstreams, d.VirtualServers, d.Agents, d.SecretBindings = nil, nil, nil, nil
	d.Grants, d.Guardrails, d.RateLimits, d.ApprovalRules = nil, nil, nil, nil
	return &d
}

func hasContent(doc *config.Document) bool {
	return len(doc.Upstreams)+len(doc.VirtualServers)+len(doc.Agents) > 0
}

// seedStore writes the configuration file's upstreams, virtual servers and
// agents into an empty store, and reports whether it did. A store that already holds configuration wins
// over the file: the difference is reported, and `gatehouse apply -f` or
// SIGHUP applies the file on purpose.
func seedStore(ctx context.Context, log *slog.Logger, client *ent.Client, path string, file *config.Document) (seeded bool, err error) {
	if path == "" || !hasContent(file) {
		return false, nil
	}
	doc, err := resolveKeys(file)
	if err != nil {
		return false, fmt.Errorf("seed config store from %s: %w", path, err)
	}
	stored, err := store.ExportDocument(ctx, client)
	if err != nil {
		return false, err
	}
	if !hasContent(stored) {
		res, err := store.ApplyDocument(ctx, client, doc, store.ApplyOptions{Actor: fileActor(path)})
		if err != nil {
			return false, fmt.Errorf("seed config store from %s: %w", path, err)
		}
		log.Info("config store seeded from the configuration file", "file", path, "changes", len(res.Changes))
		return true, nil
	}
	plan, err := store.ApplyDocument(ctx, client, doc, store.ApplyOptions{Actor: fileActor(path), Prune: true, DryRun: true})
	if err != nil {
		log.Warn("configuration file does not apply to the store; serving the store", "file", path, "error", err)
		return false, nil
	}
	if len(plan.Changes) > 0 {
		log.Warn("the config store differs from the configuration file; serving the store. Apply the file with `gatehouse apply -f` or SIGHUP",
			"file", path, "differences", len(plan.Changes), "first", plan.Changes[0].String())
	}
	return false, nil
}

func fileActor(path string) string { return "file:" + filepath.Base(path) }

// bootstrapAdmin makes sure an admin can reach the admin API: when the store
// has no admin token, it creates one named "bootstrap" with the admin role.
// With tokenFile, the token is read from that file, or generated and
// written there (mode 0600) when the file does not exist; without it, the
// token is printed once to w. It is never logged.
func bootstrapAdmin(ctx context.Context, log *slog.Logger, client *ent.Client, tokenFile string, w io.Writer) error {
	// The change log names who made the token: the gateway's own start.
	ctx = actor.NewContext(ctx, "serve:bootstrap")
	n, err := client.AdminToken.Query().Count(ctx)
	if err != nil {
		return fmt.Errorf("count admin tokens: %w", err)
	}
	if n > 0 {
		return nil
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		switch {
		case err == nil:
			token := strings.TrimSpace(string(b))
			if !strings.HasPrefix(token, store.AdminTokenPrefix) {
				return fmt.Errorf("admin token file %s: want a token starting with %q (make one with `gatehouse keygen --admin`)", tokenFile, store.AdminTokenPrefix)
			}
			if _, err := store.ImportAdminToken(ctx, client, "bootstrap", []string{"admin"}, token); err != nil {
				return err
			}
			log.Info("bootstrap admin token taken from file", "file", tokenFile, "prefix", identity.Prefix(token))
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("read admin token file: %w", err)
		}
	}
	token, _, err := store.CreateAdminToken(ctx, client, "bootstrap", []string{"admin"}, nil)
	if err != nil {
		return err
	}
	if tokenFile != "" {
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin token file: %w", err)
		}
		log.Info("bootstrap admin token created and written to file", "file", tokenFile, "prefix", identity.Prefix(token))
		return nil
	}
	fmt.Fprintf(w, "\n  Bootstrap admin token (shown once; the store keeps only its hash):\n\n    %s\n\n  Use it as \"Authorization: Bearer <token>\" on /graphql.\n\n", token)
	log.Info("bootstrap admin token created and printed once", "prefix", identity.Prefix(token))
	return nil
}

// configSync keeps the gateway equal to the config store: it polls the
// store's revision (so changes made by other replicas on the same database
// arrive too), is nudged after every admin API write in this process, and
// applies the file on SIGHUP.
type configSync struct {
	log    *slog.Logger
	client *ent.Client
	g      *proxy.Gateway
	poll   time.Duration
	// usageFlush is how often agents' key uses are written to the store.
	usageFlush time.Duration

	// base holds the process settings (listen, data_dir, log, limits,
	// http) from the file, environment and flags; the store supplies the
	// rest.
	base  *config.Document
	path  string
	flags [3]string // listen, data dir, log level overrides

	nudge chan struct{}
	hup   chan struct{}
	rev   int64 // the store revision in force
	// downSince is when the store stopped answering (zero while it
	// answers), downLogged when that was last logged.
	downSince, downLogged time.Time
	// pinning is the pinning mode of the configuration loaded at start,
	// for catalogs that arrive before the gateway's first snapshot.
	pinning string
	// reloadPrune makes SIGHUP write the file declaratively, deleting
	// what it lacks (--reload-prune); else the file is merged into the
	// store, as `gatehouse apply -f` does.
	reloadPrune bool
}

func newConfigSync(log *slog.Logger, client *ent.Client, base *config.Document, path string, flags [3]string) *configSync {
	return &configSync{
		log: log, client: client, base: base, path: path, flags: flags,
		poll:       250 * time.Millisecond,
		usageFlush: 30 * time.Second,
		nudge:      make(chan struct{}, 1),
		hup:        make(chan struct{}, 1),
	}
}

// Nudge asks for an immediate revision check; it never blocks.
func (s *configSync) Nudge() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Reload asks for the configuration file to be applied; it never blocks.
func (s *configSync) Reload() {
	select {
	case s.hup <- struct{}{}:
	default:
	}
}

// load reads the store's revision and configuration and merges it with the
// process settings.
func (s *configSync) load(ctx context.Context) (*config.Document, int64, error) {
	rev, err := store.Revision(ctx, s.client)
	if err != nil {
		return nil, 0, err
	}
	stored, err := store.ExportDocument(ctx, s.client)
	if err != nil {
		return nil, 0, err
	}
	return withStored(s.base, stored), rev, nil
}

// withStored is the gateway's document: the process settings of base
// and what the store holds.
func withStored(base, stored *config.Document) *config.Document {
	doc := *base
	doc.Upstreams, doc.VirtualServers, doc.Agents = stored.Upstreams, stored.VirtualServers, stored.Agents
	doc.Grants, doc.Guardrails, doc.RateLimits = stored.Grants, stored.Guardrails, stored.RateLimits
	doc.Pinning, doc.Pins, doc.ApprovalRules = stored.Pinning, stored.Pins, stored.ApprovalRules
	doc.SecretBindings = stored.SecretBindings
	return &doc
}

// run applies store changes until ctx ends.
func (s *configSync) run(ctx context.Context) {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	flush := time.NewTicker(s.usageFlush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.flushKeyUse(fctx)
			cancel()
			return
		case <-flush.C:
			s.flushKeyUse(ctx)
		case <-s.hup:
			s.reloadFile(ctx)
		case <-s.nudge:
			s.check(ctx, false)
		case <-t.C:
			s.check(ctx, false)
		}
	}
}

// flushKeyUse writes agents' key uses into the store's last_used_at; uses
// that could not be written are kept for the next flush.
func (s *configSync) flushKeyUse(ctx context.Context) {
	uses := s.g.KeyUse().Drain()
	if len(uses) == 0 {
		return
	}
	if err := store.RecordKeyUse(ctx, s.client, uses); err != nil {
		s.g.KeyUse().Restore(uses)
		if s.downSince.IsZero() { // else the store's outage is logged already
			s.log.Warn("could not record API key use; will retry", "error", err)
		}
	}
}

// storeDown records that the store did not answer (err): the first time
// it logs and marks /readyz degraded, then it logs once a minute. An
// error because ctx ended (shutdown) is not the store's.
func (s *configSync) storeDown(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	switch {
	case s.downSince.IsZero():
		s.downSince, s.downLogged = now, now
		s.log.Error("config store unreachable; keeping the running configuration", "store_revision", s.rev, "error", err)
	case now.Sub(s.downLogged) >= time.Minute:
		s.downLogged = now
		s.log.Error("config store still unreachable; keeping the running configuration", "store_revision", s.rev,
			"for", now.Sub(s.downSince).Round(time.Second).String(), "error", err)
	}
	s.g.SetStoreError(fmt.Errorf("unreachable since %s, serving store revision %d: %w", s.downSince.UTC().Format(time.RFC3339), s.rev, err))
}

// storeUp records that the store answers (again).
func (s *configSync) storeUp() {
	if s.downSince.IsZero() {
		return
	}
	s.log.Info("config store reachable again", "after", time.Since(s.downSince).Round(time.Second).String())
	s.downSince = time.Time{}
	s.g.SetStoreError(nil)
}

// check applies the store when its revision moved (or when force is set).
func (s *configSync) check(ctx context.Context, force bool) {
	rev, err := store.Revision(ctx, s.client)
	if err != nil {
		s.storeDown(ctx, err)
		return
	}
	if rev == s.rev && !force {
		s.storeUp()
		return
	}
	start := time.Now()
	doc, rev, err := s.load(ctx)
	if err != nil {
		s.storeDown(ctx, err)
		return
	}
	// Up only now: a store that answers the revision but fails the read
	// is still down, and is logged as such once, not twice per poll.
	s.storeUp()
	// A revision that cannot be applied is not retried until the next one.
	s.rev = rev
	if err := doc.Validate(); err != nil {
		s.g.SetConfigError(fmt.Errorf("store revision %d: %w", rev, err))
		s.log.Error("stored configuration is invalid; keeping the running configuration", "store_revision", rev, "error", err)
		return
	}
	warnAnonymous(s.log, doc)
	if err := s.g.Apply(doc); err != nil {
		s.g.SetConfigError(fmt.Errorf("store revision %d: %w", rev, err))
		s.log.Error("stored configuration does not apply; keeping the running configuration", "store_revision", rev, "error", err)
		return
	}
	s.g.SetConfigError(nil)
	s.log.Info("configuration applied", "store_revision", rev, "snapshot", s.g.Snapshot().Revision,
		"apply_ms", float64(time.Since(start).Microseconds())/1000)
}

// reloadFile re-reads the configuration file and tries what the store
// would hold with it on the running gateway: only if the gateway takes it
// (which may mean starting new upstreams and compiling against what they
// serve) is the file written to the store. It is merged, as `gatehouse
// apply -f FILE` would (what the file does not mention is left alone:
// entities made through the admin API stay), or with --reload-prune
// written declaratively, as `gatehouse apply --prune -f FILE` would (what
// the file lacks is deleted, each deletion logged). A file that fails
// anywhere changes nothing, in the gateway or in the store.
func (s *configSync) reloadFile(ctx context.Context) {
	if s.path == "" {
		s.log.Warn("SIGHUP ignored: no configuration file")
		return
	}
	if err := s.tryFile(ctx); err != nil {
		s.log.Error(msgReloadFailed, "error", err)
	}
}

const msgReloadFailed = "reload failed; keeping the running configuration"

const msgSettingsOnly = "the configuration file has no upstreams, virtual servers or agents: applied its process settings only, the config store is unchanged (change or empty the store through /graphql or `gatehouse apply --prune -f`)"

func (s *configSync) tryFile(ctx context.Context) error {
	file, err := loadConfig(s.path, s.flags[0], s.flags[1], s.flags[2])
	if err != nil {
		return err
	}
	if file.Listen != s.base.Listen || file.DataDir != s.base.DataDir {
		s.log.Warn("listen and data_dir changes take effect at the next restart")
		file.Listen, file.DataDir = s.base.Listen, s.base.DataDir
	}
	if !hasContent(file) {
		// A file of process settings only (the appliance's default, for
		// one) applied declaratively would delete everything the store
		// holds: take its settings and keep the store.
		s.log.Warn(msgSettingsOnly, "file", s.path)
		s.base = processSettings(file)
		s.check(ctx, true)
		return nil
	}
	doc, err := resolveKeys(file)
	if err != nil {
		return err
	}
	opts := store.ApplyOptions{Actor: fileActor(s.path), Prune: s.reloadPrune}
	base := processSettings(file)
	next, err := s.withFile(ctx, base, doc, opts)
	if err != nil {
		return err
	}
	warnAnonymous(s.log, next)
	if err := s.g.Apply(next); err != nil {
		return err
	}
	s.g.SetConfigError(nil)
	s.base = base
	res, err := store.ApplyDocument(ctx, s.client, doc, opts)
	if err != nil {
		// The gateway runs the file but the store could not take it:
		// go back to what the store holds.
		s.log.Error("configuration file applied to the gateway but not stored; restoring the stored configuration", "error", err)
		s.check(ctx, true)
		return nil
	}
	if rev, err := store.Revision(ctx, s.client); err == nil {
		s.rev = rev
	}
	var deleted []string
	for _, c := range res.Changes {
		if c.Op == "deleted" || c.Op == "revoked" {
			deleted = append(deleted, c.String())
		}
	}
	if len(deleted) > 0 {
		s.log.Warn("the reload deleted what the configuration file lacks (--reload-prune)", "file", s.path, "deleted", deleted)
	}
	s.log.Info("configuration reloaded", "file", s.path, "store_changes", len(res.Changes), "prune", s.reloadPrune,
		"store_revision", s.rev, "snapshot", s.g.Snapshot().Revision)
	return nil
}

// withFile returns the gateway's document were doc applied to the store
// with opts (with the process settings of base): applied in a transaction
// that is rolled back.
func (s *configSync) withFile(ctx context.Context, base, doc *config.Document, opts store.ApplyOptions) (*config.Document, error) {
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return nil, fmt.Errorf("config store: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := store.ApplyDocument(ctx, tx.Client(), doc, opts); err != nil {
		return nil, err
	}
	stored, err := store.ExportDocument(ctx, tx.Client())
	if err != nil {
		return nil, err
	}
	return withStored(base, stored), nil
}

// processSettings returns doc without what the store holds.
func processSettings(doc *config.Document) *config.Document {
	d := *doc
	d.Upstreams, d.VirtualServers, d.Agents = nil, nil, nil
	d.Grants, d.Guardrails, d.RateLimits, d.Pins = nil, nil, nil, nil
	d.Pinning, d.ApprovalRules, d.SecretBindings = config.Pinning{}, nil, nil
	return &d
}

// recordTools is the gateway's OnCatalog hook: it records what an upstream
// serves in the store, where pinning decides what agents may see. A tool
// whose definition looks poisoned when first seen is held for an admin's
// approval even in auto mode.
func (s *configSync) recordTools(ctx context.Context, upstream string, tools []*mcp.Tool) {
	mode := s.pinning
	if snap := s.g.Snapshot(); snap != nil {
		mode = snap.Doc.Pinning.Mode
	}
	if mode == "" {
		mode = config.PinningAuto
	}
	if mode == config.PinningOff {
		return
	}
	var clean, suspect []tooldef.Definition
	for _, t := range tools {
		d := tooldef.FromMCP(t)
		if fs := guard.ScanToolDefinition(d.Name, d.Title, d.Description, d.InputSchema); len(fs) > 0 {
			kinds := make([]string, len(fs))
			for i, f := range fs {
				kinds[i] = f.Kind
			}
			s.log.Warn("tool definition looks poisoned; held for approval", "upstream", upstream, "tool", t.Name, "findings", kinds)
			suspect = append(suspect, d)
			continue
		}
		clean = append(clean, d)
	}
	now := time.Now()
	changed, err := store.RecordToolDefinitions(ctx, s.client, upstream, clean, mode, now)
	if err == nil && len(suspect) > 0 {
		var c bool
		c, err = store.RecordToolDefinitions(ctx, s.client, upstream, suspect, config.PinningApprove, now)
		changed = changed || c
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("record tool definitions", "upstream", upstream, "error", err)
		}
		return
	}
	if changed {
		s.Nudge()
	}
}
