// Copyright 2018 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

package jsonrpc2

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"

	segjson "github.com/segmentio/encoding/json"

	internaljson "github.com/modelcontextprotocol/go-sdk/internal/json"
)

// ID is a Request identifier, which is defined by the spec to be a string, integer, or null.
// https://www.jsonrpc.org/specification#request_object
type ID struct {
	value any
}

// MakeID coerces the given Go value to an ID. The value should be the
// default JSON marshaling of a Request identifier: nil, float64, or string.
//
// Returns an error if the value type was not a valid Request ID type.
//
// TODO: ID can't be a json.Marshaler/Unmarshaler, because we want to omitzero.
// Simplify this package by making ID json serializable once we can rely on
// omitzero.
func MakeID(v any) (ID, error) {
	switch v := v.(type) {
	case nil:
		return ID{}, nil
	case float64:
		// JSON numbers arrive as float64. One that is not an integer, or
		// too large for a float64 to hold every integer up to it (2^53
		// and beyond: 2^53+1 arrives as 2^53), would be answered under
		// another ID (1.5 as 1, 2^53+1 as 2^53, 2^63 as -2^63), which its
		// sender could not match, and could collide with a request in
		// flight. JSON-RPC wants the response's ID to be the request's.
		if v != math.Trunc(v) {
			return ID{}, fmt.Errorf("%w: request ID %s is not an integer; use an integer or a string", ErrInvalidRequest, strconv.FormatFloat(v, 'f', -1, 64))
		}
		if math.Abs(v) >= 1<<53 {
			// Said approximately: the number as sent is gone already.
			return ID{}, fmt.Errorf("%w: request ID ≈%g is beyond ±(2^53-1), the integers a JSON number holds exactly; use a smaller integer or a string", ErrInvalidRequest, v)
		}
		return Int64ID(int64(v)), nil
	case string:
		return StringID(v), nil
	}
	return ID{}, fmt.Errorf("%w: invalid ID type %T", ErrParse, v)
}

// Message is the interface to all jsonrpc2 message types.
// They share no common functionality, but are a closed set of concrete types
// that are allowed to implement this interface. The message types are *Request
// and *Response.
type Message interface {
	// marshal builds the wire form from the API form.
	// It is private, which makes the set of Message implementations closed.
	marshal(to *wireCombined)
}

// Request is a Message sent to a peer to request behavior.
// If it has an ID it is a call, otherwise it is a notification.
type Request struct {
	// ID of this request, used to tie the Response back to the request.
	// This will be nil for notifications.
	ID ID
	// Method is a string containing the method name to invoke.
	Method string
	// Params is either a struct or an array with the parameters of the method.
	Params json.RawMessage
	// Extra is additional information that does not appear on the wire. It can be
	// used to pass information from the application to the underlying transport.
	Extra any
}

// Response is a Message used as a reply to a call Request.
// It will have the same ID as the call it is a response to.
type Response struct {
	// result is the content of the response.
	Result json.RawMessage
	// err is set only if the call failed.
	Error error
	// id of the request this is a response to.
	ID ID
	// Extra is additional information that does not appear on the wire. It can be
	// used to pass information from the underlying transport to the application.
	Extra any
}

// StringID creates a new string request identifier.
func StringID(s string) ID { return ID{value: s} }

// Int64ID creates a new integer request identifier.
func Int64ID(i int64) ID { return ID{value: i} }

// IsValid returns true if the ID is a valid identifier.
// The default value for ID will return false.
func (id ID) IsValid() bool { return id.value != nil }

// Raw returns the underlying value of the ID.
func (id ID) Raw() any { return id.value }

// NewNotification constructs a new Notification message for the supplied
// method and parameters.
func NewNotification(method string, params any) (*Request, error) {
	p, merr := marshalToRaw(params)
	return &Request{Method: method, Params: p}, merr
}

// NewCall constructs a new Call message for the supplied ID, method and
// parameters.
func NewCall(id ID, method string, params any) (*Request, error) {
	p, merr := marshalToRaw(params)
	return &Request{ID: id, Method: method, Params: p}, merr
}

func (msg *Request) IsCall() bool { return msg.ID.IsValid() }

func (msg *Request) marshal(to *wireCombined) {
	to.ID = msg.ID.value
	to.Method = msg.Method
	to.Params = msg.Params
}

// NewResponse constructs a new Response message that is a reply to the
// supplied. If err is set result may be ignored.
func NewResponse(id ID, result any, rerr error) (*Response, error) {
	r, merr := marshalToRaw(result)
	return &Response{ID: id, Result: r, Error: rerr}, merr
}

func (msg *Response) marshal(to *wireCombined) {
	to.ID = msg.ID.value
	to.Error = toWireError(msg.Error)
	to.Result = msg.Result
}

func toWireError(err error) *WireError {
	if err == nil {
		// no error, the response is complete
		return nil
	}
	if err, ok := err.(*WireError); ok {
		// already a wire error, just use it
		return err
	}
	// An error without a JSON-RPC code is an internal error: code 0, which
	// the published code sent (for a cancelled handler's context, say), is
	// not a valid JSON-RPC error code.
	result := &WireError{Code: -32603, Message: err.Error()}
	var wrapped *WireError
	if errors.As(err, &wrapped) {
		// if we wrapped a wire error, keep the code from the wrapped error
		// but the message from the outer error
		result.Code = wrapped.Code
	}
	return result
}

func EncodeMessage(msg Message) ([]byte, error) {
	wire := wireCombined{VersionTag: wireVersion}
	msg.marshal(&wire)
	// The params or result is JSON already, and encoding/json would scan
	// it again to compact it, which costs as much as encoding it. When it
	// can go into the message as it is (embeddable), the envelope is
	// encoded around a placeholder, its last value, and the JSON spliced
	// in its place.
	var raw *json.RawMessage
	switch {
	case wire.Error != nil:
	case wire.Result != nil:
		raw = &wire.Result
	case wire.Params != nil:
		raw = &wire.Params
	}
	if raw != nil && Embeddable(*raw) {
		value := *raw
		*raw = placeholder
		e := GetEncoder()
		defer e.Release()
		if data, err := e.Encode(&wire); err == nil {
			if bytes.HasSuffix(data, placeholderEnd) {
				head := data[:len(data)-len(placeholderEnd)+1] // up to the colon
				out := make([]byte, 0, len(head)+len(value)+1)
				out = append(append(out, head...), value...)
				return append(out, '}'), nil
			}
		}
		*raw = value
	}
	data, err := jsonMarshal(&wire)
	if err != nil {
		return nil, fmt.Errorf("marshaling jsonrpc message: %w", err)
	}
	return data, nil
}

// placeholder stands for an embeddable params or result value while its
// envelope is encoded; placeholderEnd is how that encoding ends (the value
// is the envelope's last).
var placeholder, placeholderEnd = json.RawMessage("0"), []byte(":0}")

// Embeddable reports whether data, a JSON value, can go into a message as
// it is, as encoding/json would otherwise compact it: valid JSON, with no
// line break (a message is one line on the stdio transport and one SSE
// data line) and no space around it. It may have spaces inside, where
// compacting would have dropped them.
func Embeddable(data []byte) bool {
	if len(data) == 0 || isSpace(data[0]) || isSpace(data[len(data)-1]) {
		return false
	}
	return bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 && segjson.Valid(data)
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// EncodeIndent is like EncodeMessage, but honors indents.
// TODO(rfindley): refactor so that this concern is handled independently.
// Perhaps we should pass in a json.Encoder?
func EncodeIndent(msg Message, prefix, indent string) ([]byte, error) {
	wire := wireCombined{VersionTag: wireVersion}
	msg.marshal(&wire)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, indent)
	if err := enc.Encode(&wire); err != nil {
		return nil, fmt.Errorf("marshaling jsonrpc message: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// wireDecode is the decode form of [wireCombined]. Method is a [json.RawMessage]
// so we can tell whether the "method" key was present on the wire, including
// when its value is the empty string (see go-sdk#976).
type wireDecode struct {
	VersionTag string          `json:"jsonrpc"`
	ID         any             `json:"id,omitempty"`
	Method     json.RawMessage `json:"method"`
	Params     json.RawMessage `json:"params,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      *WireError      `json:"error,omitempty"`
}

func DecodeMessage(data []byte) (Message, error) {
	msg := wireDecode{}
	if err := internaljson.Unmarshal(data, &msg); err != nil {
		return nil, fmt.Errorf("unmarshaling jsonrpc message: %w", err)
	}
	if msg.VersionTag != wireVersion {
		return nil, fmt.Errorf("invalid message version tag %q; expected %q", msg.VersionTag, wireVersion)
	}
	id, err := MakeID(msg.ID)
	if err != nil {
		return nil, err
	}
	if len(msg.Method) > 0 {
		// The "method" key was present. Decode its value (including "").
		var method string
		if err := internaljson.Unmarshal(msg.Method, &method); err != nil {
			return nil, fmt.Errorf("unmarshaling jsonrpc message: %w", err)
		}
		return &Request{
			Method: method,
			ID:     id,
			Params: msg.Params,
		}, nil
	}
	// no method key, should be a response
	if !id.IsValid() {
		return nil, ErrInvalidRequest
	}
	resp := &Response{
		ID:     id,
		Result: msg.Result,
	}
	// we have to check if msg.Error is nil to avoid a typed error
	if msg.Error != nil {
		resp.Error = msg.Error
	}
	return resp, nil
}

func marshalToRaw(obj any) (json.RawMessage, error) {
	if obj == nil {
		return nil, nil
	}
	data, err := jsonMarshal(obj)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(data), nil
}

// jsonMarshal marshals obj to JSON like json.Marshal but without HTML escaping.
func jsonMarshal(obj any) ([]byte, error) {
	// A value that encodes itself: encoding/json would scan its JSON again
	// to compact it (as much work as encoding it), so it is taken as it is
	// when it can be (embeddable). A nil pointer is encoded as null below.
	if m, ok := obj.(json.Marshaler); ok {
		if v := reflect.ValueOf(m); v.Kind() != reflect.Pointer || !v.IsNil() {
			if data, err := m.MarshalJSON(); err == nil && Embeddable(data) {
				switch obj.(type) {
				case json.RawMessage, *json.RawMessage:
					data = bytes.Clone(data) // the caller's bytes
				}
				return data, nil
			}
		}
	}
	// The encoder and its buffer are reused: a fresh bytes.Buffer grows
	// by doubling from 64 bytes, several allocations per message. The
	// result is copied out at its exact size.
	e := GetEncoder()
	defer e.Release()
	data, err := e.Encode(obj)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(data), nil
}

// An Encoder is a reusable JSON encoder without HTML escaping, as
// messages are encoded; GetEncoder takes one from a pool and Release
// returns it.
type Encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := new(Encoder)
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// GetEncoder returns a pooled Encoder with an empty buffer.
func GetEncoder() *Encoder { return encoders.Get().(*Encoder) }

// Encode appends obj's encoding to e's buffer and returns the whole
// buffer, without the newline json.Encoder.Encode adds (as json.Marshal).
// The bytes are e's: valid until e is released.
func (e *Encoder) Encode(obj any) ([]byte, error) {
	if err := e.enc.Encode(obj); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")), nil
}

// maxPooledEncoder bounds the buffer an encoder keeps between uses, so
// one huge message does not pin its buffer.
const maxPooledEncoder = 64 << 10

// Release empties e and returns it to the pool.
func (e *Encoder) Release() {
	if e.buf.Cap() > maxPooledEncoder {
		return
	}
	e.buf.Reset()
	encoders.Put(e)
}
