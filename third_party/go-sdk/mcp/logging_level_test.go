// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// TestSetLevelUnknown: logging/setLevel with a level MCP does not define
// is -32602 naming the levels; it used to be stored, then compared as
// debug.
func TestSetLevelUnknown(t *testing.T) {
	ctx := context.Background()
	ct, st := NewInMemoryTransports()
	s := NewServer(&Implementation{Name: "s", Version: "1"}, nil)
	ss, err := s.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := NewClient(&Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	err = cs.SetLoggingLevel(ctx, &SetLoggingLevelParams{Level: "verbose"})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams || !strings.Contains(werr.Message, "emergency") {
		t.Fatalf("setLevel verbose: %v, want -32602 naming the levels", err)
	}
	if err := cs.SetLoggingLevel(ctx, &SetLoggingLevelParams{Level: "notice"}); err != nil {
		t.Fatalf("setLevel notice: %v", err)
	}
}
