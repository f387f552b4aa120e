// Copyright 2026 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package jsonrpc2

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// referenceEncode is EncodeMessage as published: encoding/json compacts
// the params or result.
func referenceEncode(msg Message) ([]byte, error) {
	wire := wireCombined{VersionTag: wireVersion}
	msg.marshal(&wire)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&wire); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func TestEncodeMessageEmbedsValues(t *testing.T) {
	text := `{"content":[{"type":"text","text":"` + strings.Repeat(`a <b>&</b> \"q\" \\n \u2028 é `, 60) + `"}]}`
	id := Int64ID(7)
	for _, tc := range []struct {
		name string
		msg  Message
		// same: the encoding equals the published one; otherwise it must
		// hold the value as it is.
		same bool
	}{
		{"compact result", &Response{ID: id, Result: json.RawMessage(text)}, true},
		{"compact params", &Request{ID: id, Method: "tools/call", Params: json.RawMessage(`{"name":"echo","arguments":{"x":[1,2.5,null,true]}}`)}, true},
		{"notification params", &Request{Method: "notifications/progress", Params: json.RawMessage(`{"progress":1}`)}, true},
		{"scalar result", &Response{ID: id, Result: json.RawMessage(`0`)}, true},
		{"error response", &Response{ID: id, Error: &WireError{Code: -32000, Message: "boom"}}, true},
		{"no params", &Request{ID: id, Method: "ping"}, true},
		{"line break in the value", &Response{ID: id, Result: json.RawMessage("{\n  \"a\": 1\n}")}, true},
		{"space around the value", &Response{ID: id, Result: json.RawMessage(` {"a":1} `)}, true},
		{"spaces inside the value", &Response{ID: id, Result: json.RawMessage(`{"a": [1, 2]}`)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeMessage(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			want, err := referenceEncode(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.same && !bytes.Equal(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			if !tc.same && !bytes.Contains(got, []byte(`{"a": [1, 2]}`)) {
				t.Fatalf("got %s, want the value as it is", got)
			}
			if bytes.ContainsAny(got, "\r\n") {
				t.Fatalf("%q has a line break", got)
			}
			// Either way it decodes to the same message as the published
			// encoding.
			gm, err := DecodeMessage(got)
			if err != nil {
				t.Fatalf("decode %s: %v", got, err)
			}
			wm, _ := DecodeMessage(want)
			g2, _ := referenceEncode(gm)
			w2, _ := referenceEncode(wm)
			if !bytes.Equal(g2, w2) {
				t.Errorf("decoded: %s, want %s", g2, w2)
			}
		})
	}
}

func TestEncodeMessageRejectsInvalidValues(t *testing.T) {
	for _, raw := range []string{`{"a":`, `{"a":1}x`, "\"\x01\""} {
		if got, err := EncodeMessage(&Response{ID: Int64ID(1), Result: json.RawMessage(raw)}); err == nil {
			t.Errorf("result %q encoded as %s, want an error", raw, got)
		}
	}
}

type marshaler struct{ out string }

func (m *marshaler) MarshalJSON() ([]byte, error) {
	if m.out == "" {
		return nil, errors.New("no output")
	}
	return []byte(m.out), nil
}

func TestJSONMarshalOfMarshalers(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  any
		want string
	}{
		{"compact", &marshaler{out: `{"a":"<b>"}`}, `{"a":"<b>"}`},
		{"spaces inside kept", &marshaler{out: `{"a": 1}`}, `{"a": 1}`},
		{"line breaks compacted", &marshaler{out: "{\n\"a\": 1}"}, `{"a":1}`},
		{"nil pointer", (*marshaler)(nil), `null`},
		{"raw message", json.RawMessage(`[1,2]`), `[1,2]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsonMarshal(tc.obj)
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s (%v), want %s", got, err, tc.want)
			}
		})
	}
	if _, err := jsonMarshal(&marshaler{}); err == nil {
		t.Error("a MarshalJSON error was not reported")
	}
	if _, err := jsonMarshal(&marshaler{out: `{"a":`}); err == nil {
		t.Error("invalid JSON from MarshalJSON was not reported")
	}
	for _, obj := range []func(json.RawMessage) any{
		func(r json.RawMessage) any { return r },
		func(r json.RawMessage) any { return &r },
	} {
		raw := json.RawMessage(`{"a":1}`)
		got, _ := jsonMarshal(obj(raw))
		got[2] = 'b'
		if string(raw) != `{"a":1}` {
			t.Errorf("jsonMarshal(%T) returned the caller's bytes: now %s", obj(raw), raw)
		}
	}
}
