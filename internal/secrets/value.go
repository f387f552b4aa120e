// Package secrets fetches upstream credentials from Vault (or OpenBao) just
// in time, for the one request that needs them, and injects them into that
// request: an HTTP header or query parameter, a stdio process's
// environment, or a tool argument the agent never sees.
//
// A secret's value exists only inside a [Value], which redacts itself when
// printed, logged or encoded; [Value.Reveal] is called exactly where the
// value leaves for the upstream. Errors name bindings and Vault paths,
// never values.
package secrets

import (
	"fmt"
	"log/slog"
)

// Redacted is what a [Value] prints as.
const Redacted = "[REDACTED]"

// Value is a secret. Its zero value is empty. It prints, logs, and encodes
// as [Redacted]; only [Value.Reveal] returns the secret.
type Value struct{ s string }

// NewValue wraps s.
func NewValue(s string) Value { return Value{s: s} }

// Reveal returns the secret itself. Call it only where the value is handed
// to the upstream.
func (v Value) Reveal() string { return v.s }

// IsZero reports whether v is empty.
func (v Value) IsZero() bool { return v.s == "" }

// String implements fmt.Stringer.
func (Value) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (Value) GoString() string { return "secrets.Value(" + Redacted + ")" }

// Format implements fmt.Formatter, so no verb (%s, %v, %q, %x, %+v, ...)
// reaches the secret.
func (Value) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", Redacted)
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// LogValue implements slog.LogValuer.
func (Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler.
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (YAML, XML, map keys).
func (Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
