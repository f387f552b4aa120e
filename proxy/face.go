package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// face is the go-sdk server agents of one virtual server talk to. Its
// feature set mirrors the compiled virtual server; registered handlers look
// up routes in the current snapshot at call time, so a rename or reload
// takes effect for the very next request.
type face struct {
	g      *Gateway
	name   string
	server *mcp.Server

	streamable, sse             http.Handler // anonymous access
	streamableAuthed, sseAuthed http.Handler // behind principalVerifier

	mu        sync.Mutex
	tools     map[string]string // exposed name -> fingerprint
	prompts   map[string]string
	resources map[string]string
	templates map[string]string
}

func (g *Gateway) newFace(name string, limits config.Limits) *face {
	f := &face{g: g, name: name,
		tools: map[string]string{}, prompts: map[string]string{},
		resources: map[string]string{}, templates: map[string]string{}}
	f.server = mcp.NewServer(&mcp.Implementation{Name: "gatehouse/" + name, Version: Version}, &mcp.ServerOptions{
		Logger: g.log.With("vs", name),
		// Capabilities are rewritten per initialize from the snapshot; this
		// only stops the SDK from announcing its own defaults.
		Capabilities:            &mcp.ServerCapabilities{},
		CompletionHandler:       f.complete,
		SubscribeHandler:        f.subscribe,
		UnsubscribeHandler:      f.unsubscribe,
		RootsListChangedHandler: f.rootsChanged,
		SessionEnded:            g.sessionEnded,
		// What an agent lists and reads depends on its grants: no cache
		// may serve one agent's answer to another.
		SetCacheable: func(_ context.Context, _ mcp.Request, c *mcp.Cacheable) { c.CacheScope = "private" },
	})
	f.server.AddReceivingMiddleware(f.middleware)
	f.wireHTTP(limits.MaxBodyBytes, limits.SessionTimeout.Std())
	return f
}

// sync makes the face's feature set equal to vs.
func (f *face) sync(vs *VirtualServer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	syncSet(f.tools, vs.ToolDefs, func(t *mcp.Tool) string { return t.Name }, func(t *mcp.Tool) {
		defer f.recoverBad("tool", t.Name)
		f.server.AddTool(t, f.callTool)
	}, f.server.RemoveTools)
	syncSet(f.prompts, vs.PromptDefs, func(p *mcp.Prompt) string { return p.Name }, func(p *mcp.Prompt) {
		f.server.AddPrompt(p, f.getPrompt)
	}, f.server.RemovePrompts)
	syncSet(f.resources, vs.ResourceDefs, func(r *mcp.Resource) string { return r.URI }, func(r *mcp.Resource) {
		defer f.recoverBad("resource", r.URI)
		f.server.AddResource(r, f.readResource)
	}, f.server.RemoveResources)
	syncSet(f.templates, vs.TemplateDefs, func(r *mcp.ResourceTemplate) string { return r.URITemplate }, func(r *mcp.ResourceTemplate) {
		defer f.recoverBad("resource template", r.URITemplate)
		f.server.AddResourceTemplate(r, f.readResource)
	}, f.server.RemoveResourceTemplates)
}

// recoverBad keeps one malformed upstream definition (the go-sdk panics on,
// say, a tool whose input schema is not an object) from taking the gateway
// down; the feature is withheld and the reason logged.
func (f *face) recoverBad(kind, name string) {
	if r := recover(); r != nil {
		f.g.log.Error("upstream definition rejected; not exposed", "vs", f.name, "kind", kind, "name", name, "reason", fmt.Sprint(r))
	}
}

func syncSet[T any](have map[string]string, want []T, key func(T) string, add func(T), remove func(...string)) {
	seen := make(map[string]bool, len(want))
	for _, d := range want {
		k := key(d)
		seen[k] = true
		fp, _ := json.Marshal(d)
		if have[k] == string(fp) {
			continue
		}
		have[k] = string(fp)
		add(d)
	}
	var gone []string
	for k := range have {
		if !seen[k] {
			gone = append(gone, k)
			delete(have, k)
		}
	}
	if len(gone) > 0 {
		remove(gone...)
	}
}

// closeSessions ends every agent session of this face (the virtual server
// was removed from the configuration).
func (f *face) closeSessions() {
	for ss := range f.server.Sessions() {
		_ = ss.Close()
	}
}

// vs returns the compiled virtual server in force.
func (f *face) vs() (*VirtualServer, error) {
	snap := f.g.snap.Load()
	if snap == nil || snap.VS[f.name] == nil {
		return nil, fmt.Errorf("virtual server %q is not configured", f.name)
	}
	return snap.VS[f.name], nil
}

// middleware wraps every request an agent sends: identity, metrics, access
// logs, and the initialize rewrite that makes a transparent virtual server
// indistinguishable from its upstream.
func (f *face) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		f.g.handling.Add(1)
		defer f.g.handling.Add(-1)
		rc := f.g.beginRequest(ctx, f.name, method, req)
		ctx = withRequest(ctx, rc)
		if method == "initialize" {
			if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss != nil {
				f.g.sessions.add(ss, principalOf(req).Agent, f.name)
				if ss.Ended() {
					// SessionEnded may have come first: as in agentFor.
					f.g.sessions.remove(ss)
				}
			}
		}
		if f.g.audit != nil && audited(method) {
			if err := f.g.audit.Admit(); err != nil {
				_, err := f.g.endRequest(rc, nil, auditError(err, false))
				return nil, err
			}
		}
		if len(rc.target) > maxNameBytes && (method == "tools/call" || method == "prompts/get") {
			kind := "tool"
			if method == "prompts/get" {
				kind = "prompt"
			}
			// rc.target is clipped: no tool or prompt has such a name (MCP
			// names are at most 128 characters), and the go-sdk's own
			// "unknown tool" would repeat all of it.
			err := &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown %s %q", kind, rc.target)}
			return f.g.endRequest(rc, nil, err)
		}
		res, err := next(ctx, method, req)
		switch r := res.(type) {
		case *mcp.InitializeResult:
			if vs, verr := f.vs(); verr == nil && r != nil {
				r.Capabilities = vs.Caps
				if vs.ServerInfo != nil {
					r.ServerInfo = vs.ServerInfo
				}
				r.Instructions = vs.Instructions
			}
		case *mcp.DiscoverResult:
			if vs, verr := f.vs(); verr == nil && r != nil {
				r.Capabilities = vs.Caps
				r.Instructions = vs.Instructions
			}
		}
		if err == nil {
			f.filterList(req, res)
			f.stampServerInfo(req, res)
		}
		if method == "logging/setLevel" && err == nil {
			f.forwardLogLevel(ctx, req)
		}
		return f.g.endRequest(rc, res, err)
	}
}

// stampServerInfo sets the server identity that sessionless (2026-07-28)
// results carry in _meta to the virtual server's: an upstream's own stamp
// would otherwise leak through a composed virtual server, and the go-sdk's
// default stamp (the face) would unmask a transparent one.
func (f *face) stampServerInfo(req mcp.Request, res mcp.Result) {
	if res == nil || reflect.ValueOf(res).IsNil() || req.GetParams() == nil || reflect.ValueOf(req.GetParams()).IsNil() {
		return
	}
	if _, newProtocol := req.GetParams().GetMeta()[mcp.MetaKeyProtocolVersion]; !newProtocol {
		return
	}
	vs, err := f.vs()
	if err != nil || vs.ServerInfo == nil {
		return
	}
	m := res.GetMeta()
	if m == nil {
		m = map[string]any{}
	}
	m[mcp.MetaKeyServerInfo] = vs.ServerInfo
	res.SetMeta(m)
}

// forwardLogLevel passes an agent's logging/setLevel to its upstream
// sessions (and remembers it for sessions dialed later). Shared sessions
// are left alone: one agent must not change what others receive.
func (f *face) forwardLogLevel(ctx context.Context, req mcp.Request) {
	ss, ok := req.GetSession().(*mcp.ServerSession)
	if !ok {
		return
	}
	p, _ := req.GetParams().(*mcp.SetLoggingLevelParams)
	if p == nil {
		return
	}
	as := f.g.agentFor(ss, f.name, principalOf(req))
	as.mu.Lock()
	as.logLevel = p.Level
	as.mu.Unlock()
	for _, c := range as.bound() {
		if err := c.cs.SetLoggingLevel(ctx, p); err != nil {
			f.g.log.Debug("forward logging level", "upstream", c.up.name(), "error", err)
		}
	}
}

// rootsChanged tells the agent's upstream sessions that its roots changed.
func (f *face) rootsChanged(ctx context.Context, req *mcp.RootsListChangedRequest) {
	v, ok := f.g.agents.Load(req.Session)
	if !ok {
		return
	}
	for _, c := range v.(*agentSession).bound() {
		// The client answers roots/list by asking the agent (rootsRelay);
		// adding and removing a placeholder makes the SDK send the
		// notifications/roots/list_changed the upstream needs to hear.
		c.client.AddRoots(&mcp.Root{URI: "gatehouse:roots-changed"})
		c.client.RemoveRoots("gatehouse:roots-changed")
	}
}

// announceListsChanged tells every session of the face that its tool,
// prompt and resource lists may have changed (the grants did, so what each
// agent may see did). The go-sdk notifies on every registration, so one
// feature of each kind is registered again, unchanged.
func (f *face) announceListsChanged(vs *VirtualServer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(vs.ToolDefs) > 0 {
		func() {
			defer f.recoverBad("tool", vs.ToolDefs[0].Name)
			f.server.AddTool(vs.ToolDefs[0], f.callTool)
		}()
	}
	if len(vs.PromptDefs) > 0 {
		f.server.AddPrompt(vs.PromptDefs[0], f.getPrompt)
	}
	if len(vs.ResourceDefs) > 0 {
		func() {
			defer f.recoverBad("resource", vs.ResourceDefs[0].URI)
			f.server.AddResource(vs.ResourceDefs[0], f.readResource)
		}()
	} else if len(vs.TemplateDefs) > 0 {
		func() {
			defer f.recoverBad("resource template", vs.TemplateDefs[0].URITemplate)
			f.server.AddResourceTemplate(vs.TemplateDefs[0], f.readResource)
		}()
	}
}
