package proxy

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// Snapshot is the compiled, immutable configuration the data path reads
// through an atomic pointer. A config reload or a change in what upstreams
// serve compiles a new one and swaps it in; requests in flight keep the one
// they started with.
type Snapshot struct {
	Revision int64
	Compiled time.Time
	Doc      *config.Document
	Keys     *identity.APIKeys
	VS       map[string]*VirtualServer
	access   *access
}

// Quarantined lists the tools pinning withholds.
func (s *Snapshot) Quarantined() []Quarantined { return s.access.quarantined }

// Shadowing lists tools whose names imitate other tools' names.
func (s *Snapshot) Shadowing() []string { return s.access.shadowing }

// VirtualServer is one compiled virtual server: every exposed name mapped to
// the upstream that serves it and the name it has there.
type VirtualServer struct {
	Name      string
	Anonymous bool
	// Upstreams lists the upstreams selected, in include order.
	Upstreams []string
	// Transparent is set when the virtual server maps exactly one upstream
	// with no renames, filters or overrides: it then mirrors the upstream's
	// server info, instructions and capabilities exactly.
	Transparent string

	Tools     map[string]*Route // by exposed name
	Prompts   map[string]*Route // by exposed name
	Resources map[string]*Route // by URI
	Templates map[string]*Route // by URI template

	ToolDefs     []*mcp.Tool
	PromptDefs   []*mcp.Prompt
	ResourceDefs []*mcp.Resource
	TemplateDefs []*mcp.ResourceTemplate

	Caps         *mcp.ServerCapabilities
	ServerInfo   *mcp.Implementation
	Instructions string
}

// Route says where an exposed feature lives upstream.
type Route struct {
	Upstream string
	Name     string // name (tools, prompts) or URI (resources) upstream
	// Annotations of a tool, for policy conditions (tool.annotations).
	Annotations map[string]any
}

// CollisionError reports two upstreams exposing the same name in one
// virtual server. Gatehouse never resolves collisions silently.
type CollisionError struct {
	VS, Kind, Name string
	Upstreams      [2]string
}

func (e *CollisionError) Error() string {
	return fmt.Sprintf("virtual_servers %q: %s %q is exposed by both upstream %q and upstream %q; exclude or rename one",
		e.VS, e.Kind, e.Name, e.Upstreams[0], e.Upstreams[1])
}

// compile builds a snapshot from a document and the catalogs discovered so
// far (nil for upstreams not yet reached). All collisions are reported.
func compile(doc *config.Document, catalogs map[string]*Catalog, rev int64) (*Snapshot, error) {
	keys, err := compileKeys(doc)
	if err != nil {
		return nil, err
	}
	acc, err := compileAccess(doc, catalogs)
	if err != nil {
		return nil, err
	}
	bindings, err := secrets.Compile(doc.SecretBindings)
	if err != nil {
		return nil, err
	}
	pins := newPinIndex(doc, acc)
	snap := &Snapshot{Revision: rev, Compiled: time.Now(), Doc: doc, Keys: keys, VS: map[string]*VirtualServer{}, access: acc}
	var errs []string
	for i := range doc.VirtualServers {
		vs, verrs := compileVS(&doc.VirtualServers[i], catalogs, pins, hiddenArgs(bindings))
		for _, e := range verrs {
			errs = append(errs, e.Error())
		}
		snap.VS[vs.Name] = vs
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	for name, cat := range catalogs {
		if cat == nil {
			continue
		}
		for _, t := range cat.Tools {
			if why := pins.withheld(name, t.Name); why != "" {
				acc.quarantined = append(acc.quarantined, Quarantined{Upstream: name, Tool: t.Name, Reason: why})
			}
		}
	}
	acc.shadowing = shadowing(snap.VS)
	slices.SortFunc(acc.quarantined, func(a, b Quarantined) int {
		return strings.Compare(a.Upstream+"\x00"+a.Tool, b.Upstream+"\x00"+b.Tool)
	})
	return snap, nil
}

// agentPrincipal is who a configured agent is, whichever key it uses.
func agentPrincipal(a config.Agent) *identity.Principal {
	return &identity.Principal{Agent: a.Name, Team: a.Team, Roles: a.Roles, Labels: a.Labels}
}

func compileKeys(doc *config.Document) (*identity.APIKeys, error) {
	entries := map[string]identity.KeyEntry{}
	for i, a := range doc.Agents {
		p := agentPrincipal(a)
		for j, k := range a.APIKeys {
			h, err := identity.ResolveKeyHash(k.SHA256, k.Env, k.File)
			if err != nil {
				return nil, fmt.Errorf("agents[%d].api_keys[%d]: %w", i, j, err)
			}
			if prev, dup := entries[h]; dup {
				return nil, fmt.Errorf("agents[%d].api_keys[%d]: same key as agent %q", i, j, prev.Principal.Agent)
			}
			e := identity.KeyEntry{Principal: p}
			if k.Expires != nil {
				e.Expires = *k.Expires
			}
			entries[h] = e
		}
	}
	return identity.NewAPIKeys(entries)
}

func compileVS(c *config.VirtualServer, catalogs map[string]*Catalog, pins *pinIndex, hidden hiddenArgs) (*VirtualServer, []error) {
	vs := &VirtualServer{
		Name:      c.Name,
		Anonymous: c.Anonymous,
		Tools:     map[string]*Route{},
		Prompts:   map[string]*Route{},
		Resources: map[string]*Route{},
		Templates: map[string]*Route{},
	}
	var errs []error
	for _, sel := range c.Include {
		if !slices.Contains(vs.Upstreams, sel.Upstream) {
			vs.Upstreams = append(vs.Upstreams, sel.Upstream)
		}
		cat := catalogs[sel.Upstream]
		if cat == nil {
			continue
		}
		add := func(kind, name, from string, routes map[string]*Route) bool {
			if prev, ok := routes[name]; ok {
				errs = append(errs, &CollisionError{VS: c.Name, Kind: kind, Name: name, Upstreams: [2]string{prev.Upstream, sel.Upstream}})
				return false
			}
			routes[name] = &Route{Upstream: sel.Upstream, Name: from}
			return true
		}
		for _, t := range selectedOf(cat.Tools, sel.Tools, sel.ExcludeTools, func(t *mcp.Tool) string { return t.Name }) {
			if pins.withheld(sel.Upstream, t.Name) != "" {
				continue
			}
			name := renamed(sel.Rename, t.Name)
			if add("tool", name, t.Name, vs.Tools) {
				vs.Tools[name].Annotations = annotationsOf(t)
				def := toolDefFor(t, hidden.of(sel.Upstream, t.Name))
				def.Name = name
				if d, ok := sel.Descriptions[name]; ok {
					def.Description = d
				}
				vs.ToolDefs = append(vs.ToolDefs, def)
			}
		}
		for _, p := range selectedOf(cat.Prompts, sel.Prompts, sel.ExcludePrompts, func(p *mcp.Prompt) string { return p.Name }) {
			name := renamed(sel.RenamePrompts, p.Name)
			if add("prompt", name, p.Name, vs.Prompts) {
				def := *p
				def.Name = name
				vs.PromptDefs = append(vs.PromptDefs, &def)
			}
		}
		for _, r := range selectedOf(cat.Resources, sel.Resources, sel.ExcludeResources, func(r *mcp.Resource) string { return r.URI }) {
			if add("resource", r.URI, r.URI, vs.Resources) {
				vs.ResourceDefs = append(vs.ResourceDefs, r)
			}
		}
		for _, r := range selectedOf(cat.Templates, sel.ResourceTemplates, sel.ExcludeResourceTemplates, func(r *mcp.ResourceTemplate) string { return r.URITemplate }) {
			if add("resource template", r.URITemplate, r.URITemplate, vs.Templates) {
				vs.TemplateDefs = append(vs.TemplateDefs, r)
			}
		}
	}
	if len(c.Include) == 1 && isPlain(&c.Include[0]) {
		vs.Transparent = c.Include[0].Upstream
	}
	vs.Caps, vs.ServerInfo, vs.Instructions = vsIdentity(c, vs, catalogs)
	return vs, errs
}

// annotationsOf returns a tool's annotations as a map, for policy
// conditions; nil when it has none.
func annotationsOf(t *mcp.Tool) map[string]any {
	if t.Annotations == nil {
		return nil
	}
	b, err := json.Marshal(t.Annotations)
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// isPlain reports whether a selection passes everything through unchanged.
func isPlain(s *config.Selection) bool {
	return s.Tools == nil && s.ExcludeTools == nil && s.Resources == nil && s.ExcludeResources == nil &&
		s.ResourceTemplates == nil && s.ExcludeResourceTemplates == nil && s.Prompts == nil &&
		s.ExcludePrompts == nil && len(s.Rename) == 0 && len(s.RenamePrompts) == 0 && len(s.Descriptions) == 0
}

// vsIdentity decides what a virtual server tells agents at initialize: a
// transparent one mirrors its upstream; a composed one advertises the union
// of its upstreams' capabilities under its own name.
func vsIdentity(c *config.VirtualServer, vs *VirtualServer, catalogs map[string]*Catalog) (*mcp.ServerCapabilities, *mcp.Implementation, string) {
	if vs.Transparent != "" {
		if cat := catalogs[vs.Transparent]; cat != nil && cat.Init != nil {
			caps := cat.Init.Capabilities
			if caps == nil {
				caps = &mcp.ServerCapabilities{}
			}
			return caps, cat.Init.ServerInfo, cat.Init.Instructions
		}
	}
	caps := &mcp.ServerCapabilities{}
	var names []string
	for _, name := range vs.Upstreams {
		cat := catalogs[name]
		if cat == nil || cat.Init == nil || cat.Init.Capabilities == nil {
			continue
		}
		names = append(names, name)
		uc := cat.Init.Capabilities
		if uc.Logging != nil {
			caps.Logging = &mcp.LoggingCapabilities{}
		}
		if uc.Completions != nil {
			caps.Completions = &mcp.CompletionCapabilities{}
		}
	}
	// Composed servers always announce list changes: the set changes when
	// any upstream's does, or when configuration changes.
	if len(vs.ToolDefs) > 0 || anyCap(catalogs, vs.Upstreams, func(c *mcp.ServerCapabilities) bool { return c.Tools != nil }) {
		caps.Tools = &mcp.ToolCapabilities{ListChanged: true}
	}
	if len(vs.PromptDefs) > 0 || anyCap(catalogs, vs.Upstreams, func(c *mcp.ServerCapabilities) bool { return c.Prompts != nil }) {
		caps.Prompts = &mcp.PromptCapabilities{ListChanged: true}
	}
	if len(vs.ResourceDefs)+len(vs.TemplateDefs) > 0 || anyCap(catalogs, vs.Upstreams, func(c *mcp.ServerCapabilities) bool { return c.Resources != nil }) {
		caps.Resources = &mcp.ResourceCapabilities{ListChanged: true,
			Subscribe: anyCap(catalogs, vs.Upstreams, func(c *mcp.ServerCapabilities) bool { return c.Resources != nil && c.Resources.Subscribe })}
	}
	sort.Strings(names)
	instr := c.Description
	if instr == "" && len(names) > 0 {
		instr = "Gatehouse virtual server " + c.Name + " (upstreams: " + strings.Join(names, ", ") + ")"
	}
	return caps, &mcp.Implementation{Name: "gatehouse/" + c.Name, Title: c.Description, Version: Version}, instr
}

func anyCap(catalogs map[string]*Catalog, names []string, f func(*mcp.ServerCapabilities) bool) bool {
	for _, n := range names {
		if cat := catalogs[n]; cat != nil && cat.Init != nil && cat.Init.Capabilities != nil && f(cat.Init.Capabilities) {
			return true
		}
	}
	return false
}

// selectedOf returns the items whose key the include and exclude lists
// select, in order.
func selectedOf[T any](items []T, include, exclude []string, key func(T) string) []T {
	var out []T
	for _, it := range items {
		if selected(include, exclude, key(it)) {
			out = append(out, it)
		}
	}
	return out
}

func selected(include, exclude []string, name string) bool {
	if include != nil && !config.MatchAny(include, name) {
		return false
	}
	return !config.MatchAny(exclude, name)
}

func renamed(m map[string]string, name string) string {
	if n, ok := m[name]; ok {
		return n
	}
	return name
}

// Version is the gateway's version, stamped at build time.
var Version = "dev"
