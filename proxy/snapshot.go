package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
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
	// collisions are names several items of a virtual server have, and
	// how they were resolved.
	collisions []Collision
}

// Collisions lists the names more than one item of a virtual server has.
// A snapshot in force has them only when an upstream's answer brought
// them (see [Collision]).
func (s *Snapshot) Collisions() []Collision { return s.collisions }

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

// Collision is a name that more than one of a virtual server's
// selections expose. Gatehouse never picks one silently: a configuration
// with a collision is refused when it is applied. When an upstream's
// answer brings one while serving, the name keeps the route in force, if
// it had one, and the other items are withheld: an upstream cannot take
// over a name another serves, nor take it away (see [collisionPolicy]).
type Collision struct {
	VS, Kind, Name string
	// Upstreams expose Name, in include order (an upstream selected twice
	// is named twice).
	Upstreams []string
	// Kept is the upstream whose item keeps the name, "" if none does.
	Kept string
}

func (c Collision) Error() string {
	by := fmt.Sprintf("both upstream %q and upstream %q", c.Upstreams[0], c.Upstreams[1])
	if n := len(c.Upstreams); n > 2 {
		q := make([]string, n)
		for i, u := range c.Upstreams {
			q[i] = strconv.Quote(u)
		}
		by = "upstreams " + strings.Join(q[:n-1], ", ") + " and " + q[n-1]
	}
	return fmt.Sprintf("virtual_servers %q: %s %q is exposed by %s; exclude or rename one", c.VS, c.Kind, c.Name, by)
}

// Withheld says what a collision that is not refused leaves agents.
func (c Collision) Withheld() string {
	if c.Kept == "" {
		return c.Error() + " (all of them are withheld)"
	}
	return fmt.Sprintf("%s (upstream %q keeps it; the others are withheld)", c.Error(), c.Kept)
}

func (c Collision) same(o Collision) bool {
	return c.VS == o.VS && c.Kind == o.Kind && c.Name == o.Name && slices.Equal(c.Upstreams, o.Upstreams)
}

// collisionPolicy says which collisions fail a compile.
type collisionPolicy int

const (
	// refuseCollisions: any collision fails (the first compile at start).
	refuseCollisions collisionPolicy = iota
	// refuseNewCollisions: collisions the running snapshot has too are
	// tolerated, resolved as it resolves them (applying a configuration:
	// a collision an upstream brought must not block other changes, a
	// revocation least of all).
	refuseNewCollisions
	// withholdCollisions: none fails (an upstream's catalog changed).
	withholdCollisions
)

// refused returns the collisions of snap that policy refuses, as one
// error, given the snapshot running.
func (p collisionPolicy) refused(snap, running *Snapshot) error {
	var errs []string
	for _, c := range snap.collisions {
		switch {
		case p == withholdCollisions:
		case p == refuseNewCollisions && running != nil && slices.ContainsFunc(running.collisions, c.same):
		default:
			errs = append(errs, c.Error())
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// compileAs compiles doc as [compile] does, and fails it for the
// collisions p refuses.
func compileAs(p collisionPolicy, doc *config.Document, catalogs map[string]*Catalog, rev int64, running *Snapshot) (*Snapshot, error) {
	snap, err := compile(doc, catalogs, rev, running)
	if err != nil {
		return nil, err
	}
	if err := p.refused(snap, running); err != nil {
		return nil, err
	}
	return snap, nil
}

// compile builds a snapshot from a document and the catalogs discovered so
// far (nil for upstreams not yet reached). Collisions do not fail it: the
// snapshot lists them (see [Collision]) and the caller's
// [collisionPolicy] decides; running, if not nil, is the snapshot in
// force, whose routes collisions keep.
func compile(doc *config.Document, catalogs map[string]*Catalog, rev int64, running *Snapshot) (*Snapshot, error) {
	keys, err := compileKeys(doc)
	if err != nil {
		return nil, err
	}
	bindings, err := secrets.Compile(doc.SecretBindings)
	if err != nil {
		return nil, err
	}
	acc, err := compileAccess(doc, catalogs, hiddenArgs(bindings))
	if err != nil {
		return nil, err
	}
	pins := newPinIndex(doc, acc)
	snap := &Snapshot{Revision: rev, Compiled: time.Now(), Doc: doc, Keys: keys, VS: map[string]*VirtualServer{}, access: acc}
	for i := range doc.VirtualServers {
		var prev *VirtualServer
		if running != nil {
			prev = running.VS[doc.VirtualServers[i].Name]
		}
		vs, cs := compileVS(&doc.VirtualServers[i], catalogs, pins, hiddenArgs(bindings), prev)
		snap.collisions = append(snap.collisions, cs...)
		snap.VS[vs.Name] = vs
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

// exposure is an item a selection exposes under a name: a candidate for
// a route, until collisions are looked at.
type exposure struct {
	name, upstream, from string
	// define adds the item's definition to the virtual server once it is
	// routed.
	define func(vs *VirtualServer, r *Route)
}

// compileVS compiles one virtual server. prev is the one in force under
// the same name, if any: a collision keeps its route (see [Collision]).
func compileVS(c *config.VirtualServer, catalogs map[string]*Catalog, pins *pinIndex, hidden hiddenArgs, prev *VirtualServer) (*VirtualServer, []Collision) {
	vs := &VirtualServer{
		Name:      c.Name,
		Anonymous: c.Anonymous,
		Tools:     map[string]*Route{},
		Prompts:   map[string]*Route{},
		Resources: map[string]*Route{},
		Templates: map[string]*Route{},
	}
	var tools, prompts, resources, templates []exposure
	for _, sel := range c.Include {
		if !slices.Contains(vs.Upstreams, sel.Upstream) {
			vs.Upstreams = append(vs.Upstreams, sel.Upstream)
		}
		cat := catalogs[sel.Upstream]
		if cat == nil {
			continue
		}
		for _, t := range selectedOf(cat.Tools, sel.Tools, sel.ExcludeTools, func(t *mcp.Tool) string { return t.Name }) {
			if pins.withheld(sel.Upstream, t.Name) != "" {
				continue
			}
			name := renamed(sel.Rename, t.Name)
			tools = append(tools, exposure{name, sel.Upstream, t.Name, func(vs *VirtualServer, r *Route) {
				r.Annotations = annotationsOf(t)
				def := toolDefFor(t, hidden.of(sel.Upstream, t.Name))
				def.Name = name
				if d, ok := sel.Descriptions[name]; ok {
					def.Description = d
				}
				vs.ToolDefs = append(vs.ToolDefs, def)
			}})
		}
		for _, p := range selectedOf(cat.Prompts, sel.Prompts, sel.ExcludePrompts, func(p *mcp.Prompt) string { return p.Name }) {
			name := renamed(sel.RenamePrompts, p.Name)
			prompts = append(prompts, exposure{name, sel.Upstream, p.Name, func(vs *VirtualServer, _ *Route) {
				def := *p
				def.Name = name
				vs.PromptDefs = append(vs.PromptDefs, &def)
			}})
		}
		for _, r := range selectedOf(cat.Resources, sel.Resources, sel.ExcludeResources, func(r *mcp.Resource) string { return r.URI }) {
			resources = append(resources, exposure{r.URI, sel.Upstream, r.URI, func(vs *VirtualServer, _ *Route) {
				vs.ResourceDefs = append(vs.ResourceDefs, r)
			}})
		}
		for _, r := range selectedOf(cat.Templates, sel.ResourceTemplates, sel.ExcludeResourceTemplates, func(r *mcp.ResourceTemplate) string { return r.URITemplate }) {
			templates = append(templates, exposure{r.URITemplate, sel.Upstream, r.URITemplate, func(vs *VirtualServer, _ *Route) {
				vs.TemplateDefs = append(vs.TemplateDefs, r)
			}})
		}
	}
	var prevRoutes [4]map[string]*Route
	if prev != nil {
		prevRoutes = [4]map[string]*Route{prev.Tools, prev.Prompts, prev.Resources, prev.Templates}
	}
	var collisions []Collision
	for i, k := range [4]struct {
		kind   string
		items  []exposure
		routes map[string]*Route
	}{{"tool", tools, vs.Tools}, {"prompt", prompts, vs.Prompts}, {"resource", resources, vs.Resources}, {"resource template", templates, vs.Templates}} {
		collisions = append(collisions, route(vs, c.Name, k.kind, k.items, k.routes, prevRoutes[i])...)
	}
	if len(c.Include) == 1 && isPlain(&c.Include[0]) {
		vs.Transparent = c.Include[0].Upstream
	}
	vs.Caps, vs.ServerInfo, vs.Instructions = vsIdentity(c, vs, catalogs)
	return vs, collisions
}

// route routes the items of one kind, in order, into routes. A name more
// than one item has is a collision: it keeps the route prev has for it,
// if one of the items is that route's, and the others are withheld.
func route(vs *VirtualServer, vsName, kind string, items []exposure, routes, prev map[string]*Route) []Collision {
	byName := make(map[string][]int, len(items))
	for i, e := range items {
		byName[e.name] = append(byName[e.name], i)
	}
	var collisions []Collision
	kept := map[string]int{} // colliding name -> index of the item kept, -1 for none
	for i, e := range items {
		idx := byName[e.name]
		if len(idx) < 2 {
			continue
		}
		if idx[0] == i {
			col := Collision{VS: vsName, Kind: kind, Name: e.name}
			keep := -1
			pr := prev[e.name]
			for _, j := range idx {
				col.Upstreams = append(col.Upstreams, items[j].upstream)
				if pr != nil && items[j].upstream == pr.Upstream && items[j].from == pr.Name && keep == -1 {
					keep = j
					col.Kept = pr.Upstream
				}
			}
			kept[e.name] = keep
			collisions = append(collisions, col)
		}
	}
	for i, e := range items {
		if k, ok := kept[e.name]; ok && k != i {
			continue
		}
		r := &Route{Upstream: e.upstream, Name: e.from}
		routes[e.name] = r
		e.define(vs, r)
	}
	return collisions
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
