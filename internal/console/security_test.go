package console

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		headers map[string]string
		tls     bool
		want    bool
	}{
		{"no browser headers", nil, false, true},
		{"same origin", map[string]string{"Origin": "http://gw.example:8080"}, false, true},
		{"same origin over TLS", map[string]string{"Origin": "https://gw.example:8080"}, true, true},
		{"scheme differs", map[string]string{"Origin": "http://gw.example:8080"}, true, false},
		{"behind a TLS proxy", map[string]string{"Origin": "https://gw.example:8080", "X-Forwarded-Proto": "https"}, false, true},
		{"http origin behind a TLS proxy", map[string]string{"Origin": "http://gw.example:8080", "X-Forwarded-Proto": "https"}, false, false},
		{"other host", map[string]string{"Origin": "http://evil.example"}, false, false},
		{"other port", map[string]string{"Origin": "http://gw.example:9090"}, false, false},
		{"null origin", map[string]string{"Origin": "null"}, false, false},
		{"referer of this origin", map[string]string{"Referer": "http://gw.example:8080/console/approvals"}, false, true},
		{"referer elsewhere", map[string]string{"Referer": "http://evil.example/x"}, false, false},
		{"fetch metadata cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, false},
		{"fetch metadata same-site", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://gw.example:8080"}, false, false},
		{"fetch metadata same-origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://gw.example:8080"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "http://gw.example:8080/console/signout", nil)
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := sameOrigin(r); got != tc.want {
				t.Errorf("sameOrigin = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTokensEqual(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"abc", "abc", true}, {"abc", "abd", false}, {"", "", false}, {"abc", "", false}, {"abc", "abcd", false}} {
		if got := tokensEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("tokensEqual(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

// TestMiddleware drives authed and the headers with httptest: every
// response carries the strict CSP; pages need a session; posts need the
// session's CSRF token and this origin.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	c := New(http.NotFoundHandler(), nil)
	id, s := c.sessions.create("gha_token", "alice", []string{"approver"})
	var reached bool
	c.mux.Handle("/console/test", c.authed(func(w http.ResponseWriter, r *http.Request) {
		reached = sessionFrom(r.Context()) == s
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, tc := range []struct {
		name     string
		method   string
		session  string
		form     url.Values
		origin   string
		want     int
		location string
	}{
		{"page without a session", http.MethodGet, "", nil, "", http.StatusSeeOther, "/console/signin?next=%2Fconsole%2Ftest"},
		{"page with an unknown session", http.MethodGet, "forged", nil, "", http.StatusSeeOther, "/console/signin?next=%2Fconsole%2Ftest"},
		{"page with a session", http.MethodGet, id, nil, "", http.StatusNoContent, ""},
		{"post without a session", http.MethodPost, "", url.Values{"csrf": {s.csrf}}, "", http.StatusUnauthorized, ""},
		{"post without a CSRF token", http.MethodPost, id, url.Values{}, "", http.StatusForbidden, ""},
		{"post with a wrong CSRF token", http.MethodPost, id, url.Values{"csrf": {s.csrf + "x"}}, "", http.StatusForbidden, ""},
		{"post from another origin", http.MethodPost, id, url.Values{"csrf": {s.csrf}}, "http://evil.example", http.StatusForbidden, ""},
		{"post with the token from this origin", http.MethodPost, id, url.Values{"csrf": {s.csrf}}, "http://gw.example", http.StatusNoContent, ""},
		{"post with the token, no origin (not a browser)", http.MethodPost, id, url.Values{"csrf": {s.csrf}}, "", http.StatusNoContent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reached = false
			r := httptest.NewRequest(tc.method, "http://gw.example/console/test", strings.NewReader(tc.form.Encode()))
			if tc.form != nil {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tc.session != "" {
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: tc.session})
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			w := httptest.NewRecorder()
			c.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("HTTP %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.location != "" && w.Header().Get("Location") != tc.location {
				t.Errorf("Location = %q, want %q", w.Header().Get("Location"), tc.location)
			}
			if reached != (tc.want == http.StatusNoContent) {
				t.Errorf("handler reached = %v", reached)
			}
			h := w.Header()
			if h.Get("Content-Security-Policy") != "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" {
				t.Errorf("CSP = %q", h.Get("Content-Security-Policy"))
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers: %v", h)
			}
		})
	}
}

func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	for _, overTLS := range []bool{false, true} {
		r := httptest.NewRequest(http.MethodGet, "/console/", nil)
		if overTLS {
			r.TLS = &tls.ConnectionState{}
		}
		w := httptest.NewRecorder()
		setCookie(w, r, sessionCookie, "id", 0)
		cks := w.Result().Cookies()
		if len(cks) != 1 {
			t.Fatalf("cookies: %v", cks)
		}
		ck := cks[0]
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != overTLS || ck.Path != "/console/" {
			t.Errorf("TLS %v: cookie %+v", overTLS, ck)
		}
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/console/audit?x=1":      "/console/audit?x=1",
		"":                        "/console/",
		"https://evil.example/":   "/console/",
		"//evil.example/console/": "/console/",
		"/graphql":                "/console/",
		"/console/\r\nSet-Cookie": "/console/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	t.Parallel()
	c := New(http.NotFoundHandler(), nil)
	for path, ctype := range map[string]string{"/console/static/console.css": "text/css", "/console/static/console.js": "text/javascript"} {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Body.Len() == 0 {
			t.Errorf("%s: HTTP %d %q", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
}
