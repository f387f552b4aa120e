package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

func TestResourceMetadataHandler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, resource, method, path string
		status                       int
		want                         map[string]any
	}{
		{"root", "https://gw.corp.example", "GET", "/.well-known/oauth-protected-resource", 200, map[string]any{
			"resource": "https://gw.corp.example", "authorization_servers": []any{"https://idp.corp.example/realms/agents"}, "bearer_methods_supported": []any{"header"},
		}},
		{"virtual server", "https://gw.corp.example/", "GET", "/.well-known/oauth-protected-resource/mcp/ops", 200, map[string]any{
			"resource": "https://gw.corp.example/mcp/ops", "authorization_servers": []any{"https://idp.corp.example/realms/agents"}, "bearer_methods_supported": []any{"header"},
		}},
		{"base path, suffix inserted before it", "https://corp.example/gw", "GET", "/.well-known/oauth-protected-resource/gw/mcp/ops", 200, map[string]any{
			"resource": "https://corp.example/gw/mcp/ops", "authorization_servers": []any{"https://idp.corp.example/realms/agents"}, "bearer_methods_supported": []any{"header"},
		}},
		{"base path stripped by a proxy", "https://corp.example/gw", "GET", "/.well-known/oauth-protected-resource/mcp/ops", 200, map[string]any{
			"resource": "https://corp.example/gw/mcp/ops", "authorization_servers": []any{"https://idp.corp.example/realms/agents"}, "bearer_methods_supported": []any{"header"},
		}},
		{"not the prefix", "https://gw.corp.example", "GET", "/.well-known/oauth-protected-resourcex", 404, nil},
		{"post", "https://gw.corp.example", "POST", "/.well-known/oauth-protected-resource", 405, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := ResourceMetadataHandler(tc.resource, []string{"https://idp.corp.example/realms/agents"})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.want == nil {
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	// Mounted on a ServeMux the way the gateway does.
	mux := http.NewServeMux()
	h := ResourceMetadataHandler("http://127.0.0.1:8080", nil)
	mux.Handle("GET "+ResourceMetadataPath, h)
	mux.Handle("GET "+ResourceMetadataPath+"/", h)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/mcp/demo", nil))
	if w.Code != 200 || w.Body.String() != `{"resource":"http://127.0.0.1:8080/mcp/demo","bearer_methods_supported":["header"]}`+"\n" {
		t.Errorf("mux: %d %s", w.Code, w.Body)
	}
}

func TestWWWAuthenticate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		resource, path string
		err            error
		want           string
	}{
		{"https://gw.corp.example", "/mcp/ops", ErrNoCredentials,
			`Bearer resource_metadata="https://gw.corp.example/.well-known/oauth-protected-resource/mcp/ops"`},
		{"https://gw.corp.example/", "/mcp/ops", nil,
			`Bearer resource_metadata="https://gw.corp.example/.well-known/oauth-protected-resource/mcp/ops"`},
		{"https://corp.example/gw", "/mcp/ops", ErrNoCredentials,
			`Bearer resource_metadata="https://corp.example/.well-known/oauth-protected-resource/gw/mcp/ops"`},
		{"http://127.0.0.1:8080", "/sse/ops", fmt.Errorf("%w: oidc corp: token expired", ErrInvalidCredentials),
			`Bearer resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/sse/ops", error="invalid_token", error_description="invalid credentials: oidc corp: token expired"`},
		{"http://gw", "/mcp/ops", fmt.Errorf("%w: no key with kid \"a\\b\"\n\u00e9", ErrInvalidCredentials),
			`Bearer resource_metadata="http://gw/.well-known/oauth-protected-resource/mcp/ops", error="invalid_token", error_description="invalid credentials: no key with kid 'a?b'???"`},
		{"http://gw", "/mcp/ops", errors.New("other failure"),
			`Bearer resource_metadata="http://gw/.well-known/oauth-protected-resource/mcp/ops", error="invalid_token", error_description="other failure"`},
	} {
		if got := WWWAuthenticate(tc.resource, tc.path, tc.err); got != tc.want {
			t.Errorf("WWWAuthenticate(%q, %q, %v)\n got %s\nwant %s", tc.resource, tc.path, tc.err, got, tc.want)
		}
	}
}
