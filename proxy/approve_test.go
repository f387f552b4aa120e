package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// TestArgsHash: the hash is of json.Marshal's canonical bytes (keys
// sorted, HTML characters escaped), so hashes stored with approvals stay
// valid.
func TestArgsHash(t *testing.T) {
	for _, args := range []map[string]any{
		nil,
		{},
		{"text": "hi"},
		{"b": 1.5, "a": []any{"<x&y>", nil, true}, "c": map[string]any{"z": "\u2028", "y": 2.0}},
	} {
		want := args
		if want == nil {
			want = map[string]any{}
		}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := ArgsHash(args); got != hex.EncodeToString(sum[:]) {
			t.Errorf("ArgsHash(%v) = %s, want the hash of %s", args, got, b)
		}
	}
}
