package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.Write([]byte("ok\n"))
		case r.URL.Path == "/readyz" && ready:
			w.Write([]byte("ready\n"))
		case r.URL.Path == "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("starting"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	run := func(args ...string) (string, int) {
		var out, errw bytes.Buffer
		code := Main(context.Background(), append([]string{"health"}, args...), &out, &errw)
		return out.String() + errw.String(), code
	}
	if out, code := run("--url", srv.URL); code != 0 || out != "ready\n" {
		t.Errorf("ready gateway: exit %d, %q", code, out)
	}
	ready = false
	if out, code := run("--url", srv.URL); code != 1 || !strings.Contains(out, "starting") || !strings.Contains(out, "503") {
		t.Errorf("unready gateway: exit %d, %q; want 1 with its answer and status", code, out)
	}
	if out, code := run("--url", srv.URL, "--live"); code != 0 || out != "ok\n" {
		t.Errorf("--live on an unready gateway: exit %d, %q; want alive", code, out)
	}
	t.Setenv(EnvServer, "")
	t.Setenv(EnvListen, "0.0.0.0:"+srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	if out, code := run("--live"); code != 0 {
		t.Errorf("$%s with a wildcard host: exit %d, %q; want the gateway found on loopback", EnvListen, code, out)
	}
	// $GATEHOUSE_SERVER, which the admin commands use, comes first.
	t.Setenv(EnvListen, "127.0.0.1:1")
	t.Setenv(EnvServer, srv.URL)
	if out, code := run("--live"); code != 0 {
		t.Errorf("$%s: exit %d, %q; want the gateway found there", EnvServer, code, out)
	}
	srv.Close()
	if out, code := run("--url", srv.URL); code != 1 || !strings.Contains(out, "connection refused") {
		t.Errorf("no gateway: exit %d, %q; want 1, connection refused", code, out)
	}
}

func TestLoopbackFor(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8080":      "127.0.0.1:8080",
		":9000":          "127.0.0.1:9000",
		"10.0.0.5:8080":  "10.0.0.5:8080",
		"localhost:8080": "localhost:8080",
	} {
		if got := loopbackFor(in); got != want {
			t.Errorf("loopbackFor(%q) = %q, want %q", in, got, want)
		}
	}
}
