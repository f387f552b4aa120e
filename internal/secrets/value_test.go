package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

const canary = "s3cr3t-CANARY-value"

func TestValueNeverPrints(t *testing.T) {
	v := NewValue(canary)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "v", v, "group", slog.GroupValue(slog.Any("inner", v)))
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "v", v)
	js, _ := json.Marshal(map[string]any{"v": v, "ptr": &v, "list": []Value{v}, "fields": Fields{"k": v}})
	type wrapper struct {
		Secret Value
	}
	outs := []string{
		fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q %x %X %d", v, v, v, v, v, v, v, v),
		fmt.Sprintf("%v %+v %#v", wrapper{v}, &wrapper{v}, wrapper{v}), fmt.Sprint(Fields{"k": v}),
		fmt.Errorf("wrapped: %v", v).Error(), logged.String(), string(js), v.String(),
	}
	for _, o := range outs {
		if strings.Contains(o, canary) {
			t.Errorf("secret leaked: %s", o)
		}
		if !strings.Contains(o, Redacted) {
			t.Errorf("no redaction marker in %q", o)
		}
	}
	if v.Reveal() != canary {
		t.Fatal("Reveal lost the value")
	}
}

func compileOne(t *testing.T, b config.SecretBinding) *Binding {
	t.Helper()
	bs, err := Compile([]config.SecretBinding{b})
	if err != nil {
		t.Fatal(err)
	}
	return bs[b.Upstream][0]
}

func TestBindingTemplates(t *testing.T) {
	b := compileOne(t, config.SecretBinding{Name: "db", Upstream: "u", Source: "dynamic", Path: "database", Role: "ro",
		Injection: "env", Target: "DATABASE_URL", Template: "postgresql://{{.username}}:{{.password}}@127.0.0.1/app"})
	v, err := b.render(Fields{"username": NewValue("v-user"), "password": NewValue("pw-123456")})
	if err != nil || v.Reveal() != "postgresql://v-user:pw-123456@127.0.0.1/app" {
		t.Fatalf("render = %v, %v", v.Reveal(), err)
	}
	if got := strings.Join(b.injected, ","); got != "username,password" {
		t.Errorf("injected fields = %s", got)
	}
	_, err = b.render(Fields{"username": NewValue("v-user")})
	if err == nil || strings.Contains(err.Error(), "v-user") {
		t.Errorf("missing field: err = %v (must fail without values)", err)
	}

	kv := compileOne(t, config.SecretBinding{Name: "gh", Upstream: "u", Source: "kv", Path: "secret/agents/{{.agent}}/github", Key: "token",
		Injection: "header", Target: "authorization", Template: "Bearer {{.Value}}", PerPrincipal: true})
	p, err := kv.vaultPath(Principal{Agent: "a1"})
	if err != nil || p != "secret/agents/a1/github" {
		t.Fatalf("path = %q, %v", p, err)
	}
	if _, err := kv.vaultPath(Principal{Agent: "../x"}); err == nil {
		t.Error("a path escaping its prefix was accepted")
	}
	v, err = kv.render(Fields{"token": NewValue(canary)})
	if err != nil || v.Reveal() != "Bearer "+canary {
		t.Fatalf("render = %v", err)
	}
	if _, err := Compile([]config.SecretBinding{{Name: "bad", Upstream: "u", Template: "{{.x"}}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("bad template: %v", err)
	}
}

func TestAppliesTo(t *testing.T) {
	all := &Binding{}
	some := &Binding{SecretBinding: config.SecretBinding{Tools: []string{"read_*"}}}
	none := &Binding{SecretBinding: config.SecretBinding{Tools: []string{}}}
	for _, c := range []struct {
		b    *Binding
		tool string
		want bool
	}{{all, "", true}, {all, "x", true}, {some, "read_file", true}, {some, "write", false}, {some, "", false}, {none, "x", false}} {
		if got := c.b.AppliesTo(c.tool); got != c.want {
			t.Errorf("%v.AppliesTo(%q) = %v", c.b.Tools, c.tool, got)
		}
	}
}

func TestInjection(t *testing.T) {
	hdr := compileOne(t, config.SecretBinding{Name: "gh", Upstream: "u", Source: "kv", Path: "secret/gh", Key: "token",
		Injection: "header", Target: "authorization", Template: "Bearer {{.Value}}"})
	q := compileOne(t, config.SecretBinding{Name: "q", Upstream: "u", Source: "kv", Path: "secret/q", Key: "k", Injection: "query", Target: "api_key"})
	arg := compileOne(t, config.SecretBinding{Name: "arg", Upstream: "u", Source: "kv", Path: "secret/a", Key: "k", Injection: "argument", Target: "api_key"})
	env := compileOne(t, config.SecretBinding{Name: "env", Upstream: "u", Source: "kv", Path: "secret/e", Key: "k", Injection: "env", Target: "TOKEN"})
	in := &Injection{}
	in.add(hdr, NewValue("Bearer "+canary), Fields{"token": NewValue(canary)})
	in.add(q, NewValue("q-value-1"), Fields{"k": NewValue("q-value-1")})
	in.add(arg, NewValue("arg<&>value"), Fields{"k": NewValue("arg<&>value")})
	in.add(env, NewValue("env-value-1"), Fields{"k": NewValue("env-value-1")})

	r, _ := http.NewRequest("POST", "http://up/mcp?x=1", nil)
	in.SetHTTP(r)
	if r.Header.Get("Authorization") != "Bearer "+canary || r.URL.Query().Get("api_key") != "q-value-1" || r.URL.Query().Get("x") != "1" {
		t.Errorf("http injection: %v %v", r.Header, r.URL)
	}
	args, err := in.InjectArgs(json.RawMessage(`{"a":1,"api_key":"agent-tried"}`))
	if err != nil || string(args) != `{"a":1,"api_key":"arg\u003c\u0026\u003evalue"}` {
		t.Errorf("args = %s, %v", args, err)
	}
	if _, err := in.InjectArgs(json.RawMessage(`[1]`)); err == nil {
		t.Error("non-object arguments accepted")
	}
	if got := in.EnvList(); len(got) != 1 || got[0] != "TOKEN=env-value-1" {
		t.Errorf("env = %v", got)
	}
	other := &Injection{}
	other.add(env, NewValue("env-value-2"), Fields{"k": NewValue("env-value-2")})
	if in.EnvKey() == other.EnvKey() || in.EnvKey() == "" {
		t.Error("different credentials share a process key")
	}

	// Echoes are scrubbed, longest form first, in plain and HTML-escaped JSON.
	echo, _ := json.Marshal(map[string]string{"a": "got Bearer " + canary, "b": "token " + canary, "c": "arg<&>value"})
	out, hit := in.Scrub(echo)
	if !hit || bytes.Contains(out, []byte(canary)) || bytes.Contains(out, []byte(`arg\u003c`)) {
		t.Errorf("scrub left a secret: %s", out)
	}
	if !bytes.Contains(out, []byte("[REDACTED:secret gh]")) {
		t.Errorf("scrub marker missing: %s", out)
	}
	if s, hit := in.ScrubString("error: bad token " + canary); !hit || strings.Contains(s, canary) {
		t.Errorf("ScrubString = %q", s)
	}
	if _, hit := in.Scrub([]byte(`{"clean":true}`)); hit {
		t.Error("clean text reported as a hit")
	}
}

func TestResolveWithoutVault(t *testing.T) {
	b := compileOne(t, config.SecretBinding{Name: "gh", Upstream: "u", Source: "kv", Path: "secret/gh", Key: "token", Injection: "header", Target: "Authorization"})
	var c *Client
	_, err := c.Resolve(t.Context(), []*Binding{b}, Request{Who: Principal{Agent: "a"}})
	var se *Error
	if !errors.As(err, &se) || se.Binding != "gh" || !errors.Is(err, ErrNoVault) {
		t.Fatalf("err = %v", err)
	}
	// A request the binding does not cover needs no Vault.
	narrowed := compileOne(t, config.SecretBinding{Name: "n", Upstream: "u", Source: "kv", Path: "secret/n", Key: "k", Injection: "header", Target: "X", Tools: []string{"deploy"}})
	in, err := c.Resolve(t.Context(), []*Binding{narrowed}, Request{Tool: "echo"})
	if err != nil || !in.Empty() {
		t.Fatalf("uncovered request: %v, %v", in, err)
	}
}
