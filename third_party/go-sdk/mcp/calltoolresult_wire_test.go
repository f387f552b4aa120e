// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package mcp

import (
	"encoding/json"
	"reflect"
	"testing"
)

// referenceMarshal is CallToolResult.MarshalJSON as published (v1.8.0): the
// struct embedded, so every field it has is encoded, text content by its
// own MarshalJSON.
func referenceMarshal(x *CallToolResult) ([]byte, error) {
	type res CallToolResult
	type wire struct {
		res
		ResultType    resultType      `json:"resultType,omitempty"`
		InputRequests json.RawMessage `json:"inputRequests,omitempty"`
	}
	w := wire{res: res(*x), ResultType: x.resultType}
	if x.InputRequests != nil {
		ir, err := json.Marshal(x.InputRequests)
		if err != nil {
			return nil, err
		}
		w.InputRequests = ir
	}
	return json.Marshal(w)
}

// TestCallToolResultWire: MarshalJSON lists CallToolResult's fields
// itself, and encodes text content without calling its MarshalJSON; its
// bytes must equal the published encoding's, with every field set.
func TestCallToolResultWire(t *testing.T) {
	full := &CallToolResult{}
	// Every exported field, set: a field added to CallToolResult must be
	// added to MarshalJSON's wire struct, and here.
	v := reflect.ValueOf(full).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		switch f.Name {
		case "Meta":
			full.Meta = Meta{"progressToken": "p", "html": "<b>&</b>"}
		case "Content":
			full.Content = []Content{
				&TextContent{Text: "a <b>bold</b> \"quoted\" line\nand\ttabs \u2028 é", Meta: Meta{"k": 1}, Annotations: &Annotations{Priority: 0.5}},
				&ImageContent{Data: []byte{1, 2, 3}, MIMEType: "image/png"},
				&TextContent{},
			}
		case "StructuredContent":
			full.StructuredContent = map[string]any{"n": 1.5, "s": "<x>"}
		case "IsError":
			full.IsError = true
		case "InputRequests":
			full.InputRequests = InputRequestMap{"r1": &ElicitParams{Message: "ok?"}}
		case "RequestState":
			full.RequestState = "state"
		default:
			t.Fatalf("CallToolResult has a field %s that this test does not set: add it to MarshalJSON's wire struct and here", f.Name)
		}
	}
	full.setResultType(resultTypeInputRequired)

	for name, r := range map[string]*CallToolResult{
		"zero":          {},
		"empty content": {Content: []Content{}},
		"text":          {Content: []Content{&TextContent{Text: "hi"}}},
		"every field":   full,
	} {
		want, werr := referenceMarshal(r)
		got, gerr := r.MarshalJSON()
		if (werr != nil) != (gerr != nil) || string(got) != string(want) {
			t.Errorf("%s:\n got %s (%v)\nwant %s (%v)", name, got, gerr, want, werr)
		}
	}
}

// TestCallToolResultDecodedJSON: a decoded result keeps a copy of the
// bytes it was decoded from, with fields CallToolResult lacks; a built
// one has none.
func TestCallToolResultDecodedJSON(t *testing.T) {
	data := []byte(`{"content":[{"type":"text","text":"hi <b>"}],"isError":true,"x-extra":{"a":1}}`)
	var res CallToolResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	want := string(data)
	data[3] = 'X' // the caller's buffer is the caller's
	if got := string(res.DecodedJSON()); got != want {
		t.Errorf("DecodedJSON = %s, want %s", got, want)
	}
	if (&CallToolResult{}).DecodedJSON() != nil || (*CallToolResult)(nil).DecodedJSON() != nil {
		t.Error("a result that was not decoded has DecodedJSON")
	}
}
