package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	segjson "github.com/segmentio/encoding/json"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// JSON-RPC error codes the gateway itself produces, in the range JSON-RPC
// reserves for implementation-defined server errors.
const (
	// CodeUpstreamUnavailable: the upstream serving the request is down or
	// unreachable. The error data names the upstream.
	CodeUpstreamUnavailable = -32050
	// CodeUpstreamTimeout: the upstream did not answer in time.
	CodeUpstreamTimeout = -32051
	// CodeDenied: the decision pipeline refused the request.
	CodeDenied = -32052
)

// forward runs one request against the upstream behind route: decide,
// pick (or dial) the agent's upstream session, send, map errors. send gets
// the connection and must use ctx.
func forward[R any](f *face, ctx context.Context, req mcp.Request, call *Call, send func(context.Context, *upstreamConn, *flight) (R, error)) (R, error) {
	ss, _ := req.GetSession().(*mcp.ServerSession)
	call.Principal = principalOf(req)
	call.VS = f.name
	if rc := requestFrom(ctx); rc != nil {
		rc.upstream = call.Upstream
		rc.target = call.Target
	}
	return dispatch(f.g, ctx, f.g.agentFor(ss, f.name, call.Principal), call, send)
}

// dispatch sends call on as's session with the upstream and maps errors;
// see [forward].
func dispatch[R any](g *Gateway, ctx context.Context, as *agentSession, call *Call, send func(context.Context, *upstreamConn, *flight) (R, error)) (R, error) {
	var zero R
	u := g.upstream(call.Upstream)
	if u == nil {
		return zero, unavailable(&UnavailableError{Upstream: call.Upstream, Reason: "not configured"})
	}
	in, err := g.callSecrets(ctx, u, as, call)
	if err != nil {
		return zero, secretError(err)
	}
	defer in.Release()
	ctx = secrets.WithInjection(ctx, in)
	echoed := func(binding string) {
		g.log.Warn("upstream echoed an injected secret; scrubbed from the response", "upstream", call.Upstream, "binding", binding)
	}
	for attempt := 0; ; attempt++ {
		conn, release, err := as.connFor(ctx, u, in)
		if err != nil {
			var se *secrets.Error
			if errors.As(err, &se) {
				return zero, secretError(err)
			}
			return zero, unavailable(err)
		}
		fl := &flight{agent: as, ctx: ctx}
		done := conn.begin(fl)
		cctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout.Std())
		sent := time.Now()
		res, err := send(cctx, conn, fl)
		if rc := requestFrom(ctx); rc != nil {
			rc.upstreamDur += time.Since(sent)
		}
		timedOut := cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		done()
		release()
		if err == nil {
			return scrubbed(echoed, res, in, conn.in), nil
		}
		switch werr := upstreamError(err); {
		case werr != nil:
			// The upstream's own answer: pass it on unchanged, but for
			// any secret it echoes.
			return zero, scrubErr(echoed, werr, in, conn.in)
		case ctx.Err() != nil:
			return zero, ctx.Err() // the agent cancelled
		case timedOut:
			return zero, &jsonrpc.Error{Code: CodeUpstreamTimeout,
				Message: fmt.Sprintf("upstream %q did not answer %s within %s", call.Upstream, call.Method, u.cfg.Timeout.Std()),
				Data:    upstreamData(call.Upstream)}
		}
		// A transport failure: forget this session so the next request
		// dials afresh, and have the supervisor check the upstream now.
		switch {
		case conn.cred != "":
			u.dropCred(conn)
		case !conn.control:
			as.drop(call.Upstream, conn)
		}
		u.markSuspect()
		// The upstream lost our session (it restarted): the request was
		// never processed, so one retry on a new session is safe. The
		// upstream just answered, so the retry dials it even if the check
		// asked for above has marked it down meanwhile (its control
		// session was lost in the same restart).
		if errors.Is(err, mcp.ErrSessionMissing) && attempt == 0 && !conn.control {
			ctx = context.WithValue(ctx, upstreamAnsweredKey{}, true)
			continue
		}
		return zero, unavailable(&UnavailableError{Upstream: call.Upstream, Reason: cleanErr(err), Sent: mayHaveArrived(err)})
	}
}

// mayHaveArrived reports whether a request whose send failed with err may
// have reached the upstream. Only a failed dial (a refused connection, an
// unknown host, a connect timeout) and a lost session (HTTP 404) say that
// it did not: the go-sdk's "rejected by transport" also wraps a POST whose
// connection broke after the request was written.
func mayHaveArrived(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, mcp.ErrSessionMissing) {
		return false
	}
	var oe *net.OpError
	return !errors.As(err, &oe) || oe.Op != "dial"
}

// upstreamError returns the JSON-RPC error the upstream answered with, if
// err carries one. The go-sdk client also reports its own failures as
// JSON-RPC errors: -32005 "rejected by transport" wraps requests that never
// reached the upstream (connection refused, HTTP 502/503/504/429), and
// -32003/-32004 report a closing connection. Those are transport failures,
// not answers: passing them on would hand the agent a misleading code and
// the upstream's URL. Of an error tree the first non-transport JSON-RPC
// error wins: the go-sdk wraps an upstream's HTTP-level JSON-RPC error
// together with -32005, the upstream's first.
func upstreamError(err error) *jsonrpc.Error {
	switch e := err.(type) {
	case nil:
		return nil
	case *jsonrpc.Error:
		if isTransportError(e) {
			return nil
		}
		return e
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			if w := upstreamError(c); w != nil {
				return w
			}
		}
		return nil
	case interface{ Unwrap() error }:
		return upstreamError(e.Unwrap())
	}
	return nil
}

// isTransportError reports whether e is one of the go-sdk's local
// connection errors (jsonrpc2.ErrRejected, ErrClientClosing,
// ErrServerClosing), which are not exported.
func isTransportError(e *jsonrpc.Error) bool {
	switch {
	case e.Code == -32005 && e.Message == "rejected by transport",
		e.Code == -32003 && e.Message == "client is closing",
		e.Code == -32004 && e.Message == "server is closing":
		return true
	}
	return false
}

func upstreamData(name string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"upstream": name})
	return b
}

func unavailable(err error) error {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		data := upstreamData(ue.Upstream)
		if ue.Sent {
			data, _ = json.Marshal(map[string]string{"upstream": ue.Upstream, "outcome": "unknown"})
		}
		return &jsonrpc.Error{Code: CodeUpstreamUnavailable, Message: ue.Error(), Data: data}
	}
	return &jsonrpc.Error{Code: CodeUpstreamUnavailable, Message: err.Error()}
}

// cleanErr reduces a transport error to its cause, dropping URLs and
// wrapping noise: agents learn what failed, not the internal topology.
func cleanErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, mcp.ErrConnectionClosed):
		return "connection closed"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 80 {
		return strings.TrimSpace(s[i+2:])
	}
	return s
}

func principalOf(req mcp.Request) *identity.Principal {
	if ex := req.GetExtra(); ex != nil && ex.TokenInfo != nil {
		if p, ok := ex.TokenInfo.Extra[principalKey].(*identity.Principal); ok {
			return p
		}
	}
	return identity.Anonymous
}

func (f *face) callTool(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	vs, err := f.vs()
	if err != nil {
		return nil, err
	}
	name := req.Params.Name
	r := vs.Tools[name]
	if rc := requestFrom(ctx); rc != nil && r != nil {
		rc.upstream = r.Upstream
	}
	if r == nil || !f.mayUse(req, vs, policy.KindTool, name, r) {
		// Word for word what the go-sdk answers for a tool the face does
		// not have: a hidden tool must be indistinguishable from none.
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", name)}
	}
	args, err := decodeArgs(req.Params.Arguments)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("invalid arguments for tool %q: %v", name, err)}
	}
	cc, err := f.checkCall(ctx, req, vs, policy.KindTool, name, r, args)
	if err != nil {
		return nil, err
	}
	raw := req.Params.Arguments
	if cc.redacted {
		raw = mustJSON(cc.args)
	}
	if rc := requestFrom(ctx); rc != nil && f.g.audit != nil {
		rc.args, rc.argsHash = raw, ArgsHash(args)
		if cc.recorded != nil {
			rc.args = mustJSON(cc.recorded)
		}
	}
	if cc.approval != nil {
		res, proceed, err := f.holdCall(ctx, req, r, name, cc, raw)
		if !proceed {
			return res, err
		}
	}
	call := &Call{Method: "tools/call", Kind: KindTool, Target: name, Upstream: r.Upstream, UpstreamName: r.Name, Arguments: raw}
	res, err := forward(f, ctx, req, call, func(ctx context.Context, c *upstreamConn, fl *flight) (*mcp.CallToolResult, error) {
		meta, release := f.g.progress.rewrite(req.Params.Meta, fl)
		defer release()
		p := &mcp.CallToolParams{Meta: meta, Name: r.Name,
			InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState}
		args, err := secrets.InjectionFrom(ctx).InjectArgs(raw)
		if err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("invalid arguments for tool %q: %v", name, err)}
		}
		if len(args) > 0 {
			p.Arguments = args
		}
		return c.cs.CallTool(ctx, p)
	})
	if err != nil {
		return nil, err
	}
	return checkResult(ctx, f.g, f.name, name, res)
}

// decodeArgs decodes tool-call arguments for policy and guardrails.
func decodeArgs(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	// The go-sdk's own decoder (as checkResult): the same generic values
	// as encoding/json, at a third of the cost. The go-sdk has already
	// checked the bytes' syntax and depth as part of the request.
	// A map made here: given none, segmentio makes one with room for 64
	// keys (≈ 5 KB zeroed per call, 6.1 KB → 1.5 KB per decode). Strings
	// may share raw's memory: the request's arguments, which nothing
	// writes to, outlive the decoded values.
	m := map[string]any{}
	rest, err := segjson.Parse(raw, &m, segjson.DontCopyString)
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("arguments must be a JSON object")
	}
	return m, nil
}

func (f *face) getPrompt(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	vs, err := f.vs()
	if err != nil {
		return nil, err
	}
	name := req.Params.Name
	r := vs.Prompts[name]
	if r == nil || !f.mayUse(req, vs, policy.KindPrompt, name, r) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", name)}
	}
	// Required arguments are checked here, as a tool's inputSchema is:
	// an upstream that does not check would render the prompt without.
	for _, def := range vs.PromptDefs {
		if def.Name != name {
			continue
		}
		for _, a := range def.Arguments {
			if _, ok := req.Params.Arguments[a.Name]; a.Required && !ok {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("prompt %q: missing required argument %q", name, a.Name)}
			}
		}
		break
	}
	args := make(map[string]any, len(req.Params.Arguments))
	for k, v := range req.Params.Arguments {
		args[k] = v
	}
	cc, err := f.checkCall(ctx, req, vs, policy.KindPrompt, name, r, args)
	if err != nil {
		return nil, err
	}
	call := &Call{Method: "prompts/get", Kind: KindPrompt, Target: name, Upstream: r.Upstream, UpstreamName: r.Name}
	res, err := forward(f, ctx, req, call, func(ctx context.Context, c *upstreamConn, fl *flight) (*mcp.GetPromptResult, error) {
		meta, release := f.g.progress.rewrite(req.Params.Meta, fl)
		defer release()
		p := *req.Params
		p.Meta = meta
		p.Name = r.Name
		if cc.redacted {
			p.Arguments = make(map[string]string, len(cc.args))
			for k, v := range cc.args {
				p.Arguments[k], _ = v.(string)
			}
		}
		return c.cs.GetPrompt(ctx, &p)
	})
	if err != nil {
		return nil, err
	}
	return checkResult(ctx, f.g, f.name, "", res)
}

func (f *face) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	vs, err := f.vs()
	if err != nil {
		return nil, err
	}
	uri := req.Params.URI
	up, err := f.checkResource(ctx, req, vs, uri)
	if err != nil {
		return nil, err
	}
	call := &Call{Method: "resources/read", Kind: KindResource, Target: uri, Upstream: up, UpstreamName: uri}
	res, err := forward(f, ctx, req, call, func(ctx context.Context, c *upstreamConn, fl *flight) (*mcp.ReadResourceResult, error) {
		meta, release := f.g.progress.rewrite(req.Params.Meta, fl)
		defer release()
		p := *req.Params
		p.Meta = meta
		return c.cs.ReadResource(ctx, &p)
	})
	if err != nil {
		return nil, err
	}
	return checkResult(ctx, f.g, f.name, "", res)
}

// checkResource finds the upstream serving uri in vs and decides the
// agent's access to it, for resources/read and resources/subscribe: a
// resource it may not see is not found, one it may not read is denied.
func (f *face) checkResource(ctx context.Context, req mcp.Request, vs *VirtualServer, uri string) (string, error) {
	up, ok := vs.resourceUpstream(uri)
	if !ok || !f.mayUse(req, vs, policy.KindResource, uri, &Route{Upstream: up}) {
		return "", mcp.ResourceNotFoundError(uri)
	}
	if _, err := f.checkCall(ctx, req, vs, policy.KindResource, uri, &Route{Upstream: up, Name: uri}, nil); err != nil {
		return "", err
	}
	return up, nil
}

// resourceUpstream finds the upstream serving uri: a listed resource, or
// the first template (in include order) that matches.
func (vs *VirtualServer) resourceUpstream(uri string) (string, bool) {
	if r := vs.Resources[uri]; r != nil {
		return r.Upstream, true
	}
	for _, t := range vs.TemplateDefs {
		if templateMatches(t.URITemplate, uri) {
			return vs.Templates[t.URITemplate].Upstream, true
		}
	}
	return "", false
}

func (f *face) complete(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	vs, err := f.vs()
	if err != nil {
		return nil, err
	}
	p := *req.Params
	ref := *p.Ref
	p.Ref = &ref
	var upstreamName string
	switch ref.Type {
	case "ref/prompt":
		r := vs.Prompts[ref.Name]
		if r == nil || !f.mayUse(req, vs, policy.KindPrompt, ref.Name, r) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: notExposed("prompt", ref.Name, f.name).Error()}
		}
		upstreamName, ref.Name = r.Upstream, r.Name
	case "ref/resource":
		r := vs.Templates[ref.URI]
		if r == nil {
			if u, ok := vs.resourceUpstream(ref.URI); ok {
				r = &Route{Upstream: u}
			}
		}
		if r == nil || !f.mayUse(req, vs, policy.KindResource, ref.URI, r) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: notExposed("resource", ref.URI, f.name).Error()}
		}
		upstreamName = r.Upstream
	default:
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown completion reference type %q", ref.Type)}
	}
	target := ref.Name + ref.URI
	call := &Call{Method: "completion/complete", Kind: KindCompletion, Target: target, Upstream: upstreamName, UpstreamName: target}
	return forward(f, ctx, req, call, func(ctx context.Context, c *upstreamConn, _ *flight) (*mcp.CompleteResult, error) {
		return c.cs.Complete(ctx, &p)
	})
}
