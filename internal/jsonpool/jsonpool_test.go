package jsonpool

import (
	"encoding/json"
	"math"
	"testing"
)

// TestUseIsMarshal: the bytes are json.Marshal's, and its errors are
// returned without calling f.
func TestUseIsMarshal(t *testing.T) {
	for _, v := range []any{
		nil,
		map[string]any{},
		map[string]any{"b": 1.5, "a": []any{"<x&y>", nil, true}, "c": map[string]any{"z": "\u2028"}},
		struct {
			N int    `json:"n"`
			S string `json:"s,omitempty"`
		}{N: 2},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := Use(v, func(b []byte) { got = string(b) }); err != nil || got != string(want) {
			t.Errorf("Use(%v) = %s, %v; want %s", v, got, err, want)
		}
	}
	called := false
	if err := Use(math.Inf(1), func([]byte) { called = true }); err == nil || called {
		t.Errorf("Use(+Inf): err %v, f called %v; want an error and no call", err, called)
	}
}
