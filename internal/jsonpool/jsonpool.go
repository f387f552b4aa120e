// Package jsonpool encodes values as json.Marshal does into pooled
// buffers, for encodings that are only read (hashed, spliced, copied)
// and need not be allocated each time.
package jsonpool

import (
	"bytes"
	"encoding/json"
	"sync"
)

// maxPooled bounds the buffer kept between uses, so one huge value does
// not pin its buffer.
const maxPooled = 64 << 10

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Use calls f with v's encoding, byte for byte json.Marshal's (HTML
// characters escaped, map keys sorted). The bytes are valid only until f
// returns. An encoding error is returned and f is not called.
func Use(v any, f func(b []byte)) error {
	buf := buffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooled {
			buffers.Put(buf)
		}
	}()
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return err
	}
	f(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))) // Encode's newline
	return nil
}
