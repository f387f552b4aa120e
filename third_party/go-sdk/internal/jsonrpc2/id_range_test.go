// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package jsonrpc2

import (
	"errors"
	"testing"
)

// TestMakeIDNumbers: a number ID is kept exactly or refused, never
// answered under another ID.
func TestMakeIDNumbers(t *testing.T) {
	for _, v := range []float64{0, 7, -7, 1<<53 - 1, -(1<<53 - 1)} {
		id, err := MakeID(v)
		if err != nil || id.Raw() != int64(v) {
			t.Errorf("MakeID(%v) = %v, %v; want it kept", v, id.Raw(), err)
		}
	}
	for _, v := range []float64{1.5, -0.25, 1 << 53, -(1 << 53), 1<<53 + 2, 1 << 63, 1e30, -1e30} {
		if id, err := MakeID(v); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("MakeID(%v) = %v, %v; want ErrInvalidRequest", v, id.Raw(), err)
		}
	}
	// 2^53+1 arrives as 2^53: refused too, not answered as 2^53.
	for _, body := range []string{`{"jsonrpc":"2.0","id":7.9,"method":"ping"}`, `{"jsonrpc":"2.0","id":9223372036854775808,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, `{"jsonrpc":"2.0","id":-9007199254740993,"method":"ping"}`} {
		if _, err := DecodeMessage([]byte(body)); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("DecodeMessage(%s): %v, want ErrInvalidRequest", body, err)
		}
	}
}
