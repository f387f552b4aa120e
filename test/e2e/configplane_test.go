package e2e

// Config plane end to end: the admin API at /graphql of the real binary,
// live apply into open agent sessions, `gatehouse apply` / `export`, the
// bootstrap admin token, the admin change log, and replicas sharing one
// PostgreSQL store.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// gqlResponse is a GraphQL response.
type gqlResponse struct {
	Data   map[string]any `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// gql posts one GraphQL operation to the gateway's /graphql as token.
func gql(t testing.TB, g *gateway, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.addr+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("graphql: %v", err)
	}
	defer resp.Body.Close()
	var r gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("graphql: HTTP %d: decode: %v", resp.StatusCode, err)
	}
	return r
}

// mustGQL is gql that fails the test on GraphQL errors.
func mustGQL(t testing.TB, g *gateway, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := gql(t, g, g.adminToken, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("graphql errors: %+v\nquery: %s", r.Errors, query)
	}
	return r.Data
}

// dig walks a decoded JSON value along keys (map keys or list indexes).
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// vsSelection returns the ID of the first selection of virtual server vs.
func vsSelection(t testing.TB, g *gateway, vs string) string {
	t.Helper()
	d := mustGQL(t, g, `query($n: String!) { virtualServers(where: {name: $n}) { edges { node { id selections { id } } } } }`, map[string]any{"n": vs})
	id, _ := dig(d, "virtualServers", "edges", 0, "node", "selections", 0, "id").(string)
	if id == "" {
		t.Fatalf("virtual server %q has no selection: %v", vs, d)
	}
	return id
}

func vsID(t testing.TB, g *gateway, vs string) string {
	t.Helper()
	d := mustGQL(t, g, `query($n: String!) { virtualServers(where: {name: $n}) { edges { node { id } } } }`, map[string]any{"n": vs})
	id, _ := dig(d, "virtualServers", "edges", 0, "node", "id").(string)
	if id == "" {
		t.Fatalf("no virtual server %q", vs)
	}
	return id
}

// TestLiveApply changes the configuration through the admin API under an
// open agent session: a hidden tool disappears from that session's
// tools/list (with tools/list_changed), and a new upstream becomes callable,
// without reconnecting. The latency from the mutation's response to what
// the agent sees is logged.
func TestLiveApply(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	g := startGatewayArgs(t, fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: live, include: [{upstream: alpha, tools: [echo, add]}]}
agents:
  - {name: bot, api_keys: [{sha256: %s}]}
`, alphaURL, sha), []string{"--key-use-flush=100ms"})
	changed := make(chan struct{}, 16)
	cs := connect(t, "streamable-http", g.url("live"), key, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notifyCh(changed) },
	})
	if got := sortedToolNames(t, cs); !slices.Equal(got, []string{"add", "echo"}) {
		t.Fatalf("tools/list = %v, want [add echo]", got)
	}

	// Hide echo.
	sel := vsSelection(t, g, "live")
	start := time.Now()
	mustGQL(t, g, `mutation($id: ID!) { updateSelection(id: $id, input: {excludeTools: ["echo"]}) { id excludeTools } }`, map[string]any{"id": sel})
	committed := time.Now()
	waitNotified(t, changed, "tools/list_changed after hiding echo")
	t.Logf("live apply latency (hide a tool): mutation response -> tools/list_changed %v (mutation itself %v)",
		time.Since(committed).Round(time.Millisecond), committed.Sub(start).Round(time.Millisecond))
	if got := sortedToolNames(t, cs); !slices.Equal(got, []string{"add"}) {
		t.Errorf("tools/list after hiding echo = %v, want [add]", got)
	}
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
	if err == nil && !res.IsError {
		t.Errorf("echo still callable after it was hidden: %v", res)
	}

	// Add an upstream and select one of its tools under a new name.
	demo := filepath.Join(binDir, "demo-server")
	d := mustGQL(t, g, `mutation($cmd: String!) { createUpstream(input: {name: "beta", transport: stdio, command: $cmd, args: ["-transport", "stdio", "-name", "beta"]}) { id } }`,
		map[string]any{"cmd": demo})
	beta := dig(d, "createUpstream", "id")
	d = mustGQL(t, g, `mutation($vs: ID!, $up: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up, position: 1, tools: ["echo"], rename: {echo: "beta_echo"}, resources: [], resourceTemplates: [], prompts: []}) { id } }`,
		map[string]any{"vs": vsID(t, g, "live"), "up": beta})
	betaSel := dig(d, "createSelection", "id")
	committed = time.Now()
	waitNotified(t, changed, "tools/list_changed after adding beta")
	t.Logf("live apply latency (new stdio upstream): mutation response -> tools/list_changed %v", time.Since(committed).Round(time.Millisecond))
	if got := callText(t, cs, "beta_echo", map[string]any{"text": "hi"}); got != "[beta] hi" {
		t.Errorf("beta_echo = %q, want [beta] hi", got)
	}
	if got := sortedToolNames(t, cs); !slices.Equal(got, []string{"add", "beta_echo"}) {
		t.Errorf("tools/list = %v, want [add beta_echo]", got)
	}
	if got := callText(t, cs, "add", map[string]any{"a": 2, "b": 3}); !strings.Contains(got, "5") {
		t.Errorf("add on the session opened before both changes = %q, want 5", got)
	}
	if ups := readyUpstreams(t, g); !slices.Equal(ups, []string{"alpha", "beta"}) {
		t.Errorf("/readyz upstreams = %v, want [alpha beta]", ups)
	}

	// The agent's key use reaches the store, without counting as a change.
	pollUntil(t, "the key's lastUsedAt", func() bool {
		d := mustGQL(t, g, `query { apiKeys { edges { node { lastUsedAt updatedBy } } } }`, nil)
		return dig(d, "apiKeys", "edges", 0, "node", "lastUsedAt") != nil
	})

	// discoverTools asks beta live and records what it serves.
	d = mustGQL(t, g, `mutation { discoverTools(upstream: "beta") { name definitionHash } }`, nil)
	tools, _ := d["discoverTools"].([]any)
	if len(tools) < 5 {
		t.Errorf("discoverTools(beta) = %v, want the demo server's tools", d)
	}
	d = mustGQL(t, g, `query { effectiveTools(virtualServer: "live") { name upstream upstreamTool } }`, nil)
	if got := fmt.Sprint(d["effectiveTools"]); !strings.Contains(got, "beta_echo") || !strings.Contains(got, "upstreamTool:echo") {
		t.Errorf("effectiveTools(live) = %s", got)
	}

	// A mutation that makes the configuration invalid on its face (two
	// tools renamed to one name) is refused, and nothing changes.
	errs := gql(t, g, g.adminToken, `mutation($id: ID!) { updateSelection(id: $id, input: {clearExcludeTools: true, tools: ["add", "echo"], rename: {echo: "beta_echo"}}) { id } }`, map[string]any{"id": sel}).Errors
	if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), "name collision") || !strings.Contains(fmt.Sprint(errs), "INVALID") {
		t.Errorf("a rename onto another upstream's tool: %v, want INVALID name collision", errs)
	}
	// One the data path cannot take (a collision only known from what
	// beta serves: its tools matching a* include add, which alpha exposes
	// too) is refused too, by the running gateway's check against what
	// its upstreams serve: committed, it would stay stored but not in
	// force, and every later change with it (a revocation too).
	errs = gql(t, g, g.adminToken, `mutation($id: ID!) { updateSelection(id: $id, input: {tools: ["a*"], clearRename: true}) { id } }`, map[string]any{"id": betaSel}).Errors
	if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), "would not apply on the running gateway") || !strings.Contains(fmt.Sprint(errs), `"add"`) {
		t.Errorf("a selection colliding with what alpha serves: %v, want INVALID naming the collision", errs)
	}
	if got := callText(t, cs, "beta_echo", map[string]any{"text": "still"}); got != "[beta] still" {
		t.Errorf("beta_echo after a refused change = %q, want [beta] still", got)
	}
	if _, doc := readyz(t, g); doc["config_error"] != nil {
		t.Errorf("/readyz after a refused change reports %v", doc["config_error"])
	}
	// A dry run of an apply making the same change says so too, instead
	// of planning a change the real apply would be refused for.
	plan := fmt.Sprintf(`
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
  - {name: beta, transport: stdio, command: %q, args: ["-transport", "stdio", "-name", "beta"]}
virtual_servers:
  - name: live
    include:
      - {upstream: alpha, tools: [echo, add], exclude_tools: [echo]}
      - {upstream: beta, tools: ["a*"], resources: [], resource_templates: [], prompts: []}
`, alphaURL, demo)
	errs = gql(t, g, g.adminToken, `mutation($d: String!) { applyConfig(document: $d, dryRun: true) { changes { kind name op } } }`, map[string]any{"d": plan}).Errors
	if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), "would not apply on the running gateway") {
		t.Errorf("apply --dry-run of a colliding selection: %v, want the running gateway's refusal", errs)
	}
	if got := callText(t, cs, "beta_echo", map[string]any{"text": "after the plan"}); got != "[beta] after the plan" {
		t.Errorf("beta_echo after a dry run = %q", got)
	}
	// What the check cannot see (an upstream not running: disabled, or
	// new) is committed; if its answers then collide, the revision is
	// stored but not applied: the running configuration stays, and
	// /readyz says why.
	mustGQL(t, g, `mutation($id: ID!) { updateUpstream(id: $id, input: {disabled: true}) { id } }`, map[string]any{"id": beta})
	// The gateway applies committed changes asynchronously: until beta is
	// disabled there, it still runs, and the re-enabling below would be
	// checked against its catalog (and refused).
	pollUntil(t, "beta disabled on the running gateway", func() bool {
		_, doc := readyz(t, g)
		ups, _ := doc["upstreams"].(map[string]any)
		b, _ := ups["beta"].(map[string]any)
		return b["state"] == "disabled"
	})
	mustGQL(t, g, `mutation($id: ID!) { updateSelection(id: $id, input: {tools: ["a*"], clearRename: true}) { id } }`, map[string]any{"id": betaSel})
	mustGQL(t, g, `mutation($id: ID!) { updateUpstream(id: $id, input: {disabled: false}) { id } }`, map[string]any{"id": beta})
	pollUntil(t, "/readyz to report the config error", func() bool {
		_, doc := readyz(t, g)
		return strings.Contains(fmt.Sprint(doc["config_error"]), `"add"`)
	})

	// A restart with that revision stored: the gateway used to refuse to
	// start ("start gateway: ... name collision"), taking the admin API
	// down with it. It starts and says why (serving no virtual server, or
	// what compiled before beta answered), and the admin API repairs the
	// store.
	g.signal(syscall.SIGTERM)
	<-g.done
	p := startProc(t, g.cmd.Args[0], g.cmd.Args[1:]...)
	g = &gateway{proc: p, addr: g.addr, config: g.config, adminToken: g.adminToken}
	pollFor(t, 30*time.Second, "the restarted gateway reports the config error", func() string {
		resp, err := http.Get("http://" + g.addr + "/readyz")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if _, doc := readyz(t, g); !strings.Contains(fmt.Sprint(doc["config_error"]), `"add"`) {
			return fmt.Sprintf("/readyz %v", doc)
		}
		return ""
	})
	mustGQL(t, g, `mutation($id: ID!) { updateSelection(id: $id, input: {tools: ["echo"], rename: {echo: "beta_echo"}}) { id } }`, map[string]any{"id": betaSel})
	pollFor(t, 30*time.Second, "the repaired configuration in force", func() string {
		cs, err := dial("streamable-http", g.url("live"), key, nil)
		if err != nil {
			return err.Error()
		}
		defer cs.Close()
		got, err := callOnce(cs, "beta_echo", "back")
		if err != nil || got != "[beta] back" {
			return fmt.Sprintf("beta_echo = %q, %v", got, err)
		}
		return ""
	})
	if _, doc := readyz(t, g); doc["config_error"] != nil {
		t.Errorf("/readyz after the repair still reports %v", doc["config_error"])
	}
}

// TestApplyExport drives `gatehouse apply` and `gatehouse export` against a
// running gateway: export round-trips with no changes, apply prints its
// plan, --dry-run changes nothing, --prune deletes, and bad input fails
// with the document path and changes nothing.
func TestApplyExport(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	key, sha := newKey(t)
	base := fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: one, include: [{upstream: alpha}]}
agents:
  - {name: bot, team: qa, api_keys: [{sha256: %s}]}
grants:
  - {name: everyone-one, subject: {agent: "*"}, target: {virtual_server: one, tools: ["*"]}, effect: allow}
`, alphaURL, sha)
	g := startGateway(t, base)
	admin := []string{"--server", "http://" + g.addr}
	env := []string{"GATEHOUSE_ADMIN_TOKEN=" + g.adminToken}

	out, errOut, code := runGatehouseEnv(t, env, "", append([]string{"export"}, admin...)...)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"name: alpha", "name: one", sha} {
		if !strings.Contains(out, want) {
			t.Errorf("export lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"listen:", g.adminToken} {
		if strings.Contains(out, bad) {
			t.Errorf("export contains %q:\n%s", bad, out)
		}
	}
	plan, errOut, code := runGatehouseEnv(t, env, out, append([]string{"apply", "-f", "-", "--dry-run"}, admin...)...)
	if code != 0 || strings.TrimSpace(plan) != "no changes" {
		t.Errorf("export | apply --dry-run: exit %d, plan %q, stderr %s; want no changes", code, plan, errOut)
	}

	// A second virtual server, with its agent key taken from a file.
	keyFile := filepath.Join(t.TempDir(), "k")
	key2, _ := newKey(t)
	if err := os.WriteFile(keyFile, []byte(key2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	two := strings.Replace(base, "grants:", fmt.Sprintf("  - {name: bot2, api_keys: [{file: %s}]}\ngrants:", keyFile), 1)
	two = strings.Replace(two, "agents:", "  - {name: two, include: [{upstream: alpha, tools: [echo]}]}\nagents:", 1)
	two += "  - {name: everyone-two, subject: {agent: \"*\"}, target: {virtual_server: two, tools: [\"*\"]}, effect: allow}\n"
	path := writeConfigFile(t, "two.yaml", strings.ReplaceAll(two, "LISTEN", g.addr))
	plan, errOut, code = runGatehouseEnv(t, env, "", append([]string{"apply", "-f", path, "--dry-run"}, admin...)...)
	if code != 0 || !strings.Contains(plan, "+ virtual_server two") || !strings.Contains(plan, "+ agent bot2") || !strings.Contains(plan, "dry run") {
		t.Fatalf("apply --dry-run: exit %d\n%s%s", code, plan, errOut)
	}
	if st := mcpStatus(t, g.url("two"), key); st != http.StatusNotFound {
		t.Errorf("virtual server two after a dry run: HTTP %d, want 404", st)
	}
	plan, errOut, code = runGatehouseEnv(t, env, "", append([]string{"apply", "-f", path}, admin...)...)
	if code != 0 || !strings.Contains(plan, "changes applied") {
		t.Fatalf("apply: exit %d\n%s%s", code, plan, errOut)
	}
	t.Logf("apply plan:\n%s", plan)
	var cs *mcp.ClientSession
	pollUntil(t, "virtual server two to serve bot2", func() bool {
		s, err := dial("streamable-http", g.url("two"), key2, nil)
		if err != nil {
			return false
		}
		cs = s
		return true
	})
	t.Cleanup(func() { cs.Close() })
	if got := toolNames(t, cs); !slices.Equal(got, []string{"echo"}) {
		t.Errorf("two: tools/list = %v, want [echo]", got)
	}

	// Without --prune, applying the smaller file deletes nothing.
	basePath := writeConfigFile(t, "base.yaml", strings.ReplaceAll(base, "LISTEN", g.addr))
	plan, _, code = runGatehouseEnv(t, env, "", append([]string{"apply", "-f", basePath}, admin...)...)
	if code != 0 || strings.TrimSpace(plan) != "no changes" {
		t.Errorf("apply of a subset without --prune: exit %d, plan %q, want no changes", code, plan)
	}
	plan, _, code = runGatehouseEnv(t, env, "", append([]string{"apply", "-f", basePath, "--prune"}, admin...)...)
	if code != 0 || !strings.Contains(plan, "- virtual_server two") || !strings.Contains(plan, "- agent bot2") {
		t.Errorf("apply --prune: exit %d\n%s", code, plan)
	}
	pollUntil(t, "virtual server two to go away", func() bool { return mcpStatus(t, g.url("two"), key) == http.StatusNotFound })

	// Bad input: a path-named error, exit 1, nothing changed.
	bad := writeConfigFile(t, "bad.yaml", strings.Replace(base, `url: "http://`, `url: "`, 1))
	_, errOut, code = runGatehouseEnv(t, env, "", append([]string{"apply", "-f", bad}, admin...)...)
	if code != 1 || !strings.Contains(errOut, "upstreams[0].url") {
		t.Errorf("apply of a bad file: exit %d, stderr %q; want 1 and the path upstreams[0].url", code, errOut)
	}
	_, errOut, code = runGatehouseEnv(t, []string{"GATEHOUSE_ADMIN_TOKEN=gha_wrong"}, "", append([]string{"apply", "-f", basePath}, admin...)...)
	if code != 1 || !strings.Contains(strings.ToLower(errOut), "401") && !strings.Contains(strings.ToLower(errOut), "unauth") {
		t.Errorf("apply with a wrong token: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runGatehouseEnv(t, env, "", "apply", "-f", basePath, "--server", "http://"+freeAddr(t))
	if code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("apply to a gateway that is down: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runGatehouseEnv(t, nil, "", "apply", "-f", basePath, "--server", "http://"+g.addr)
	if code != 2 || !strings.Contains(errOut, "GATEHOUSE_ADMIN_TOKEN") {
		t.Errorf("apply without a token: exit %d, stderr %q", code, errOut)
	}
	out2, _, _ := runGatehouseEnv(t, env, "", append([]string{"export"}, admin...)...)
	if out2 != out {
		t.Errorf("export after apply, prune and rejected applies differs from the first export:\n%s\n---\n%s", out, out2)
	}
}

// TestAdminChangeLog checks that admin writes are recorded with who, what,
// before and after, and that secrets never come back.
func TestAdminChangeLog(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: one, include: [{upstream: alpha}]}
`, alphaURL))
	d := mustGQL(t, g, `query { upstreams(where: {name: "alpha"}) { edges { node { id } } } }`, nil)
	up := dig(d, "upstreams", "edges", 0, "node", "id")
	mustGQL(t, g, `mutation($id: ID!) { updateUpstream(id: $id, input: {description: "the alpha server"}) { id } }`, map[string]any{"id": up})
	d = mustGQL(t, g, `mutation { createAdminToken(input: {name: "ci", roles: ["viewer"]}) { token } }`, nil)
	viewer, _ := dig(d, "createAdminToken", "token").(string)
	if !strings.HasPrefix(viewer, "gha_") {
		t.Fatalf("createAdminToken = %v", d)
	}

	d = mustGQL(t, g, `query { adminChanges(last: 10) { edges { node { actor op entityType entityName before after } } } }`, nil)
	raw, _ := json.Marshal(d)
	log := string(raw)
	if !strings.Contains(log, `"actor":"token:bootstrap"`) || !strings.Contains(log, `the alpha server`) || !strings.Contains(log, `"entityType":"AdminToken"`) {
		t.Errorf("adminChanges lacks the update or the token creation by token:bootstrap:\n%s", log)
	}
	if strings.Contains(log, viewer) || strings.Contains(log, identity.HashKey(viewer)) {
		t.Errorf("adminChanges shows the admin token or its hash:\n%s", log)
	}
	// The seeding from the file is recorded with the file as actor.
	if !strings.Contains(log, `file:gatehouse.yaml`) {
		d = mustGQL(t, g, `query { adminChanges(first: 10) { edges { node { actor } } } }`, nil)
		if raw, _ := json.Marshal(d); !strings.Contains(string(raw), `file:gatehouse.yaml`) {
			t.Errorf("seeding not recorded with actor file:gatehouse.yaml: %s", raw)
		}
	}

	// A viewer reads configuration but may not write or read the log.
	r := gql(t, g, viewer, `query { upstreams { totalCount } }`, nil)
	if len(r.Errors) > 0 {
		t.Errorf("viewer query: %+v", r.Errors)
	}
	for _, q := range []string{
		`mutation { createTeam(input: {name: "x"}) { id } }`,
		`query { adminChanges { totalCount } }`,
	} {
		r := gql(t, g, viewer, q, nil)
		if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "FORBIDDEN" {
			t.Errorf("viewer %s: want FORBIDDEN, got %+v", q, r)
		}
	}
	// No token: 401 with a JSON body.
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.addr+"/graphql", strings.NewReader(`{"query":"{ me { name } }"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: HTTP %d, want 401", resp.StatusCode)
	}
}

// TestBootstrapAndRestart starts a gateway without --admin-token-file: it
// prints a bootstrap admin token once. A restart on the same store prints
// none, keeps what the admin API changed (the store wins over the file),
// and says the file differs; SIGHUP then applies the file.
func TestBootstrapAndRestart(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeConfigFile(t, "gatehouse.yaml", oneServerConfig(addr, dir, alphaURL))
	start := func(args ...string) *gateway {
		p := startProc(t, filepath.Join(binDir, "gatehouse"), append([]string{"serve", "--approvals=false", "--config", cfg}, args...)...)
		g := &gateway{proc: p, addr: addr, config: cfg}
		waitReady(t, g)
		return g
	}
	g := start()
	tokens := regexp.MustCompile(`gha_[A-Za-z0-9_-]{43}`).FindAllString(g.Output(), -1)
	if len(tokens) != 1 {
		t.Fatalf("bootstrap token printed %d times, want once:\n%s", len(tokens), g.Output())
	}
	g.adminToken = tokens[0]
	for _, e := range logEntries(g) {
		if strings.Contains(fmt.Sprint(e), g.adminToken) {
			t.Errorf("a structured log entry contains the admin token: %v", e)
		}
	}
	mustGQL(t, g, `mutation($id: ID!) { updateVirtualServer(id: $id, input: {description: "from the API"}) { id } }`, map[string]any{"id": vsID(t, g, "one")})
	g.signal(syscall.SIGTERM)
	<-g.done

	g = start()
	g.adminToken = tokens[0]
	if n := len(regexp.MustCompile(`gha_[A-Za-z0-9_-]{43}`).FindAllString(g.Output(), -1)); n != 0 {
		t.Errorf("restart printed %d admin tokens, want none", n)
	}
	d := mustGQL(t, g, `query { virtualServers { edges { node { description } } } }`, nil)
	if got := dig(d, "virtualServers", "edges", 0, "node", "description"); got != "from the API" {
		t.Errorf("description after restart = %v, want the API's change kept", got)
	}
	if countMsg(g, "the config store differs from the configuration file; serving the store. Apply the file with `gatehouse apply -f` or SIGHUP") != 1 {
		t.Errorf("restart did not say the file differs from the store")
	}
	// What the admin API made and the file does not mention survives a
	// SIGHUP (found probing: the demo's "edit, then kill -HUP" deleted it).
	mustGQL(t, g, `mutation { createAgent(input: {name: "made-by-api"}) { id } }`, nil)
	g.signal(syscall.SIGHUP)
	pollUntil(t, "SIGHUP to apply the file", func() bool { return countMsg(g, msgReloaded) == 1 })
	d = mustGQL(t, g, `query { virtualServers { edges { node { description } } } agents { edges { node { name } } } }`, nil)
	if got := dig(d, "virtualServers", "edges", 0, "node", "description"); got != "" && got != nil {
		t.Errorf("description after SIGHUP = %v, want the file's (none)", got)
	}
	if got := dig(d, "agents", "edges", 0, "node", "name"); got != "made-by-api" {
		t.Errorf("agents after SIGHUP = %v, want made-by-api kept (the file is merged)", dig(d, "agents"))
	}
	// With --reload-prune the store holds exactly the file, and the log
	// names what went.
	g.signal(syscall.SIGTERM)
	<-g.done
	g = start("--reload-prune")
	g.adminToken = tokens[0]
	g.signal(syscall.SIGHUP)
	pollUntil(t, "SIGHUP to apply the file with --reload-prune", func() bool { return countMsg(g, msgReloaded) == 1 })
	d = mustGQL(t, g, `query { agents { totalCount } }`, nil)
	if n := dig(d, "agents", "totalCount"); fmt.Sprint(n) != "0" {
		t.Errorf("agents after SIGHUP with --reload-prune = %v, want none", n)
	}
	if e := lastEntry(g, "the reload deleted what the configuration file lacks (--reload-prune)"); e == nil || e["level"] != "WARN" || !strings.Contains(fmt.Sprint(e["deleted"]), "made-by-api") {
		t.Errorf("the pruning reload logged %v, want a WARN naming made-by-api", e)
	}

	// A file of process settings only (like the appliance's) on SIGHUP
	// applies its settings and leaves the store alone, instead of
	// deleting everything the file lacks.
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "listen: %s\ndata_dir: %s\nlog: {level: debug}\n", addr, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	g.signal(syscall.SIGHUP)
	pollUntil(t, "SIGHUP with a settings-only file", func() bool {
		return countMsg(g, "the configuration file has no upstreams, virtual servers or agents: applied its process settings only, the config store is unchanged (change or empty the store through /graphql or `gatehouse apply --prune -f`)") == 1
	})
	d = mustGQL(t, g, `query { virtualServers { edges { node { name } } } upstreams { edges { node { name } } } }`, nil)
	if dig(d, "virtualServers", "edges", 0, "node", "name") != "one" || dig(d, "upstreams", "edges", 0, "node", "name") != "alpha" {
		t.Errorf("store after SIGHUP with a settings-only file = %v, want virtual server one and upstream alpha kept", d)
	}
	if cs := connect(t, "streamable-http", g.url("one"), "", nil); cs.InitializeResult().ServerInfo.Name != "alpha" {
		t.Errorf("virtual server one after a settings-only SIGHUP serves %q, want alpha's", cs.InitializeResult().ServerInfo.Name)
	}
}

// oneAnonymousConfig: virtual server one, open to anonymous agents, with
// the echo and add tools of a demo upstream alpha started for the test.
func oneAnonymousConfig(t *testing.T) string {
	t.Helper()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	return fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: one, anonymous: true, include: [{upstream: alpha, tools: [echo, add]}]}
`, alphaURL)
}

// TestReplicasSharePostgres runs two gateways on one PostgreSQL store: a
// change made through one replica's admin API reaches the other replica's
// agents.
func TestReplicasSharePostgres(t *testing.T) {
	t.Parallel()
	pgURL := freshPostgresDB(t)
	cfg := oneAnonymousConfig(t)
	env := []string{"GATEHOUSE_DATABASE_URL=" + pgURL}
	a := startGateway(t, cfg, env...)
	b := startGateway(t, cfg, env...)
	if b.adminToken != "" {
		t.Errorf("replica b made a bootstrap token although the shared store has one")
	}
	b.adminToken = a.adminToken // one store, one set of admin tokens
	if got := dig(mustGQL(t, b, `query { me { name } }`, nil), "me", "name"); got != "bootstrap" {
		t.Errorf("replica b: me = %v, want the shared bootstrap token", got)
	}
	changed := make(chan struct{}, 16)
	cs := connect(t, "streamable-http", b.url("one"), "", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notifyCh(changed) },
	})
	if got := sortedToolNames(t, cs); !slices.Equal(got, []string{"add", "echo"}) {
		t.Fatalf("replica b tools/list = %v", got)
	}
	sel := vsSelection(t, a, "one")
	mustGQL(t, a, `mutation($id: ID!) { updateSelection(id: $id, input: {tools: ["add"]}) { id } }`, map[string]any{"id": sel})
	committed := time.Now()
	waitNotified(t, changed, "replica b: tools/list_changed after a change through replica a")
	t.Logf("live apply latency across replicas (PostgreSQL, polling): %v", time.Since(committed).Round(time.Millisecond))
	if got := sortedToolNames(t, cs); !slices.Equal(got, []string{"add"}) {
		t.Errorf("replica b tools/list = %v, want [add]", got)
	}
}

// TestConfigStoreOutage: the PostgreSQL store stops taking connections
// under a running gateway. Agents keep being served on the running
// configuration; /readyz says the store is unreachable (degraded); an
// admin write fails with STORE_UNAVAILABLE; the outage is logged once,
// not at every poll. Once the store is back, /readyz clears, the log
// says so, and a change applies live again.
func TestConfigStoreOutage(t *testing.T) {
	t.Parallel()
	pgURL := freshPostgresDB(t)
	cfg := oneAnonymousConfig(t)
	g := startGatewayArgs(t, cfg, []string{"--store-poll", "100ms"}, "GATEHOUSE_DATABASE_URL="+pgURL)
	cs := connect(t, "streamable-http", g.url("one"), "", nil)

	admin, err := sql.Open("pgx", os.Getenv("GATEHOUSE_TEST_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	u, _ := url.Parse(pgURL)
	db := strings.TrimPrefix(u.Path, "/")
	for _, stmt := range []string{
		"ALTER DATABASE " + db + " ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db + "'",
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	pollUntil(t, "/readyz reporting the store unreachable", func() bool {
		code, rd := readyz(t, g)
		return code == http.StatusOK && rd["status"] == "degraded" && strings.HasPrefix(fmt.Sprint(rd["config_store"]), "unreachable since ")
	})
	if got := callText(t, cs, "echo", map[string]any{"text": "still served"}); !strings.Contains(got, "still served") {
		t.Errorf("a call while the store is down: %q", got)
	}
	r := gql(t, g, g.adminToken, `mutation { createTeam(input: {name: "during-outage"}) { id } }`, nil)
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "STORE_UNAVAILABLE" {
		t.Errorf("an admin write while the store is down: %+v", r.Errors)
	}
	time.Sleep(time.Second) // ten polls
	if n := strings.Count(g.Output(), "config store unreachable"); n != 1 {
		t.Errorf("%d \"config store unreachable\" log lines over ten polls, want 1", n)
	}

	if _, err := admin.Exec("ALTER DATABASE " + db + " ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "/readyz clear once the store is back", func() bool {
		_, rd := readyz(t, g)
		return rd["status"] == "ok" && rd["config_store"] == nil
	})
	if !strings.Contains(g.Output(), "config store reachable again") {
		t.Error("the store's return was not logged")
	}
	changed := make(chan struct{}, 16)
	cs2 := connect(t, "streamable-http", g.url("one"), "", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notifyCh(changed) },
	})
	mustGQL(t, g, `mutation($id: ID!) { updateSelection(id: $id, input: {tools: ["add"]}) { id } }`, map[string]any{"id": vsSelection(t, g, "one")})
	waitNotified(t, changed, "tools/list_changed after a change made once the store was back")
	if got := sortedToolNames(t, cs2); !slices.Equal(got, []string{"add"}) {
		t.Errorf("tools/list after the change = %v, want [add]", got)
	}
}

// freshPostgresDB creates an empty database on the test PostgreSQL
// ($GATEHOUSE_TEST_POSTGRES_URL, started by `make test`) and returns its URL.
func freshPostgresDB(t *testing.T) string {
	t.Helper()
	base := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_URL is not set (make test starts PostgreSQL with test/scripts/postgres.sh)")
		}
		t.Skip("GATEHOUSE_TEST_POSTGRES_URL not set; run via make test, or export GATEHOUSE_TEST_POSTGRES_URL=$(test/scripts/postgres.sh)")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "e2e_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = db.Exec("DROP DATABASE " + name + " WITH (FORCE)")
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// newKey returns a fresh agent key and its sha256.
func newKey(t testing.TB) (key, sha string) {
	t.Helper()
	key = identity.NewAPIKey()
	return key, identity.HashKey(key)
}

// mcpStatus POSTs an initialize to url and returns the HTTP status.
func mcpStatus(t testing.TB, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// runGatehouseEnv runs the gatehouse binary to completion in a fresh
// directory, with env added to the test's environment (an admin token the
// test does not pass is removed) and stdin, and returns its stdout, stderr
// and exit code. It fails the test if the command is still running after
// 30s (e.g. serve started when it should have refused).
func runGatehouseEnv(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "gatehouse"), args...)
	cmd.Dir = t.TempDir()
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = slices.DeleteFunc(cmd.Env, func(s string) bool {
		return strings.HasPrefix(s, "GATEHOUSE_ADMIN_TOKEN=") && !slices.Contains(env, s)
	})
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("gatehouse %v still running after 30s; stderr:\n%s", args, errb.String())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("gatehouse %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestSIGHUPWhileStarting: a SIGHUP that arrives while the gateway is
// still starting (an orchestrator reloading right after a start) does not
// end it; the reload runs once it serves.
func TestSIGHUPWhileStarting(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	addr := freeAddr(t)
	cfg := writeConfigFile(t, "gatehouse.yaml", oneServerConfig(addr, t.TempDir(), alphaURL))
	p := startProc(t, filepath.Join(binDir, "gatehouse"), "serve", "--approvals=false", "--config", cfg)
	g := &gateway{proc: p, addr: addr, config: cfg}
	// The config store opens early; the audit engine, the upstreams and
	// the listener take a good while after it.
	pollUntil(t, "the config store to open", func() bool {
		select {
		case <-g.done:
			t.Fatalf("gateway exited while starting:\n%s", g.Output())
		default:
		}
		return strings.Contains(g.Output(), `"config store open"`)
	})
	if strings.Contains(g.Output(), `"gatehouse serving"`) {
		t.Skip("the gateway was serving before the signal could be sent; nothing tested")
	}
	g.signal(syscall.SIGHUP)
	waitReady(t, g)
	pollUntil(t, "the reload after the start", func() bool {
		select {
		case <-g.done:
			t.Fatalf("gateway exited after a SIGHUP while starting:\n%s", g.Output())
		default:
		}
		return countMsg(g, msgReloaded) == 1
	})
}

// oneServerConfig is a configuration file with one upstream, alpha, and
// one anonymous virtual server, one, over it.
func oneServerConfig(addr, dataDir, alphaURL string) string {
	return fmt.Sprintf(`
listen: %s
data_dir: %s
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: one, anonymous: true, include: [{upstream: alpha}]}
`, addr, dataDir, alphaURL)
}
