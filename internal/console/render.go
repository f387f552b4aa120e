package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds each page's template set: the layout plus the page.
var pages = parsePages()

func parsePages() map[string]*template.Template {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	// layout.html and the partials (_*.html) go into every page's set.
	shared, err := fs.Glob(templateFS, "templates/_*.html")
	if err != nil {
		panic(err)
	}
	shared = append(shared, "templates/layout.html")
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		out[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(templateFS, append([]string{n}, shared...)...))
	}
	return out
}

var funcs = template.FuncMap{
	"time": func(t any) string {
		tt, ok := asTime(t)
		if !ok {
			return "—"
		}
		return tt.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"shorttime": func(t any) string {
		tt, ok := asTime(t)
		if !ok {
			return "—"
		}
		return tt.UTC().Format("01-02 15:04:05.000")
	},
	"isotime": func(t any) string {
		tt, ok := asTime(t)
		if !ok {
			return ""
		}
		return tt.UTC().Format(time.RFC3339)
	},
	"ago": func(t any) string {
		tt, ok := asTime(t)
		if !ok {
			return "—"
		}
		return ago(time.Since(tt))
	},
	"pretty": func(v any) string {
		if raw, ok := v.(json.RawMessage); ok {
			v = nil
			if len(raw) > 0 && json.Unmarshal(raw, &v) != nil {
				return string(raw)
			}
		}
		if v == nil {
			return "(none)"
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	},
	"join": func(s []string) string { return strings.Join(s, ", ") },
	"ms":   func(us int) string { return fmt.Sprintf("%.1f ms", float64(us)/1000) },
	"list": func(s ...string) []string { return s },
}

func asTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t == nil {
			return time.Time{}, false
		}
		return *t, !t.IsZero()
	}
	return time.Time{}, false
}

// ago says how long d is, coarsely: "42s", "5m", "3h", "2d".
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// view is what every template receives.
type view struct {
	Title string
	// Nav is the navigation item to mark current.
	Nav string
	// Admin is the signed-in admin's name and roles; empty before sign-in.
	Admin string
	Roles []string
	CSRF  string
	// May says what the roles let the admin see and do, for navigation
	// and buttons (the API checks again).
	May  may
	Data any
}

// may lists what the signed-in roles allow, mirroring graph/roles.go.
type may struct {
	ReadConfig bool // admin, viewer, auditor
	Approvals  bool // admin, approver, auditor
	Decide     bool // admin, approver
	Audit      bool // admin, auditor
	Admin      bool // admin
}

func mayFor(s *session) may {
	if s == nil {
		return may{}
	}
	return may{
		ReadConfig: s.hasRole("admin", "viewer", "auditor"),
		Approvals:  s.hasRole("admin", "approver", "auditor"),
		Decide:     s.hasRole("admin", "approver"),
		Audit:      s.hasRole("admin", "auditor"),
		Admin:      s.hasRole("admin"),
	}
}

// render writes page with data, status 200.
func (c *Console) render(w http.ResponseWriter, r *http.Request, page, title, nav string, data any) {
	c.renderStatus(w, r, http.StatusOK, page, title, nav, data)
}

func (c *Console) renderStatus(w http.ResponseWriter, r *http.Request, status int, page, title, nav string, data any) {
	s := sessionFrom(r.Context())
	v := view{Title: title, Nav: nav, May: mayFor(s), Data: data}
	if s != nil {
		v.Admin, v.Roles, v.CSRF = s.name, s.roles, s.csrf
	}
	var buf bytes.Buffer
	if err := pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("console page failed to render", "page", page, "error", err)
		http.Error(w, "the page failed to render; see the gateway log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorPage struct {
	Heading, Detail string
	Status          int
}

// renderError writes the error page; s may be nil (no session).
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, heading, detail string) {
	if s != nil && sessionFrom(r.Context()) == nil {
		r = r.WithContext(withSession(r.Context(), s))
	}
	c.renderStatus(w, r, status, "error", heading, "", errorPage{Heading: heading, Detail: detail, Status: status})
}

// fail answers for an operation that failed: a token the API no longer
// accepts ends the session; API errors show their message (safe: the API
// never puts a secret in one); anything else is logged and shown as an
// internal error.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	s := sessionFrom(r.Context())
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.Code == "UNAUTHENTICATED" && s != nil {
			c.endSession(w, r)
			http.Redirect(w, r, "/console/signin?expired=1", http.StatusSeeOther)
			return
		}
		heading := http.StatusText(ae.Status)
		if ae.Status == http.StatusForbidden {
			heading = "Not allowed for your role"
		}
		c.renderError(w, r, s, ae.Status, heading, ae.Message)
		return
	}
	c.log.Error("console request failed", "path", r.URL.Path, "error", err)
	c.renderError(w, r, s, http.StatusInternalServerError, "Something went wrong", "The request failed; the gateway log has the details.")
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.renderError(w, r, nil, http.StatusNotFound, "Not found", "There is no console page at "+r.URL.Path+".")
}

// staticHandler serves the embedded stylesheet and script.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	fsrv := http.StripPrefix("/console/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}
