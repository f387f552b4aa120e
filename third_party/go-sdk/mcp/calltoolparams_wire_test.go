// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/internal/jsonrpc2"
)

// TestCallToolParamsWire: MarshalJSON's bytes equal the struct's
// encoding as published (no MarshalJSON), both as the JSON-RPC layer
// encodes params (no HTML escaping) and through json.Marshal, for every
// field set; arguments that are compact JSON go in as they are, and ones
// with space inside keep it.
func TestCallToolParamsWire(t *testing.T) {
	type plain CallToolParams
	noEscape := func(v any) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(buf.String(), "\n")
	}

	full := &CallToolParams{}
	v := reflect.ValueOf(full).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		switch f.Name {
		case "Meta":
			full.Meta = Meta{"progressToken": "p<&>", "arguments": 0}
		case "Name":
			full.Name = "echo <x>"
		case "Arguments":
			full.Arguments = json.RawMessage(`{"text":"a <b> & \u2028 é","n":[1,2.5e3,null]}`)
		case "InputResponses":
			full.InputResponses = InputResponseMap{"r1": &ElicitResult{Action: "accept", Content: map[string]any{"arguments": 0}}}
		case "RequestState":
			full.RequestState = "state"
		default:
			t.Fatalf("CallToolParams has a field %s that this test does not set: add it to MarshalJSON and here", f.Name)
		}
	}
	raw := json.RawMessage(`{"text":"hi"}`)
	for name, p := range map[string]*CallToolParams{
		"zero":                  {},
		"name only":             {Name: "echo"},
		"raw arguments":         {Name: "echo", Arguments: json.RawMessage(`{"text":"hi"}`)},
		"pointer to raw":        {Name: "echo", Arguments: &raw},
		"nil pointer to raw":    {Name: "echo", Arguments: (*json.RawMessage)(nil)},
		"nil raw":               {Name: "echo", Arguments: json.RawMessage(nil)},
		"map arguments":         {Name: "echo", Arguments: map[string]any{"text": "<hi>"}},
		"raw with a line break": {Name: "echo", Arguments: json.RawMessage("{\"text\":\n\"hi\"}")},
		"raw with space around": {Name: "echo", Arguments: json.RawMessage(` {"text":"hi"}`)},
		"every field":           full,
	} {
		got, err := p.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := noEscape((*plain)(p)); string(got) != want {
			t.Errorf("%s: MarshalJSON\n got %s\nwant %s", name, got, want)
		}
		// The JSON-RPC layer takes it as it is.
		msg, err := jsonrpc2.NewCall(jsonrpc2.Int64ID(1), "tools/call", p)
		if err != nil {
			t.Fatalf("%s: NewCall: %v", name, err)
		}
		if want := noEscape((*plain)(p)); string(msg.Params) != want {
			t.Errorf("%s: NewCall params\n got %s\nwant %s", name, msg.Params, want)
		}
		gotM, err1 := json.Marshal(p)
		wantM, err2 := json.Marshal((*plain)(p))
		if err1 != nil || err2 != nil || string(gotM) != string(wantM) {
			t.Errorf("%s: json.Marshal\n got %s (%v)\nwant %s (%v)", name, gotM, err1, wantM, err2)
		}
	}

	// Space inside raw arguments stays (the published encoding compacts it).
	p := &CallToolParams{Name: "echo", Arguments: json.RawMessage(`{"text": "a b" }`)}
	got, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"echo","arguments":{"text": "a b" }}`; string(got) != want {
		t.Errorf("spaces inside: got %s, want %s", got, want)
	}
	// Invalid raw arguments are an error, as before.
	if _, err := json.Marshal(&CallToolParams{Name: "echo", Arguments: json.RawMessage(`{"text":`)}); err == nil {
		t.Error("invalid raw arguments: no error")
	}
}

func BenchmarkCallToolParamsMarshal(b *testing.B) {
	args := json.RawMessage(`{"text":"` + strings.Repeat("The quarterly numbers look fine. ", 32) + `"}`)
	p := &CallToolParams{Meta: Meta{"progressToken": "tok-1"}, Name: "echo", Arguments: args}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jsonrpc2.NewCall(jsonrpc2.Int64ID(1), "tools/call", p); err != nil {
			b.Fatal(err)
		}
	}
}
