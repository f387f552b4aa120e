package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// gatewayAdmin answers the admin API's questions about the running data
// path (discoverTools, effectiveTools).
type gatewayAdmin struct{ g *proxy.Gateway }

var _ graph.Gateway = gatewayAdmin{}

func (a gatewayAdmin) ListUpstreamTools(ctx context.Context, upstream string) ([]graph.UpstreamTool, error) {
	tools, err := a.g.UpstreamTools(ctx, upstream)
	if errors.Is(err, proxy.ErrUnknownUpstream) {
		return nil, fmt.Errorf("%w %q (is it enabled and applied?)", graph.ErrUnknownUpstream, upstream)
	}
	if err != nil {
		return nil, err
	}
	out := make([]graph.UpstreamTool, len(tools))
	for i, t := range tools {
		// The same canonical form the data path pins, so hashes agree.
		d := tooldef.FromMCP(t)
		out[i] = graph.UpstreamTool{
			Name: d.Name, Title: d.Title, Description: d.Description,
			InputSchema: d.InputSchema, OutputSchema: d.OutputSchema, Annotations: d.Annotations,
		}
	}
	return out, nil
}

func (a gatewayAdmin) Explain(_ context.Context, agent, vs, tool string, args map[string]any) (*graph.Explanation, error) {
	e, err := a.g.Explain(agent, vs, tool, args)
	if errors.Is(err, proxy.ErrUnknownVirtualServer) {
		return nil, fmt.Errorf("%w %q", graph.ErrUnknownVirtualServer, vs)
	}
	if err != nil {
		return nil, err
	}
	out := &graph.Explanation{Effect: e.Decision.Effect, Reason: e.Decision.Reason, Visible: e.Visible, RateLimit: e.RateLimit}
	for _, m := range append(e.Decision.Matched, e.Decision.Unmet...) {
		out.Grants = append(out.Grants, graph.ExplainedGrant{Grant: m.Grant, Effect: m.Effect, Reason: m.Reason})
	}
	for _, f := range e.Findings {
		out.Guardrails = append(out.Guardrails, graph.ExplainedFinding{Rule: f.Rule, Detector: f.Detector, Kind: f.Kind, Path: f.Path, Action: f.Action})
	}
	return out, nil
}

func (a gatewayAdmin) CheckConfig(_ context.Context, doc *config.Document) error {
	return a.g.Check(doc)
}

func (a gatewayAdmin) ExposedTools(_ context.Context, vs string) ([]graph.ExposedTool, error) {
	tools, err := a.g.ExposedTools(vs)
	if errors.Is(err, proxy.ErrUnknownVirtualServer) {
		return nil, fmt.Errorf("%w %q", graph.ErrUnknownVirtualServer, vs)
	}
	if err != nil {
		return nil, err
	}
	out := make([]graph.ExposedTool, len(tools))
	for i, t := range tools {
		out[i] = graph.ExposedTool{Name: t.Name, Upstream: t.Upstream, UpstreamTool: t.UpstreamTool, Description: t.Description}
	}
	return out, nil
}

// adminFlags are the flags of the commands that talk to a running
// gateway's admin API.
type adminFlags struct {
	server    string
	tokenFile string
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "gateway base URL (default $"+EnvServer+", else http://"+config.DefaultListen+")")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token (default: $"+EnvAdminToken+")")
}

// client returns the admin API client the flags and environment describe.
func (f *adminFlags) client() (*adminClient, error) {
	server := f.server
	if server == "" {
		server = os.Getenv(EnvServer)
	}
	if server == "" {
		server = "http://" + config.DefaultListen
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	var token string
	switch {
	case f.tokenFile != "":
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read admin token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	default:
		token = strings.TrimSpace(os.Getenv(EnvAdminToken))
	}
	if token == "" {
		return nil, usageError{errors.New("no admin token: set $" + EnvAdminToken + " or pass --token-file")}
	}
	return &adminClient{
		server: strings.TrimSuffix(server, "/"),
		token:  token,
		hc:     &http.Client{},
	}, nil
}

// adminTimeout bounds one admin API operation (not a streamed export).
const adminTimeout = 2 * time.Minute

// adminClient sends GraphQL operations to a gateway's /graphql, and
// requests to its other admin endpoints (/audit/...).
type adminClient struct {
	server string // base URL, without a trailing slash
	token  string
	hc     *http.Client // without a timeout: operations bound their context
}

// gqlError is one error of a GraphQL response.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) String() string {
	var b strings.Builder
	if f, ok := e.Extensions["field"].(string); ok && f != "" {
		b.WriteString(f + ": ")
	}
	b.WriteString(e.Message)
	if c, ok := e.Extensions["code"].(string); ok && c != "" {
		b.WriteString(" (" + c + ")")
	}
	return b.String()
}

// request sends one request with the admin token to path (with its query
// string) on the gateway.
func (c *adminClient) request(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return nil, fmt.Errorf("admin API %s: %w", c.server+path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	return resp, nil
}

// send is [adminClient.request] for the endpoints besides /graphql: it
// returns the response of a 2xx status (the caller closes its body), and
// otherwise the error the gateway answered.
func (c *adminClient) send(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	resp, err := c.request(ctx, method, path, contentType, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var r struct {
		Errors []gqlError `json:"errors"`
	}
	if json.Unmarshal(raw, &r) == nil && len(r.Errors) > 0 {
		return nil, gqlErrors(r.Errors)
	}
	return nil, fmt.Errorf("admin API %s: HTTP %d: %s", c.server+path, resp.StatusCode, strings.TrimSpace(string(raw)))
}

// gqlErrors joins the errors of a response into one.
func gqlErrors(list []gqlError) error {
	msgs := make([]string, len(list))
	for i, e := range list {
		msgs[i] = e.String()
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// do runs one operation and decodes its data into out.
func (c *adminClient) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	url := c.server + "/graphql"
	resp, err := c.request(ctx, http.MethodPost, "/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API: read response: %w", err)
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("admin API %s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if len(r.Errors) > 0 {
		return gqlErrors(r.Errors)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API %s: HTTP %d", url, resp.StatusCode)
	}
	return json.Unmarshal(r.Data, out)
}

const applyUsage = `Usage: gatehouse apply -f FILE [--prune] [--dry-run] [--server URL] [--token-file FILE]

Makes the running gateway's config store match the configuration in FILE
(upstreams, virtual servers, agents, grants, guardrails, rate limits,
approval rules, secret bindings, pinning) (the YAML that serve --config reads; "-" reads
stdin), in one transaction, through the admin API, and prints the plan:

  + kind name        created
  ~ kind name (f,g)  updated, with the fields that differ
  - kind name        deleted (only with --prune)

Without --prune, entities the file does not mention are left alone. With
--dry-run nothing is written. Agent keys given as env or file are read and
hashed here; only hashes are sent. Process settings in the file (listen,
data_dir, log, limits, http) are not stored and are ignored. Every gateway
on the store applies the change live.

Needs an admin token with the admin role ($` + EnvAdminToken + ` or --token-file).

Flags:
`

func apply(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	file := fs.String("f", "", "configuration file to apply (- for stdin)")
	prune := fs.Bool("prune", false, "delete what the file does not mention (upstreams, virtual servers, agents and their keys, grants, guardrails, rate limits, approval rules, secret bindings)")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	var af adminFlags
	af.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), applyUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usageError{errors.New("-f FILE is required")}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var (
		data []byte
		err  error
	)
	if *file == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", *file, err)
	}
	// Validated by the admin API, which knows what the store holds:
	// without --prune the file may refer to stored entities.
	doc, err := config.Decode(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	resolved, err := resolveKeys(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	if data, err = config.Marshal(resolved); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var out struct {
		ApplyConfig struct {
			Applied  bool  `json:"applied"`
			Revision int64 `json:"revision"`
			Changes  []struct {
				Kind   string   `json:"kind"`
				Name   string   `json:"name"`
				Op     string   `json:"op"`
				Fields []string `json:"fields"`
			} `json:"changes"`
		} `json:"applyConfig"`
	}
	const q = `mutation Apply($doc: String!, $prune: Boolean, $dryRun: Boolean) {
  applyConfig(document: $doc, prune: $prune, dryRun: $dryRun) { applied revision changes { kind name op fields } }
}`
	if err := c.do(ctx, q, map[string]any{"doc": string(data), "prune": *prune, "dryRun": *dryRun}, &out); err != nil {
		return fmt.Errorf("apply %s: %w", *file, err)
	}
	res := out.ApplyConfig
	for _, ch := range res.Changes {
		mark := map[string]string{"created": "+", "updated": "~", "deleted": "-", "revoked": "-"}[ch.Op]
		if mark == "" {
			mark = "*"
		}
		line := fmt.Sprintf("%s %s %s", mark, ch.Kind, ch.Name)
		if len(ch.Fields) > 0 {
			line += " (" + strings.Join(ch.Fields, ", ") + ")"
		}
		fmt.Fprintf(stdout, "%-60s %s\n", line, ch.Op)
	}
	switch {
	case len(res.Changes) == 0:
		fmt.Fprintln(stdout, "no changes")
	case *dryRun:
		fmt.Fprintf(stdout, "%d changes planned (dry run: nothing applied)\n", len(res.Changes))
	default:
		fmt.Fprintf(stdout, "%d changes applied (store revision %d)\n", len(res.Changes), res.Revision)
	}
	return nil
}

const exportUsage = `Usage: gatehouse export [-o FILE] [--server URL] [--token-file FILE]

Writes the running gateway's stored configuration (upstreams, virtual
servers, agents with key hashes, grants, guardrails, rate limits, approval
rules, secret bindings, pinning) as the YAML document that apply -f and
serve --config read. "gatehouse export | gatehouse apply -f - --dry-run"
shows no changes.

Needs an admin token with the admin, viewer or auditor role.

Flags:
`

func export(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	outFile := fs.String("o", "", "write to this file instead of stdout")
	var af adminFlags
	af.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), exportUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var out struct {
		ExportConfig string `json:"exportConfig"`
	}
	if err := c.do(ctx, `query { exportConfig }`, nil, &out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if *outFile != "" {
		return os.WriteFile(*outFile, []byte(out.ExportConfig), 0o600)
	}
	_, err = io.WriteString(stdout, out.ExportConfig)
	return err
}
