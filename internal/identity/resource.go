package identity

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// ResourceMetadataPath is where OAuth 2.0 protected resource metadata
// (RFC 9728) is served. MCP clients (authorization spec 2025-06-18 and
// later) find it through the resource_metadata parameter of a 401's
// WWW-Authenticate header, or by inserting it before the path of the MCP
// endpoint: /.well-known/oauth-protected-resource/mcp/{vs}.
const ResourceMetadataPath = "/.well-known/oauth-protected-resource"

// resourceMetadata is the RFC 9728 §2 document.
type resourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

// ResourceMetadataHandler serves GET [ResourceMetadataPath] and every
// path-suffixed form of it (mount it on both "GET /.well-known/oauth-protected-resource"
// and "GET /.well-known/oauth-protected-resource/"). resource is the
// gateway's public base URL; issuers are the OIDC issuers agents may get
// tokens from.
//
// The document's resource is the identifier the request names (RFC 9728
// §3.3 requires it to match the URL the suffix was taken from): resource
// itself at the root, resource + "/mcp/ops" for
// /.well-known/oauth-protected-resource/mcp/ops. The document is public
// and may be read cross-origin by browser-based clients.
func ResourceMetadataHandler(resource string, issuers []string) http.Handler {
	base := strings.TrimSuffix(resource, "/")
	basePath := ""
	if u, err := url.Parse(base); err == nil {
		basePath = u.Path
	}
	issuers = slices.Clone(issuers)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		suffix, ok := strings.CutPrefix(r.URL.Path, ResourceMetadataPath)
		if !ok || (suffix != "" && !strings.HasPrefix(suffix, "/")) {
			http.NotFound(w, r)
			return
		}
		suffix = strings.TrimSuffix(suffix, "/")
		res := base + suffix
		if basePath != "" && strings.HasPrefix(suffix, basePath+"/") {
			// The client inserted the well-known segment before the base
			// path, as RFC 9728 says, and a proxy passed it on unchanged.
			res = strings.TrimSuffix(base, basePath) + suffix
		}
		md := resourceMetadata{
			Resource:               res,
			AuthorizationServers:   issuers,
			BearerMethodsSupported: []string{"header"},
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_ = json.NewEncoder(w).Encode(md)
	})
}

// ResourceMetadataURL returns where the metadata of the resource at path
// (e.g. "/mcp/ops") is served: RFC 9728 §3.1 inserts the well-known
// segment between the host and the path of the resource identifier.
func ResourceMetadataURL(resource, path string) string {
	base := strings.TrimSuffix(resource, "/")
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return base + ResourceMetadataPath + path
	}
	return u.Scheme + "://" + u.Host + ResourceMetadataPath + u.Path + path
}

// WWWAuthenticate returns the WWW-Authenticate value of a 401 for a
// request to path (e.g. "/mcp/ops"): a Bearer challenge naming the
// resource metadata, plus error="invalid_token" and a description when
// credentials were presented and refused (err not [ErrNoCredentials]).
// RFC 6750 §3.1: a request without credentials gets no error code.
func WWWAuthenticate(resource, path string, err error) string {
	var b strings.Builder
	b.WriteString(`Bearer resource_metadata="`)
	b.WriteString(quotable(ResourceMetadataURL(resource, path), 0))
	b.WriteByte('"')
	if err != nil && !errors.Is(err, ErrNoCredentials) {
		b.WriteString(`, error="invalid_token", error_description="`)
		b.WriteString(quotable(Public(err), 300))
		b.WriteByte('"')
	}
	return b.String()
}

// quotable keeps what RFC 6750 §3 allows in error_description
// (%x20-21 / %x23-5B / %x5D-7E), replacing the rest, and caps the length
// at max bytes (0: no cap).
func quotable(s string, max int) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if max > 0 && b.Len() >= max {
			b.WriteString("...")
			break
		}
		switch {
		case c == '"':
			b.WriteByte('\'')
		case c == '\\' || c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
