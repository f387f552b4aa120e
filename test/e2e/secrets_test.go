package e2e

// Just-in-time secrets end to end, through the gateway binary against a
// real Vault dev server (vaulttest: bin/vault, built by `make vault`) and
// real upstreams that record what reached them.

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/secrets/vaulttest"
)

const gatehousePolicy = `
path "secret/data/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`

// received is one record of the demo upstream's -record file.
type received struct {
	Method    string            `json:"method"`
	Tool      string            `json:"tool"`
	Arguments map[string]any    `json:"arguments"`
	Headers   map[string]string `json:"headers"`
	Query     map[string]string `json:"query"`
	Proto     string            `json:"proto"`
	Env       map[string]string `json:"env"`
	PID       int               `json:"pid"`
}

func readRecords(t *testing.T, path string) []received {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []received
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r received
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// lastCall is the last recorded tools/call of tool.
func lastCall(t *testing.T, path, tool string) received {
	t.Helper()
	recs := readRecords(t, path)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Method == "tools/call" && recs[i].Tool == tool {
			return recs[i]
		}
	}
	t.Fatalf("no %s call recorded", tool)
	return received{}
}

// agentView collects everything agents were shown, for the canary check.
type agentView struct {
	mu  sync.Mutex
	out []string
}

func (v *agentView) add(x any) {
	b, _ := json.Marshal(x)
	v.mu.Lock()
	v.out = append(v.out, string(b))
	v.mu.Unlock()
}

func (v *agentView) call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	t.Helper()
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: tool, Arguments: args})
	v.add(res)
	if err != nil {
		v.add(err.Error())
	}
	return res, err
}

func randomCanary() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "CANARY" + hex.EncodeToString(b[:])
}

// TestSecretsEndToEnd: secrets from Vault reach upstreams as headers,
// query parameters, hidden arguments and per-credential stdio processes;
// agents never see them (echoes are scrubbed); per-agent paths isolate
// agents; Vault going down fails only the requests that need it, with an
// error naming the binding, until it is back; an approved call fetches its
// secret only after approval; and a canary secret appears nowhere an agent,
// an admin or a log could see it.
func TestSecretsEndToEnd(t *testing.T) {
	t.Parallel()
	v := vaulttest.Start(t)
	canary := randomCanary()
	v.WritePolicy(t, "gatehouse", gatehousePolicy)
	v.PutKV(t, "secret", "agents/a1/github", map[string]any{"token": canary + "-a1"})
	v.PutKV(t, "secret", "agents/a2/github", map[string]any{"token": canary + "-a2"})
	v.PutKV(t, "secret", "api", map[string]any{"key": canary + "-api"})
	v.PutKV(t, "secret", "deploy", map[string]any{"key": canary + "-deploy"})
	tokenFile := filepath.Join(t.TempDir(), "vault.token")
	if err := os.WriteFile(tokenFile, []byte(v.Token(t, []string{"gatehouse"}, time.Hour, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Vault's audit log shows when each secret was read (paths in clear).
	auditLog := filepath.Join(t.TempDir(), "vault-audit.log")
	if err := v.Client(t).Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditLog}}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	webRec, localRec := filepath.Join(dir, "web.jsonl"), filepath.Join(dir, "local.jsonl")
	addr := freeAddr(t)
	startProc(t, filepath.Join(binDir, "demo-server"), "-transport", "streamable-http", "-addr", addr, "-name", "web", "-record", webRec)
	waitTCP(t, addr)
	plainURL, _ := demoHTTP(t, "streamable-http", "plain")
	k1, s1 := newKey(t)
	k2, s2 := newKey(t)
	cfg := fmt.Sprintf(`listen: LISTEN
upstreams:
  - {name: web, transport: streamable-http, url: "http://%s/mcp"}
  - {name: plain, transport: streamable-http, url: %q}
  - name: local
    transport: stdio
    command: %q
    args: [-transport, stdio, -name, local]
    env: {DEMO_RECORD: %q, DEMO_RECORD_ENV: DEMO_TOKEN}
virtual_servers:
  - {name: web, include: [{upstream: web}]}
  - {name: plain, include: [{upstream: plain}]}
  - {name: local, include: [{upstream: local}]}
agents:
  - {name: a1, team: dev, api_keys: [{sha256: %s}]}
  - {name: a2, team: dev, api_keys: [{sha256: %s}]}
approval_rules:
  - {name: deploys, approver_groups: [sre], tools: [deploy]}
guardrails:
  - {name: no-blockme, direction: response, detector: denylist, terms: [blockme], action: block}
secret_bindings:
  - {name: github, upstream: web, source: kv, path: "secret/agents/{{.agent}}/github", key: token, per_principal: true,
     injection: header, target: Authorization, template: "Bearer {{.Value}}"}
  - {name: api-query, upstream: web, tools: [echo], source: kv, path: secret/api, key: key, injection: query, target: api_key}
  - {name: api-arg, upstream: web, tools: [whoami], source: kv, path: secret/api, key: key, injection: argument, target: api_key}
  - {name: llm-arg, upstream: web, tools: [ask_llm], source: kv, path: secret/api, key: key, injection: argument, target: text}
  - {name: deploy-key, upstream: web, tools: [deploy], source: kv, path: secret/deploy, key: key, injection: header, target: X-Deploy-Key}
  - {name: local-token, upstream: local, source: kv, path: "secret/agents/{{.agent}}/github", key: token, per_principal: true,
     injection: env, target: DEMO_TOKEN}
`, addr, plainURL, filepath.Join(binDir, "demo-server"), localRec, s1, s2)
	g := startGatewayArgs(t, cfg, []string{"--approvals=true", "--approval-hold", "2m",
		"--vault-addr", v.Addr(), "--vault-token-file", tokenFile, "--vault-kv-cache-ttl", "0"})
	if _, rd := readyz(t, g); rd["vault"] != "ready" {
		t.Errorf("/readyz vault = %v, want ready", rd["vault"])
	}
	var seen agentView
	a1 := connect(t, "streamable-http", g.url("web"), k1, nil)
	a2 := connect(t, "streamable-http", g.url("web"), k2, nil)

	t.Run("header per agent", func(t *testing.T) {
		for _, c := range []struct {
			cs    *mcp.ClientSession
			agent string
		}{{a1, "a1"}, {a2, "a2"}, {a1, "a1"}} {
			res, err := seen.call(t, c.cs, "whoami", nil)
			if err != nil || !strings.Contains(textOf(t, res), "yes") {
				t.Fatalf("whoami: %v %v", textOf(t, res), err)
			}
			if got := lastCall(t, webRec, "whoami").Headers["authorization"]; got != "Bearer "+canary+"-"+c.agent {
				t.Errorf("%s: upstream got Authorization %q", c.agent, got)
			}
		}
		// Each agent's own session with the upstream was opened with its
		// credential (initialize carries it); the gateway's discovery
		// session gets no per-agent secret.
		creds := map[string]int{}
		for _, r := range readRecords(t, webRec) {
			if r.Method == "initialize" {
				creds[r.Headers["authorization"]]++
			}
		}
		if creds["Bearer "+canary+"-a1"] != 1 || creds["Bearer "+canary+"-a2"] != 1 || creds[""] != 1 {
			t.Errorf("initialize credentials: %v, want one per agent session and none for discovery", creds)
		}
	})

	t.Run("query and hidden argument", func(t *testing.T) {
		if _, err := seen.call(t, a1, "echo", map[string]any{"text": "hi"}); err != nil {
			t.Fatal(err)
		}
		if got := lastCall(t, webRec, "echo").Query["api_key"]; got != canary+"-api" {
			t.Errorf("echo query api_key = %q", got)
		}
		if q := lastCall(t, webRec, "whoami").Query; q["api_key"] != "" {
			t.Errorf("a binding narrowed to echo reached whoami: %v", q)
		}
		tools, err := a1.ListTools(ctxT(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		seen.add(tools)
		for _, tl := range tools.Tools {
			if tl.Name == "whoami" && strings.Contains(fmt.Sprint(tl.InputSchema), "api_key") {
				t.Errorf("the injected argument is in the agent's schema: %v", tl.InputSchema)
			}
		}
		res, err := seen.call(t, a1, "whoami", map[string]any{"api_key": "agent-supplied"})
		if err != nil || res.IsError || !strings.Contains(textOf(t, res), "api_key argument present: yes") {
			t.Fatalf("whoami: %v %v", err, textOf(t, res))
		}
		if got := lastCall(t, webRec, "whoami").Arguments["api_key"]; got != canary+"-api" {
			t.Errorf("upstream got api_key %v, want the injected secret (the agent's value replaced)", got)
		}
		// The direct view of the upstream does show the argument.
		direct := connect(t, "streamable-http", "http://"+addr+"/mcp", "", nil)
		dt, err := direct.ListTools(ctxT(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range dt.Tools {
			if tl.Name == "whoami" && !strings.Contains(fmt.Sprint(tl.InputSchema), "api_key") {
				t.Errorf("the upstream's own whoami schema lacks api_key: %v", tl.InputSchema)
			}
		}
	})

	t.Run("echoed secret is scrubbed", func(t *testing.T) {
		res, err := seen.call(t, a1, "echo_header", map[string]any{"name": "Authorization"})
		if err != nil {
			t.Fatal(err)
		}
		if txt := textOf(t, res); strings.Contains(txt, canary) || !strings.Contains(txt, "[REDACTED:secret github]") {
			t.Errorf("agent saw %q", txt)
		}
		pollUntil(t, "scrub logged", func() bool { return strings.Contains(g.Output(), "upstream echoed an injected secret") })
	})

	// Found probing: a secret injected into a call reached the agent in
	// the sampling request the upstream sent back during the call; and
	// the hidden argument, required by the upstream's schema, made the
	// tool uncallable by its advertised schema.
	t.Run("server-to-client requests are scrubbed", func(t *testing.T) {
		client := mcp.NewClient(&mcp.Implementation{Name: "sampler"}, &mcp.ClientOptions{
			CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				seen.add(req.Params)
				text := ""
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					text = tc.Text
				}
				return &mcp.CreateMessageResult{Role: "assistant", Model: "m", Content: &mcp.TextContent{Text: "sampled " + text}}, nil
			},
		})
		sampler := connectClient(t, client, g.url("web"), k1, "")
		res, err := seen.call(t, sampler, "ask_llm", map[string]any{})
		if err != nil || res.IsError {
			t.Fatalf("ask_llm without its hidden argument: %v %v", err, textOf(t, res))
		}
		if got := textOf(t, res); got != "llm said: sampled [REDACTED:secret llm-arg]" {
			t.Errorf("ask_llm = %q, want the sampled text scrubbed on the way to the agent", got)
		}
		pollUntil(t, "scrub logged", func() bool { return strings.Contains(g.Output(), "upstream sent an injected secret toward the agent") })
	})

	t.Run("stdio process per credential", func(t *testing.T) {
		l1 := connect(t, "streamable-http", g.url("local"), k1, nil)
		l2 := connect(t, "streamable-http", g.url("local"), k2, nil)
		res, err := seen.call(t, l1, "env", map[string]any{"text": "DEMO_TOKEN"})
		if err != nil {
			t.Fatal(err)
		}
		if txt := textOf(t, res); strings.Contains(txt, canary) || !strings.Contains(txt, "REDACTED") {
			t.Errorf("agent saw its process's env: %q", txt)
		}
		r1 := lastCall(t, localRec, "env")
		if _, err := seen.call(t, l2, "env", map[string]any{"text": "DEMO_TOKEN"}); err != nil {
			t.Fatal(err)
		}
		r2 := lastCall(t, localRec, "env")
		if _, err := seen.call(t, l1, "env", map[string]any{"text": "DEMO_TOKEN"}); err != nil {
			t.Fatal(err)
		}
		r3 := lastCall(t, localRec, "env")
		if r1.Env["DEMO_TOKEN"] != canary+"-a1" || r2.Env["DEMO_TOKEN"] != canary+"-a2" {
			t.Errorf("process env: a1 %q, a2 %q", r1.Env["DEMO_TOKEN"], r2.Env["DEMO_TOKEN"])
		}
		if r1.PID == r2.PID || r1.PID != r3.PID {
			t.Errorf("pids a1 %d, a2 %d, a1 again %d: want one process per credential, reused", r1.PID, r2.PID, r3.PID)
		}
		// The gateway's own process (discovery) has no agent's secret.
		for _, r := range readRecords(t, localRec) {
			if r.Method == "tools/list" && r.Env["DEMO_TOKEN"] != "" {
				t.Errorf("the discovery process got an agent's credential")
			}
		}
	})

	t.Run("vault down and back", func(t *testing.T) {
		v.Down()
		_, err := seen.call(t, a1, "whoami", nil)
		var je *jsonrpc.Error
		if !errors.As(err, &je) || je.Code != -32057 || !strings.Contains(je.Message, `secret binding "`) || !strings.Contains(je.Message, "connection refused") {
			t.Errorf("call while Vault is down: %v", err)
		}
		if _, rd := readyz(t, g); !strings.HasPrefix(fmt.Sprint(rd["vault"]), "unavailable") || rd["status"] != "degraded" {
			t.Errorf("/readyz while Vault is down: vault=%v status=%v", rd["vault"], rd["status"])
		}
		// Requests that need no secret go on.
		pl := connect(t, "streamable-http", g.url("plain"), k1, nil)
		if _, err := seen.call(t, pl, "echo", map[string]any{"text": "still here"}); err != nil {
			t.Errorf("a call needing no secret failed while Vault was down: %v", err)
		}
		v.Up()
		if res, err := seen.call(t, a1, "whoami", nil); err != nil || res.IsError {
			t.Errorf("after Vault is back: %v", err)
		}
		if _, rd := readyz(t, g); rd["vault"] != "ready" {
			t.Errorf("/readyz after recovery: vault=%v", rd["vault"])
		}
	})

	t.Run("approved call fetches its secret after approval", func(t *testing.T) {
		approver := approverToken(t, g, "alice", "sre", "sre")
		done := make(chan error, 1)
		go func() {
			res, err := seen.call(t, a1, "deploy", map[string]any{"service": "api", "env": "prod"})
			if err == nil && res.IsError {
				err = errors.New(textOf(t, res))
			}
			done <- err
		}()
		ids := waitPending(t, g, approver, "deploy", 1)
		time.Sleep(300 * time.Millisecond)
		if n := auditReads(t, auditLog, "secret/data/deploy"); n != 0 {
			t.Fatalf("the deploy secret was read %d times before approval", n)
		}
		if codes := decide(t, g, approver, ids[0], true, "ok"); codes != nil {
			t.Fatalf("approve: %v", codes)
		}
		if err := <-done; err != nil {
			t.Fatalf("approved deploy: %v", err)
		}
		if got := lastCall(t, webRec, "deploy").Headers["x-deploy-key"]; got != canary+"-deploy" {
			t.Errorf("approved deploy reached the upstream with X-Deploy-Key %q", got)
		}
		if n := auditReads(t, auditLog, "secret/data/deploy"); n != 1 {
			t.Errorf("the deploy secret was read %d times, want once (after approval)", n)
		}
		seen.add(approvalState(t, g, approver, ids[0]))

		// Approved while Vault is down: the call waits for its secret
		// (the workflow's secrets step retries) and runs once Vault is back.
		go func() {
			res, err := seen.call(t, a1, "deploy", map[string]any{"service": "web", "env": "prod"})
			if err == nil && res.IsError {
				err = errors.New(textOf(t, res))
			}
			done <- err
		}()
		ids = waitPending(t, g, approver, "deploy", 1)
		v.Down()
		if codes := decide(t, g, approver, ids[0], true, "ok"); codes != nil {
			t.Fatalf("approve: %v", codes)
		}
		time.Sleep(1500 * time.Millisecond)
		if got := lastCall(t, webRec, "deploy").Arguments["service"]; got != "api" {
			t.Fatalf("the deploy ran while its secret was unavailable (service %v)", got)
		}
		v.Up()
		if err := <-done; err != nil {
			t.Fatalf("deploy approved during the outage: %v", err)
		}
		if r := lastCall(t, webRec, "deploy"); r.Arguments["service"] != "web" || r.Headers["x-deploy-key"] != canary+"-deploy" {
			t.Errorf("after the outage the upstream got %v with X-Deploy-Key %q", r.Arguments, r.Headers["x-deploy-key"])
		}
		seen.add(approvalState(t, g, approver, ids[0]))
	})

	t.Run("canary appears nowhere", func(t *testing.T) {
		// The remaining paths: an upstream tool error, a response a
		// guardrail blocks, an upstream error echoing the request.
		if res, err := seen.call(t, a1, "fail", nil); err != nil || !res.IsError {
			t.Errorf("fail: %v", err)
		}
		var je *jsonrpc.Error
		if _, err := seen.call(t, a1, "echo", map[string]any{"text": "blockme"}); !errors.As(err, &je) || je.Code != -32055 {
			t.Errorf("blocked echo: %v", err)
		}
		if res, err := seen.call(t, a1, "echo_header", map[string]any{"name": "X-Missing"}); err != nil || !res.IsError {
			t.Errorf("echo_header of a missing header: %v", err)
		}
		r := gql(t, g, g.adminToken, `query { secretBindings { edges { node { name description source path key version role leaseScope injection target template perPrincipal tools } } } }`, nil)
		if len(r.Errors) > 0 || len(dig(r.Data, "secretBindings", "edges").([]any)) != 6 {
			t.Fatalf("secretBindings: %+v %v", r.Errors, r.Data)
		}
		seen.add(r.Data)
		exp, _, code := runGatehouseEnv(t, []string{"GATEHOUSE_SERVER=http://" + g.addr, "GATEHOUSE_ADMIN_TOKEN=" + g.adminToken}, "", "export")
		if code != 0 {
			t.Fatalf("export failed")
		}
		seen.add(exp)
		for i, s := range seen.out {
			if strings.Contains(s, canary) {
				t.Errorf("agent/admin output %d holds the canary: %s", i, s)
			}
		}
		if strings.Contains(g.Output(), canary) {
			t.Errorf("the gateway's logs hold the canary")
		}
		// Nor does anything the gateway stored: the config store and the
		// embedded Temporal server's history.
		data := filepath.Join(filepath.Dir(g.config), "data")
		_ = filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), canary) {
				t.Errorf("%s holds the canary", p)
			}
			return nil
		})
	})
}

// auditReads counts the reads of path in Vault's audit log.
func auditReads(t *testing.T, log, path string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Path      string `json:"path"`
				Operation string `json:"operation"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "response" && e.Request.Path == path && e.Request.Operation == "read" {
			n++
		}
	}
	return n
}

// TestSecretsDatabaseLease: Vault's database secrets engine leases
// PostgreSQL credentials to the reference server-postgres (stdio, npm),
// which receives its connection URL from the lease in its environment: a
// lease per agent session is revoked when the session ends, a lease per
// call when the call ends, and PostgreSQL shows the role gone.
func TestSecretsDatabaseLease(t *testing.T) {
	t.Parallel()
	pgURL := freshPostgresDB(t)
	admin, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE TABLE items (name text); INSERT INTO items VALUES ('widget')`); err != nil {
		t.Fatal(err)
	}
	v := vaulttest.Start(t)
	v.WritePolicy(t, "gatehouse", gatehousePolicy)
	v.Database(t, pgURL, "readonly", 5*time.Minute)
	tokenFile := filepath.Join(t.TempDir(), "vault.token")
	if err := os.WriteFile(tokenFile, []byte(v.Token(t, []string{"gatehouse"}, time.Hour, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	leased := func() int {
		var n int
		if err := admin.QueryRow(`SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	u, _ := url.Parse(pgURL)
	server := tool(t, "npm/node_modules/@modelcontextprotocol/server-postgres/dist/index.js")
	key, sha := newKey(t)
	cfg := fmt.Sprintf(`listen: LISTEN
upstreams:
  - name: pg
    transport: stdio
    command: /bin/sh
    args: [-c, 'exec "$NODE" "$SERVER" "$DATABASE_URL"']
    env: {NODE: %q, SERVER: %q}
virtual_servers:
  - {name: db, include: [{upstream: pg}]}
agents:
  - {name: analyst, api_keys: [{sha256: %s}]}
secret_bindings:
  - {name: pg-readonly, upstream: pg, source: dynamic, path: database, role: readonly, lease_scope: session,
     injection: env, target: DATABASE_URL, template: "postgresql://{{.username}}:{{.password}}@%s%s"}
`, tool(t, "bin/node22"), server, sha, u.Host, u.Path)
	g := startGatewayArgs(t, cfg, []string{"--vault-addr", v.Addr(), "--vault-token-file", tokenFile})
	// The gateway's own server-postgres (discovery) runs on a lease of its own.
	pollUntil(t, "the discovery process's lease", func() bool { return leased() == 1 })

	query := func(cs *mcp.ClientSession) string {
		t.Helper()
		res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT name FROM items"}})
		if err != nil || res.IsError {
			t.Fatalf("query: %v %+v", err, res)
		}
		return textOf(t, res)
	}
	t.Run("lease per session", func(t *testing.T) {
		cs := connect(t, "streamable-http", g.url("db"), key, nil)
		if got := query(cs); !strings.Contains(got, "widget") {
			t.Fatalf("query result %q", got)
		}
		query(cs)
		// Polled: a discovery process the gateway replaced while it
		// started may still hold its lease for a moment (revoked
		// asynchronously), as CI once saw (3 roles). Two calls with a
		// lease each, or a session lease not kept, never reach 2.
		pollUntil(t, "2 leased roles during the session (discovery + this session)", func() bool { return leased() == 2 })
		_ = cs.Close()
		pollUntil(t, "the session's role revoked", func() bool { return leased() == 1 })
	})

	t.Run("lease per call", func(t *testing.T) {
		mustGQL(t, g, `mutation($id: ID!) { updateSecretBinding(id: $id, input: {leaseScope: call}) { id } }`,
			map[string]any{"id": dig(mustGQL(t, g, `query { secretBindings { edges { node { id } } } }`, nil), "secretBindings", "edges", 0, "node", "id")})
		// The changed binding restarts the upstream: a new discovery lease,
		// the old one revoked.
		time.Sleep(time.Second)
		pollUntil(t, "one discovery lease after the change", func() bool { return leased() == 1 })
		cs := connect(t, "streamable-http", g.url("db"), key, nil)
		if got := query(cs); !strings.Contains(got, "widget") {
			t.Fatalf("query result %q", got)
		}
		pollUntil(t, "the call's role revoked after the call", func() bool { return leased() == 1 })
		if !strings.Contains(g.Output(), "lease_ids") {
			t.Error("request log lines name no lease IDs")
		}
	})
}
