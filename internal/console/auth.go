package console

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

type signinView struct {
	Next    string
	Error   string
	Expired bool
	// Token is the sign-in form's CSRF token (double-submitted: also in
	// the sign-in cookie).
	Token string
}

// safeNext returns next when it is a console path (no open redirect),
// else the overview.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/console/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/console/"
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	tok := randomToken()
	setCookie(w, r, signinCookie, tok, 600)
	c.render(w, r, "signin", "Sign in", "", signinView{
		Next: safeNext(r.URL.Query().Get("next")), Expired: r.URL.Query().Get("expired") != "", Token: tok,
	})
}

// signin checks the token with the API's me query and starts a session
// holding it. The sign-in form is protected against login CSRF by a
// double-submitted token and the origin check.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	ck, err := r.Cookie(signinCookie)
	if !sameOrigin(r) || err != nil || !tokensEqual(r.PostFormValue(csrfField), ck.Value) {
		c.log.Warn("console sign-in refused", "remote", r.RemoteAddr, "reason", "csrf token or origin")
		c.renderError(w, r, nil, http.StatusForbidden, "Request refused", "The sign-in form was stale or did not come from the console. Reload the page and try again.")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	token := strings.TrimSpace(r.PostFormValue("token"))
	again := func(status int, msg string) {
		tok := randomToken()
		setCookie(w, r, signinCookie, tok, 600)
		c.renderStatus(w, r, status, "signin", "Sign in", "", signinView{Next: next, Error: msg, Token: tok})
	}
	if token == "" {
		again(http.StatusBadRequest, "Paste an admin token.")
		return
	}
	var me struct {
		Me struct {
			Name  string   `json:"name"`
			Roles []string `json:"roles"`
		} `json:"me"`
	}
	if err := c.api.do(withRequest(r.Context(), r), token, `query { me { name roles } }`, nil, &me); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == "UNAUTHENTICATED" {
			c.log.Warn("console sign-in refused", "remote", r.RemoteAddr, "reason", "token not accepted")
			again(http.StatusUnauthorized, "The admin API did not accept this token (unknown, revoked or expired).")
			return
		}
		c.fail(w, r, err)
		return
	}
	id, _ := c.sessions.create(token, me.Me.Name, me.Me.Roles)
	setCookie(w, r, signinCookie, "", -1)
	setCookie(w, r, sessionCookie, id, 0)
	c.log.Info("console sign-in", "remote", r.RemoteAddr, "admin", me.Me.Name, "roles", me.Me.Roles)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	c.endSession(w, r)
	c.log.Info("console sign-out", "remote", r.RemoteAddr, "admin", s.name)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// endSession forgets the request's session and deletes its cookie.
func (c *Console) endSession(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.remove(ck.Value)
	}
	setCookie(w, r, sessionCookie, "", -1)
}

func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// gql runs query as the request's signed-in admin.
func (c *Console) gql(r *http.Request, query string, vars map[string]any, out any) error {
	s := sessionFrom(r.Context())
	return c.api.do(withRequest(r.Context(), r), s.token, query, vars, out)
}
