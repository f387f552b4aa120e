// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/internal/jsonrpc2"
)

// TestParamsErrorInJSONTerms: params that do not decode are -32602 saying
// which member holds what instead of what, not Go's types, and without
// quoting the params back.
func TestParamsErrorInJSONTerms(t *testing.T) {
	for _, tc := range []struct {
		method, params, want string
	}{
		{methodCallTool, `{"name":5,"padding":"` + strings.Repeat("x", 100) + `"}`, "name: got number, want a string"},
		{methodGetPrompt, `{"name":"p","arguments":{"name":3}}`, "arguments.name: got number, want a string"},
		{methodSetLevel, `{"level":3}`, "level: got number, want a string"},
		{methodListTools, `[1,2]`, "got array, want an object"},
	} {
		info, ok := serverMethodInfos[tc.method]
		if !ok {
			t.Fatalf("no method %s", tc.method)
		}
		_, err := info.unmarshalParams(json.RawMessage(tc.params))
		if !errors.Is(err, jsonrpc2.ErrInvalidParams) || !strings.Contains(err.Error(), tc.want) ||
			strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "xxxx") {
			t.Errorf("%s %s: %v, want invalid params with %q", tc.method, tc.params, err, tc.want)
		}
	}
}
