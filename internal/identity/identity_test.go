package identity

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAPIKeys(t *testing.T) {
	live, old := NewAPIKey(), NewAPIKey()
	keys, err := NewAPIKeys(map[string]KeyEntry{
		HashKey(live): {Principal: &Principal{Agent: "bot", Team: "qa"}},
		HashKey(old):  {Principal: &Principal{Agent: "old"}, Expires: time.Now().Add(-time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header string
		agent        string
		err          error
	}{
		{"valid", "Bearer " + live, "bot", nil},
		{"scheme is case-insensitive", "bearer " + live, "bot", nil},
		{"missing", "", "", ErrNoCredentials},
		{"basic auth", "Basic Zm9vOmJhcg==", "", ErrNoCredentials},
		{"unknown", "Bearer " + NewAPIKey(), "", ErrInvalidCredentials},
		{"expired", "Bearer " + old, "", ErrInvalidCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/mcp/x", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			p, err := keys.Authenticate(context.Background(), r)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (p.Agent != tc.agent || p.Method != "api_key" || p.KeyPrefix != live[:KeyPrefixLen]) {
				t.Errorf("principal = %+v", p)
			}
		})
	}
}

func TestResolveKeyHash(t *testing.T) {
	key := NewAPIKey()
	t.Setenv("GH_TEST_KEY", key+"\n")
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range [][3]string{{HashKey(key), "", ""}, {"", "GH_TEST_KEY", ""}, {"", "", file}} {
		h, err := ResolveKeyHash(src[0], src[1], src[2])
		if err != nil || h != HashKey(key) {
			t.Errorf("ResolveKeyHash(%q) = %q, %v", src, h, err)
		}
	}
	if _, err := ResolveKeyHash("", "GH_TEST_UNSET_VAR", ""); err == nil {
		t.Error("unset env var: want error")
	}
}
