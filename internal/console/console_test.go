package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// env is the console over the real admin API on a fresh SQLite store,
// served by httptest, with a token per role.
type env struct {
	t      *testing.T
	client *ent.Client
	srv    *httptest.Server
	tokens map[string]string // role → token
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	log := slog.New(slog.DiscardHandler)
	api := graph.NewHandler(c, &graph.HandlerOptions{Logger: log})
	mux := http.NewServeMux()
	mux.Handle("/console/", New(api, &Options{Logger: log}))
	e := &env{t: t, client: c, srv: httptest.NewServer(mux), tokens: map[string]string{}}
	t.Cleanup(e.srv.Close)
	for _, role := range []string{"admin", "viewer", "approver", "auditor"} {
		tok, _, err := store.CreateAdminToken(context.Background(), c, role+"-token", []string{role}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tok
	}
	return e
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, sending this origin with its posts as browsers do.
type browser struct {
	e    *env
	http *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (int, string) {
	b.e.t.Helper()
	resp, err := b.http.Get(b.e.srv.URL + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfInput.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.srv.URL)
	resp, err := b.http.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn signs in with token and returns the response to the form post.
func (b *browser) signIn(token string) *http.Response {
	b.e.t.Helper()
	b.get("/console/signin")
	resp, _ := b.post("/console/signin", url.Values{"csrf": {b.csrf}, "token": {token}, "next": {"/console/"}})
	return resp
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	if resp := b.signIn("gha_not-a-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown token: HTTP %d", resp.StatusCode)
	}
	// The sign-in form needs its double-submitted token.
	if resp, _ := b.post("/console/signin", url.Values{"token": {e.tokens["admin"]}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token: HTTP %d", resp.StatusCode)
	}
	resp := b.signIn(e.tokens["admin"])
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("sign-in: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	u, _ := url.Parse(e.srv.URL + "/console/")
	for _, ck := range b.http.Jar.Cookies(u) {
		if strings.Contains(ck.Value, e.tokens["admin"]) || strings.Contains(ck.Value, "gha_") {
			t.Errorf("cookie %s carries the token", ck.Name)
		}
	}
	if code, body := b.get("/console/"); code != http.StatusOK || !strings.Contains(body, "admin-token") {
		t.Fatalf("overview after sign-in: HTTP %d", code)
	}
	// Signing out ends the session.
	if resp, _ := b.post("/console/signout", url.Values{"csrf": {b.csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: HTTP %d", resp.StatusCode)
	}
	if code, _ := b.get("/console/"); code != http.StatusSeeOther {
		t.Errorf("after sign-out: HTTP %d, want a redirect to sign in", code)
	}
}

// TestPagesByRole renders every page for every role: the API's role checks
// decide, and the console shows FORBIDDEN as 403.
func TestPagesByRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.client.Approval.Create().SetApprovalID("apr-test1").SetAgent("ci-bot").SetTeam("dev").SetVirtualServer("ops").
		SetTool("deploy").SetUpstream("alpha").SetUpstreamTool("deploy").SetArgsHash("abc").SetRule("prod-deploys").
		SetArguments(json.RawMessage(`{"env":"prod","token":"[REDACTED]"}`)).SetReasons([]string{"approval rule prod-deploys requires approval"}).
		SetApproverGroups([]string{"sre"}).SetQuorum(2).SetDeadline(time.Now().Add(time.Hour)).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	pages := []string{"/console/", "/console/approvals", "/console/approvals/history", "/console/approvals/apr-test1",
		"/console/audit", "/console/config/virtual-servers", "/console/config/agents", "/console/config/grants", "/console/tools"}
	want := map[string][]int{
		// overview, inbox, history, detail, audit (off here: 503), vs, agents, grants, tools
		"admin":    {200, 200, 200, 200, 503, 200, 200, 200, 200},
		"viewer":   {200, 403, 403, 403, 403, 200, 200, 200, 200},
		"approver": {200, 200, 200, 200, 403, 403, 403, 403, 403},
		"auditor":  {200, 200, 200, 200, 503, 200, 200, 200, 200},
	}
	for role, codes := range want {
		t.Run(role, func(t *testing.T) {
			b := e.browser()
			b.signIn(e.tokens[role])
			for i, p := range pages {
				code, body := b.get(p)
				if code != codes[i] {
					t.Errorf("%s: HTTP %d, want %d", p, code, codes[i])
				}
				if p == "/console/approvals/apr-test1" && code == 200 {
					hasButton := strings.Contains(body, `value="approve"`)
					if hasButton != (role == "admin" || role == "approver") {
						t.Errorf("%s sees an Approve button: %v", role, hasButton)
					}
					if !strings.Contains(body, "[REDACTED]") || !strings.Contains(body, "prod-deploys") || !strings.Contains(body, "0 of 2") {
						t.Errorf("approval detail lacks the redacted arguments, rule or quorum")
					}
				}
				if p == "/console/approvals" && code == 200 && !strings.Contains(body, `data-approval="apr-test1"`) {
					t.Errorf("inbox lacks the pending approval")
				}
			}
		})
	}
}

// TestDecideRefused: a viewer's post with a valid CSRF token is refused by
// the API's role check; nothing is decided.
func TestDecideRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.tokens["viewer"])
	b.get("/console/")
	resp, body := b.post("/console/approvals/apr-x/decide", url.Values{"csrf": {b.csrf}, "action": {"approve"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "approver") {
		t.Fatalf("viewer decides: HTTP %d\n%s", resp.StatusCode, body)
	}
	resp, _ = b.post("/console/tools/1/approve", url.Values{"csrf": {b.csrf}, "hash": {"x"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer approves a tool definition: HTTP %d", resp.StatusCode)
	}
}

// TestSessionEndsWithToken: a token deleted after sign-in ends the
// session at the next page.
func TestSessionEndsWithToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.tokens["viewer"])
	if _, err := e.client.AdminToken.Delete().Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := b.http.Get(e.srv.URL + "/console/config/agents")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
		t.Fatalf("HTTP %d to %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, _ := b.get("/console/"); code != http.StatusSeeOther {
		t.Errorf("the session outlived its token: HTTP %d", code)
	}
}

func TestChartHelpers(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{time.Minute: "1m", 30 * time.Minute: "30m", time.Hour: "1h", 90 * time.Minute: "1h30m", 24 * time.Hour: "1d"} {
		if got := durationText(d); got != want {
			t.Errorf("durationText(%v) = %q, want %q", d, got, want)
		}
	}
	for span, want := range map[time.Duration]time.Duration{15 * time.Minute: time.Minute, time.Hour: time.Minute, 24 * time.Hour: 30 * time.Minute, 7 * 24 * time.Hour: 3 * time.Hour, 30 * 24 * time.Hour: 12 * time.Hour} {
		if got := bucketFor(span); got != want {
			t.Errorf("bucketFor(%v) = %v, want %v", span, got, want)
		}
	}
	for in, want := range map[float64]float64{0: 1, 3: 5, 10: 10, 11: 20, 999: 1000} {
		if got := niceMax(in); got != want {
			t.Errorf("niceMax(%v) = %v, want %v", in, got, want)
		}
	}
	from := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b := from.Add(5 * time.Minute)
	c := buildCharts([]auditStat{{Bucket: &b, Calls: 4, Denied: 1, Errors: 1, P99Us: 2500}}, []auditStat{{Group: []string{"<ci-bot>"}, Calls: 4}}, nil, from, from.Add(time.Hour), time.Minute)
	if c.Empty || strings.Count(string(c.Activity), "<rect") != 3 || !strings.Contains(string(c.Latency), "p99 2.5 ms") {
		t.Errorf("charts: %+v", c)
	}
	if strings.Contains(string(c.Agents), "<ci-bot>") || !strings.Contains(string(c.Agents), "&lt;ci-bot&gt;") {
		t.Errorf("group names must be escaped: %s", c.Agents)
	}
}

func TestGaugeByLabel(t *testing.T) {
	t.Parallel()
	text := []byte(`# HELP gatehouse_sessions Live agent sessions by virtual server.
# TYPE gatehouse_sessions gauge
gatehouse_sessions{vs="ops"} 3
gatehouse_sessions{vs="dev"} 1
gatehouse_sessions_other{vs="x"} 9
`)
	got := gaugeByLabel(text, "gatehouse_sessions", "vs")
	if len(got) != 2 || got["ops"] != 3 || got["dev"] != 1 {
		t.Errorf("gaugeByLabel = %v", got)
	}
}
