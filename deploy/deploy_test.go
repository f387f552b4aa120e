// Package deploy holds no Go code: it checks the deployment artifacts next
// to it (compose/, helm/gatehouse/, systemd/) against the gateway they
// deploy. Every environment variable and flag they give gatehouse must be
// one the code reads, every configuration file they ship must load, and the
// Helm chart must render the properties operations rely on (probes,
// non-root read-only containers, session affinity, PDB, HPA) and refuse the
// configurations that would split state between replicas.
//
// The Helm tests need a helm binary: $GATEHOUSE_HELM, else .cache/bin/helm
// (test/scripts/helm.sh builds it; `make deploy-test` runs both). Without
// one they are skipped, unless GATEHOUSE_HELM is set. systemd-analyze checks
// the unit when it is installed.
package deploy

import (
	"bytes"
	"errors"
	"io"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// gatehouseFlags returns the names of every flag gatehouse's subcommands
// register, read from internal/cli's source.
func gatehouseFlags(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`fs\.[A-Z][A-Za-z0-9]*\(\s*(?:&[^,]+,\s*)?"([a-z][a-z0-9-]*)"`)
	flags := map[string]bool{}
	for _, src := range cliSources(t) {
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			flags[m[1]] = true
		}
	}
	for _, must := range []string{"config", "temporal-address", "vault-addr", "clickhouse-addr", "audit"} {
		if !flags[must] {
			t.Fatalf("flag scan of internal/cli found no --%s: the pattern is out of date", must)
		}
	}
	return flags
}

// gatehouseEnv returns every GATEHOUSE_* name that appears as a string
// literal in the non-test Go source of the module.
func gatehouseEnv(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`"(GATEHOUSE_[A-Z0-9_]+)"`)
	env := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".cache" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			env[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !env["GATEHOUSE_DATABASE_URL"] {
		t.Fatal("env scan found no GATEHOUSE_DATABASE_URL: the scan is broken")
	}
	return env
}

func cliSources(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../internal/cli/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no internal/cli sources: %v", err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// checkArgs fails for every --flag in args that gatehouse does not have.
func checkArgs(t *testing.T, where string, args []string, flags map[string]bool) {
	t.Helper()
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !flags[name] {
			t.Errorf("%s: gatehouse has no flag --%s", where, name)
		}
	}
}

// checkDatabaseURL parses url with pgx, the config store's driver, with its
// passfile replaced by one holding password, and checks that the password
// is found there.
func checkDatabaseURL(t *testing.T, url string) {
	t.Helper()
	if !strings.HasPrefix(url, "postgres://") {
		t.Errorf("database URL %q: want postgres://", url)
		return
	}
	re := regexp.MustCompile(`passfile=[^&]+`)
	if !re.MatchString(url) {
		t.Errorf("database URL %q: no passfile=, so the password would have to be in the URL", url)
		return
	}
	if u, err := neturl.Parse(url); err != nil {
		t.Errorf("database URL %q: %v", url, err)
	} else if _, has := u.User.Password(); has {
		t.Errorf("database URL %q carries a password", url)
	}
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgx rejects %q: %v", url, err)
	}
	pass := filepath.Join(t.TempDir(), "pgpass")
	line := cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + ":" + cfg.Database + ":" + cfg.User + ":s3cret\n"
	if err := os.WriteFile(pass, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = pgconn.ParseConfig(re.ReplaceAllString(url, "passfile="+pass))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password != "s3cret" {
		t.Errorf("database URL %q: pgx did not take the password from the passfile", url)
	}
}

// --- compose ---------------------------------------------------------------

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		User        string            `yaml:"user"`
		ReadOnly    bool              `yaml:"read_only"`
		Environment map[string]string `yaml:"environment"`
		Command     []string          `yaml:"command"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Secrets []string `yaml:"secrets"`
		Volumes []string `yaml:"volumes"`
		CapDrop []string `yaml:"cap_drop"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func TestCompose(t *testing.T) {
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"gatehouse", "postgres", "temporal", "clickhouse", "vault"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose.yaml: no service %q", name)
		}
	}
	for name, s := range c.Services {
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("compose.yaml: service %s has no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("compose.yaml: %s depends on unknown service %s", name, dep)
			}
			if d.Condition == "service_healthy" && c.Services[dep].Healthcheck == nil {
				t.Errorf("compose.yaml: %s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("compose.yaml: %s uses undeclared secret %s", name, sec)
			}
		}
		// Secrets go through files: no password, token or key in the
		// environment, except variables naming a file.
		for k, v := range s.Environment {
			secretish := regexp.MustCompile(`PASSWORD|PWD|TOKEN|SECRET|API_KEY`).MatchString(k)
			if secretish && !strings.HasSuffix(k, "_FILE") && v != "" {
				t.Errorf("compose.yaml: %s has %s inline in its environment: use a secret file", name, k)
			}
		}
	}

	g := c.Services["gatehouse"]
	if !strings.HasPrefix(g.Image, "gatehouse:") {
		t.Errorf("gatehouse image %q: want gatehouse:VERSION", g.Image)
	}
	if g.User != "65532:65532" || !g.ReadOnly || !slices.Contains(g.CapDrop, "ALL") {
		t.Errorf("gatehouse: want user 65532:65532, read_only, cap_drop ALL; got %q %v %v", g.User, g.ReadOnly, g.CapDrop)
	}
	if !slices.ContainsFunc(g.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/var/lib/gatehouse") }) {
		t.Errorf("gatehouse: no volume on /var/lib/gatehouse: %v", g.Volumes)
	}
	for _, dep := range []string{"postgres", "temporal", "clickhouse"} {
		if g.DependsOn[dep].Condition != "service_healthy" {
			t.Errorf("gatehouse: want depends_on %s condition service_healthy, got %q", dep, g.DependsOn[dep].Condition)
		}
	}
	env := gatehouseEnv(t)
	for k := range g.Environment {
		if strings.HasPrefix(k, "GATEHOUSE_") && !env[k] {
			t.Errorf("gatehouse: the code reads no %s", k)
		}
	}
	for _, k := range []string{"GATEHOUSE_DATABASE_URL", "GATEHOUSE_TEMPORAL_ADDRESS", "GATEHOUSE_CLICKHOUSE_ADDR", "GATEHOUSE_VAULT_ADDR"} {
		if g.Environment[k] == "" {
			t.Errorf("gatehouse: %s not set", k)
		}
	}
	checkDatabaseURL(t, g.Environment["GATEHOUSE_DATABASE_URL"])
	checkArgs(t, "compose gatehouse command", g.Command, gatehouseFlags(t))
	// The Temporal namespace auto-setup creates is the one gatehouse uses.
	if ns := c.Services["temporal"].Environment["DEFAULT_NAMESPACE"]; ns != "gatehouse" {
		t.Errorf("temporal DEFAULT_NAMESPACE %q: want gatehouse (--temporal-namespace default)", ns)
	}

	if _, err := config.Load("compose/gatehouse.yaml"); err != nil {
		t.Errorf("compose/gatehouse.yaml: %v", err)
	}

	// secrets.sh creates every file the compose file names, and only
	// readable ones.
	dir := t.TempDir()
	script, err := os.ReadFile("compose/secrets.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if out, err := exec.Command("bash", filepath.Join(dir, "secrets.sh")).CombinedOutput(); err != nil {
			t.Fatalf("secrets.sh: %v\n%s", err, out)
		}
	}
	for name, s := range c.Secrets {
		fi, err := os.Stat(filepath.Join(dir, s.File))
		if err != nil {
			t.Errorf("secret %s: secrets.sh did not create %s: %v", name, s.File, err)
			continue
		}
		if fi.Mode().Perm()&0o004 == 0 {
			t.Errorf("secret %s: %s is %v; the containers' users cannot read it", name, s.File, fi.Mode())
		}
	}
	pgpass, _ := os.ReadFile(filepath.Join(dir, "secrets/gatehouse.pgpass"))
	pw, _ := os.ReadFile(filepath.Join(dir, "secrets/gatehouse_db_password"))
	if !strings.HasSuffix(strings.TrimSpace(string(pgpass)), ":"+strings.TrimSpace(string(pw))) {
		t.Errorf("gatehouse.pgpass does not carry gatehouse_db_password")
	}
	token, _ := os.ReadFile(filepath.Join(dir, "secrets/admin_token"))
	if !regexp.MustCompile(`^gha_[A-Za-z0-9_-]{43}\n$`).Match(token) {
		t.Errorf("admin_token %q: want gha_ and 43 base64url characters (gatehouse keygen --admin)", token)
	}
}

// --- systemd -----------------------------------------------------------------

func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/gatehouse.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		unit[k] = append(unit[k], v)
	}
	want := map[string]string{
		"DynamicUser": "yes", "StateDirectory": "gatehouse", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "KillSignal": "SIGTERM", "Restart": "on-failure",
	}
	for k, v := range want {
		if got, ok := unit[k]; !ok || got[0] != v {
			t.Errorf("gatehouse.service: want %s=%s, got %q", k, v, got)
		}
	}
	if !slices.Contains(unit["SystemCallFilter"], "@system-service") {
		t.Errorf("gatehouse.service: no SystemCallFilter=@system-service")
	}
	if n, _ := strconv.Atoi(firstOf(unit["LimitNOFILE"])); n < 65536 {
		t.Errorf("gatehouse.service: LimitNOFILE=%q, want ≥ 65536 (each agent session holds ~2 descriptors)", firstOf(unit["LimitNOFILE"]))
	}
	// Stop timeout covers the gateway's drain (HTTP shutdown alone may take 15 s).
	if n, _ := strconv.Atoi(firstOf(unit["TimeoutStopSec"])); n < 30 {
		t.Errorf("gatehouse.service: TimeoutStopSec=%q, want ≥ 30", firstOf(unit["TimeoutStopSec"]))
	}
	// reload re-reads the configuration file (SIGHUP), the gateway's way.
	if got := firstOf(unit["ExecReload"]); got != "/bin/kill -HUP $MAINPID" {
		t.Errorf("gatehouse.service: ExecReload=%q, want SIGHUP to the main process", got)
	}
	for _, e := range unit["Environment"] {
		name, _, _ := strings.Cut(e, "=")
		if !gatehouseEnv(t)[name] {
			t.Errorf("gatehouse.service: Environment=%s: the code reads no such variable", name)
		}
	}
	exe := strings.Fields(firstOf(unit["ExecStart"]))
	if len(exe) < 2 || exe[1] != "serve" {
		t.Fatalf("ExecStart %q: want gatehouse serve", firstOf(unit["ExecStart"]))
	}
	checkArgs(t, "gatehouse.service ExecStart", exe[2:], gatehouseFlags(t))

	env, err := os.ReadFile("systemd/gatehouse.env.example")
	if err != nil {
		t.Fatal(err)
	}
	names := gatehouseEnv(t)
	for _, line := range strings.Split(string(env), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(k) {
			continue
		}
		switch {
		case k == "SERVE_FLAGS":
			checkArgs(t, "gatehouse.env.example SERVE_FLAGS", strings.Fields(v), gatehouseFlags(t))
		case !names[k]:
			t.Errorf("gatehouse.env.example: the code reads no %s", k)
		case k == "GATEHOUSE_DATABASE_URL":
			checkDatabaseURL(t, v)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit's syntax was not verified")
	}
	// verify insists that ExecStart's binary exists: point it at a stub.
	dir := t.TempDir()
	stub := filepath.Join(dir, "gatehouse")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gatehouse.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte("/usr/bin/gatehouse"), []byte(stub)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		// verify exits 0 on unknown keys but prints them.
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (threshold 20): %v\n%s", err, out)
	}
	t.Logf("systemd-analyze security: %s", lastLine(out))
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// --- Helm ----------------------------------------------------------------------

const chart = "helm/gatehouse"

func helmBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GATEHOUSE_HELM"); p != "" {
		return p
	}
	p, err := filepath.Abs("../.cache/bin/helm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("no helm: `make deploy-test` builds it (test/scripts/helm.sh) and runs these tests")
	}
	return p
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return o.str("kind") }

// str follows a dotted path of map keys (and [N] list indexes) to a string.
func (o object) str(path string) string {
	v := o.get(path)
	if v == nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	}
	return ""
}

func (o object) get(path string) any {
	var cur any = map[string]any(o)
	for _, part := range strings.Split(path, ".") {
		idx := -1
		if i := strings.Index(part, "["); i >= 0 {
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
			part = part[:i]
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
		if idx >= 0 {
			l, ok := cur.([]any)
			if !ok || idx >= len(l) {
				return nil
			}
			cur = l[idx]
		}
	}
	return cur
}

type rendered []object

func (r rendered) find(kind, nameSuffix string) object {
	for _, o := range r {
		if o.kind() == kind && strings.HasSuffix(o.str("metadata.name"), nameSuffix) {
			return o
		}
	}
	return nil
}

func (r rendered) count(kind string) int {
	n := 0
	for _, o := range r {
		if o.kind() == kind {
			n++
		}
	}
	return n
}

// helm runs the helm binary on the chart and returns its output and error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String() + stderr.String(), errors.New(strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", "gh", chart, "--namespace", "gatehouse"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	var objs rendered
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		// A plain map: yaml.v3 would decode nested mappings into the
		// named type too.
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template %v: output is not YAML: %v", args, err)
		}
		if o != nil {
			objs = append(objs, object(o))
		}
	}
	return objs
}

func TestHelmLint(t *testing.T) {
	for _, args := range [][]string{{}, {"-f", chart + "/ci/multi-replica-values.yaml"}} {
		if out, err := helm(t, append([]string{"lint", "--strict", chart}, args...)...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", args, err, out)
		}
	}
}

// container returns the first container of a workload object.
func container(o object) object {
	c, _ := o.get("spec.template.spec.containers[0]").(map[string]any)
	return object(c)
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// checkPod asserts what every gatehouse pod must have.
func checkPod(t *testing.T, name string, w object, env, flags map[string]bool) {
	t.Helper()
	c := container(w)
	if c == nil {
		t.Fatalf("%s: no container", name)
	}
	for path, want := range map[string]string{
		"spec.template.spec.securityContext.runAsNonRoot": "true",
		"spec.template.spec.securityContext.runAsUser":    "65532",
	} {
		if got := w.str(path); got != want {
			t.Errorf("%s: %s = %q, want %q", name, path, got, want)
		}
	}
	for path, want := range map[string]string{
		"securityContext.runAsNonRoot":             "true",
		"securityContext.readOnlyRootFilesystem":   "true",
		"securityContext.allowPrivilegeEscalation": "false",
		"securityContext.capabilities.drop[0]":     "ALL",
	} {
		if got := c.str(path); got != want {
			t.Errorf("%s container: %s = %q, want %q", name, path, got, want)
		}
	}
	if c.get("resources.requests.cpu") == nil || c.get("resources.requests.memory") == nil {
		t.Errorf("%s: no CPU and memory requests", name)
	}
	// Writable places on a read-only root: the data directory and /tmp.
	mounts := map[string]string{}
	for _, m := range c.get("volumeMounts").([]any) {
		mo := object(m.(map[string]any))
		mounts[mo.str("mountPath")] = mo.str("name")
	}
	if mounts["/var/lib/gatehouse"] == "" || mounts["/tmp"] == "" {
		t.Errorf("%s: want volumes on /var/lib/gatehouse and /tmp, have %v", name, mounts)
	}
	if tmp := volume(w, mounts["/tmp"]); tmp == nil || tmp.get("emptyDir") == nil {
		t.Errorf("%s: /tmp is not an emptyDir", name)
	}
	for _, e := range c.get("env").([]any) {
		n := object(e.(map[string]any)).str("name")
		if strings.HasPrefix(n, "GATEHOUSE_") && !env[n] {
			t.Errorf("%s: env %s: the code reads no such variable", name, n)
		}
	}
	checkArgs(t, name, strs(c.get("args")), flags)
	// Every file a flag names is on a mounted volume.
	for _, a := range strs(c.get("args")) {
		_, file, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(file, "/etc/gatehouse/secrets/") {
			continue
		}
		covered := false
		for p := range mounts {
			if file == p || strings.HasPrefix(file, p+"/") {
				covered = true
			}
		}
		if !covered {
			t.Errorf("%s: %s names a file on no mounted volume", name, a)
		}
	}
}

func volume(w object, name string) object {
	for _, v := range w.get("spec.template.spec.volumes").([]any) {
		if vo := object(v.(map[string]any)); vo.str("name") == name {
			return vo
		}
	}
	return nil
}

func envValue(c object, name string) string {
	for _, e := range c.get("env").([]any) {
		if eo := object(e.(map[string]any)); eo.str("name") == name {
			return eo.str("value")
		}
	}
	return ""
}

func TestHelmDefault(t *testing.T) {
	objs := render(t)
	env, flags := gatehouseEnv(t), gatehouseFlags(t)
	sts := objs.find("StatefulSet", "gh-gatehouse")
	if sts == nil {
		t.Fatal("default: no gateway StatefulSet")
	}
	checkPod(t, "gateway", sts, env, flags)
	c := container(sts)
	if got := strings.Join(strs(c.get("command")), " "); got != "/usr/bin/gatehouse serve" {
		t.Errorf("command %q", got)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		if got := c.str(probe + ".httpGet.path"); got != path {
			t.Errorf("%s path %q, want %s", probe, got, path)
		}
	}
	if sts.str("spec.replicas") != "1" || sts.str("spec.volumeClaimTemplates[0].metadata.name") != "data" {
		t.Errorf("default: want 1 replica with a data volume claim")
	}
	if got := c.str("image"); got != "gatehouse:"+appVersion(t)+"-full" {
		t.Errorf("default image %q: want the full flavour (embedded audit engine)", got)
	}
	for _, kind := range []string{"PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress", "Deployment"} {
		if objs.count(kind) != 0 {
			t.Errorf("default: unexpected %s", kind)
		}
	}
	cm := objs.find("ConfigMap", "gh-gatehouse")
	data, _ := cm.get("data").(map[string]any)
	file, _ := data["gatehouse.yaml"].(string)
	if _, err := config.Parse([]byte(file)); err != nil || file == "" {
		t.Errorf("ConfigMap gatehouse.yaml does not load: %v\n%s", err, file)
	}
	sec := objs.find("Secret", "gh-gatehouse-admin")
	if sec == nil {
		t.Fatal("default: no admin token Secret")
	}
	if ann, _ := sec.get("metadata.annotations").(map[string]any); ann["helm.sh/resource-policy"] != "keep" {
		t.Errorf("admin token Secret: want helm.sh/resource-policy keep (the store keeps only its hash), got %v", ann)
	}
}

func appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(chart + "/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.AppVersion
}

func TestHelmMultiReplica(t *testing.T) {
	objs := render(t, "-f", chart+"/ci/multi-replica-values.yaml")
	env, flags := gatehouseEnv(t), gatehouseFlags(t)
	gw := objs.find("StatefulSet", "gh-gatehouse")
	if gw == nil {
		t.Fatal("no gateway StatefulSet")
	}
	checkPod(t, "gateway", gw, env, flags)
	c := container(gw)
	for _, k := range []string{"GATEHOUSE_TEMPORAL_ADDRESS", "GATEHOUSE_CLICKHOUSE_ADDR", "GATEHOUSE_VAULT_ADDR"} {
		if envValue(c, k) == "" {
			t.Errorf("gateway: %s not set", k)
		}
	}
	checkDatabaseURL(t, envValue(c, "GATEHOUSE_DATABASE_URL"))
	args := strs(c.get("args"))
	for _, want := range []string{"--audit=clickhouse", "--approval-worker=false", "--vault-auth=kubernetes"} {
		if !slices.Contains(args, want) {
			t.Errorf("gateway args lack %s: %v", want, args)
		}
	}
	if gw.str("spec.template.spec.automountServiceAccountToken") != "true" {
		t.Errorf("vault kubernetes auth needs the service account token mounted")
	}
	if got := c.str("image"); !strings.HasSuffix(got, "-slim") {
		t.Errorf("image %q: want the slim flavour with audit on a ClickHouse server", got)
	}
	if gw.get("spec.replicas") != nil {
		t.Errorf("gateway: replicas set although the HPA owns them")
	}

	hpa := objs.find("HorizontalPodAutoscaler", "gh-gatehouse")
	if hpa == nil || hpa.str("spec.scaleTargetRef.kind") != "StatefulSet" || hpa.str("spec.minReplicas") != "3" || hpa.str("spec.maxReplicas") != "8" {
		t.Errorf("HPA: want StatefulSet gh-gatehouse, 3–8 replicas; got %v", hpa)
	}
	pdb := objs.find("PodDisruptionBudget", "gh-gatehouse")
	if pdb == nil || pdb.str("spec.maxUnavailable") != "1" {
		t.Errorf("PDB: want maxUnavailable 1; got %v", pdb)
	}
	if sel, _ := pdb.get("spec.selector.matchLabels").(map[string]any); sel["app.kubernetes.io/component"] != "gateway" {
		t.Errorf("PDB selector %v: want the gateway pods", sel)
	}

	ing := objs.find("Ingress", "gh-gatehouse")
	if ing == nil {
		t.Fatal("no Ingress")
	}
	ann, _ := ing.get("metadata.annotations").(map[string]any)
	if ann["nginx.ingress.kubernetes.io/upstream-hash-by"] != "$binary_remote_addr" {
		t.Errorf("Ingress: want session affinity by client address, annotations %v", ann)
	}
	for k, v := range ann {
		if s, _ := v.(string); strings.Contains(strings.ToLower(s), "mcp_session_id") {
			t.Errorf("Ingress annotation %s=%s hashes on Mcp-Session-Id, which cannot route a session to the replica that created it", k, s)
		}
	}
	if ann["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
		t.Errorf("Ingress: SSE needs proxy-buffering off")
	}
	for _, r := range ing.get("spec.rules").([]any) {
		for _, p := range object(r.(map[string]any)).get("http.paths").([]any) {
			path := object(p.(map[string]any)).str("path")
			for _, private := range []string{"/metrics", "/readyz", "/healthz"} {
				if path == "/" || strings.HasPrefix(private, path) {
					t.Errorf("Ingress path %q exposes %s outside the cluster", path, private)
				}
			}
		}
	}
	svc := objs.find("Service", "gh-gatehouse")
	if svc.str("spec.sessionAffinity") != "ClientIP" {
		t.Errorf("Service: want sessionAffinity ClientIP with several replicas")
	}

	wk := objs.find("StatefulSet", "gh-gatehouse-worker")
	if wk == nil {
		t.Fatal("no worker")
	}
	checkPod(t, "worker", wk, env, flags)
	wc := container(wk)
	if got := strings.Join(strs(wc.get("command")), " "); got != "/usr/bin/gatehouse worker" {
		t.Errorf("worker command %q", got)
	}
	for _, a := range strs(wc.get("args")) {
		if strings.HasPrefix(a, "--approval") || strings.HasPrefix(a, "--admin-token-file") {
			t.Errorf("worker: %s is a serve flag", a)
		}
	}
	if envValue(wc, "GATEHOUSE_TEMPORAL_ADDRESS") == "" {
		t.Errorf("worker: no GATEHOUSE_TEMPORAL_ADDRESS (worker refuses to start without one)")
	}
	cm := objs.find("ConfigMap", "gh-gatehouse")
	data, _ := cm.get("data").(map[string]any)
	if _, err := config.Parse([]byte(data["gatehouse.yaml"].(string))); err != nil {
		t.Errorf("ConfigMap gatehouse.yaml does not load: %v", err)
	}
}

func TestHelmWithoutPersistence(t *testing.T) {
	objs := render(t, "--set", "persistence.enabled=false", "--set", "database.url=postgres://gatehouse@pg:5432/gatehouse",
		"--set", "temporal.address=temporal:7233")
	d := objs.find("Deployment", "gh-gatehouse")
	if d == nil || objs.count("StatefulSet") != 0 {
		t.Fatal("persistence.enabled=false: want a Deployment and no StatefulSet")
	}
	checkPod(t, "gateway", d, gatehouseEnv(t), gatehouseFlags(t))
	if v := volume(d, "data"); v == nil || v.get("emptyDir") == nil {
		t.Errorf("persistence.enabled=false: data is not an emptyDir")
	}
}

// TestHelmRefuses: configurations that would split state between replicas
// or lose data fail to render, saying what to set.
func TestHelmRefuses(t *testing.T) {
	const pg = "database.url=postgres://gatehouse@pg:5432/gatehouse"
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"replicas on SQLite", []string{"replicaCount=3"}, "needs an external PostgreSQL config store"},
		{"replicas without Temporal", []string{"replicaCount=3", pg}, "must share one external Temporal: set temporal.address"},
		{"autoscaling without Temporal", []string{"autoscaling.enabled=true", pg}, "must share one external Temporal"},
		{"replicas with embedded audit", []string{"replicaCount=2", pg, "temporal.address=t:7233"}, "set clickhouse.addr"},
		{"emptyDir with SQLite", []string{"persistence.enabled=false"}, "would lose the SQLite config store"},
		{"worker without Temporal", []string{"worker.enabled=true", pg}, "worker.enabled needs temporal.address"},
		{"session ID hashing", []string{"ingress.enabled=true", "ingress.sessionAffinity=mcpSessionId"}, "cannot work"},
		{"token auth without token", []string{"vault.addr=https://v:8200", "vault.auth=token"}, "vault.tokenSecret.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, append([]string{"template", "gh", chart}, args...)...)
			if err == nil {
				t.Fatalf("rendered, want a failure containing %q:\n%.400s", tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to say %q", err, tc.want)
			}
		})
	}
	// The same values with the external services render.
	render(t, "--set", "replicaCount=3", "--set", pg, "--set", "temporal.address=t:7233", "--set", "clickhouse.addr=ch:9000")
}
