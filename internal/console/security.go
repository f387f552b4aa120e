package console

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// contentSecurityPolicy lets pages load scripts, styles and images from
// this origin only (and data: images), run no inline code, post forms to
// this origin only, and be framed by nobody.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Cookie names. The session cookie carries a random ID (never the token);
// the sign-in cookie carries the double-submit CSRF token of the sign-in
// form, before there is a session to hold one.
const (
	sessionCookie = "gatehouse_console"
	signinCookie  = "gatehouse_console_signin"
	cookiePath    = "/console/"
)

// csrfField is the form field carrying the CSRF token.
const csrfField = "csrf"

// maxFormBytes bounds a form post's body.
const maxFormBytes = 64 << 10

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with form posts, which the origin check must refuse.
	// Console addresses (filters, approval IDs) still never leave the origin.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// setCookie sets an HttpOnly, SameSite=Strict cookie for the console's
// path, Secure when the browser came over HTTPS; maxAge < 0 deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     cookiePath,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   isHTTPS(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// sameOrigin reports whether a state-changing request comes from a page
// of this origin: its Origin header (which browsers send with every POST)
// or, lacking one, its Referer must name this scheme and host, and Fetch
// Metadata must not say cross-site. A request carrying none of them (not
// a browser) passes here and still needs the CSRF token.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true
	}
	if src == "null" {
		return false
	}
	u, err := url.Parse(src)
	if err != nil {
		return false
	}
	scheme := "http"
	if isHTTPS(r) {
		scheme = "https"
	}
	return u.Scheme == scheme && u.Host == r.Host
}

// isHTTPS reports whether the browser reached the console over HTTPS:
// the gateway's own TLS listener, or a TLS-terminating proxy that says so
// with X-Forwarded-Proto (and keeps the Host header). Trusting the header
// cannot weaken the origin check: a cross-site form post cannot set it,
// and it only ever makes the session cookie Secure.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// tokensEqual compares CSRF tokens in constant time; an empty token never
// matches.
func tokensEqual(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// authed runs h for requests of a live session: others are sent to the
// sign-in page (GET) or refused with 401. For methods other than GET and
// HEAD it first checks the origin and the session's CSRF token, refusing
// with 403.
func (c *Console) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if ck, err := r.Cookie(sessionCookie); err == nil {
			s = c.sessions.get(ck.Value)
		}
		if s == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				next := r.URL.Path
				if r.URL.RawQuery != "" {
					next += "?" + r.URL.RawQuery
				}
				http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
				return
			}
			c.renderError(w, r, nil, http.StatusUnauthorized, "Your session has ended", "Sign in again to continue.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !sameOrigin(r) {
				c.log.Warn("console request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "admin", s.name, "reason", "cross-origin")
				c.renderError(w, r, s, http.StatusForbidden, "Request refused", "The request did not come from a console page.")
				return
			}
			if !tokensEqual(r.PostFormValue(csrfField), s.csrf) {
				c.log.Warn("console request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "admin", s.name, "reason", "csrf token")
				c.renderError(w, r, s, http.StatusForbidden, "Request refused", "The form was stale or did not come from the console. Reload the page and try again.")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}
