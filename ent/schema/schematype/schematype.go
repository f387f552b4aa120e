// Package schematype holds the Go types and validation helpers that the Ent
// schema in [github.com/gatehouse-dev/gatehouse/ent/schema] uses, kept apart so
// that generated code, the GraphQL layer and the store can import them without
// importing the schema itself.
package schematype

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Transport is how the gateway talks to an upstream. Its values are the
// YAML document's; GraphQL spells streamable-http as streamable_http because
// enum values there cannot contain '-'.
type Transport string

// Transports accepted in an upstream's transport field.
const (
	TransportStreamableHTTP Transport = "streamable-http"
	TransportSSE            Transport = "sse"
	TransportStdio          Transport = "stdio"
)

// Values implements ent's EnumValues: the values stored in the database.
func (Transport) Values() []string {
	return []string{string(TransportStreamableHTTP), string(TransportSSE), string(TransportStdio)}
}

// String returns the stored (YAML) form of t.
func (t Transport) String() string { return string(t) }

// MarshalGQL writes t as its GraphQL enum value.
func (t Transport) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.Quote(strings.ReplaceAll(string(t), "-", "_")))
}

// UnmarshalGQL reads a GraphQL enum value into t.
func (t *Transport) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("transport must be a string, got %T", v)
	}
	s = strings.ReplaceAll(s, "_", "-")
	for _, ok := range t.Values() {
		if s == ok {
			*t = Transport(s)
			return nil
		}
	}
	return fmt.Errorf("%q is not a transport: use streamable_http, sse or stdio", v)
}

// NamePattern is what names of upstreams, virtual servers, agents and the
// other named entities must match. It is the same rule the YAML document
// applies (internal/config); a test keeps the two in step.
const NamePattern = `^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`

var nameRE = regexp.MustCompile(NamePattern)

// ErrBadName is returned by [ValidateName] for a name that does not match
// [NamePattern].
var ErrBadName = errors.New("use letters, digits, '_', '.', '-' (max 128), starting with a letter or digit")

// ValidateName checks a name against [NamePattern].
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q: %w", name, ErrBadName)
	}
	return nil
}

// ValidateNames checks every name of a list against [NamePattern].
func ValidateNames(names []string) error {
	for i, n := range names {
		if err := ValidateName(n); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return nil
}

// ValidateGlobs checks that every entry of a name list is a valid
// path.Match pattern. A nil list (meaning "all") is valid.
func ValidateGlobs(globs []string) error {
	for i, g := range globs {
		if g == "" {
			return fmt.Errorf("[%d]: empty pattern", i)
		}
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("[%d]: bad glob %q", i, g)
		}
	}
	return nil
}

// ValidateSHA256 checks a lowercase hex SHA-256 digest (64 digits).
func ValidateSHA256(s string) error {
	if len(s) != 64 {
		return errors.New("want 64 lowercase hex digits (sha256 of the key)")
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return errors.New("want 64 lowercase hex digits (sha256 of the key)")
		}
	}
	return nil
}

// ValidateStringMap checks that a map's keys are non-empty.
func ValidateStringMap(m map[string]string) error {
	for k := range m {
		if strings.TrimSpace(k) == "" {
			return errors.New("empty key")
		}
	}
	return nil
}

// AdminRoles are the roles an admin token can carry.
var AdminRoles = []string{"admin", "approver", "auditor", "viewer"}

// ValidateAdminRoles checks a non-empty list of [AdminRoles] without repeats.
func ValidateAdminRoles(roles []string) error {
	if len(roles) == 0 {
		return errors.New("give at least one role: admin, approver, auditor or viewer")
	}
	seen := map[string]bool{}
	for i, r := range roles {
		known := false
		for _, a := range AdminRoles {
			known = known || r == a
		}
		if !known {
			return fmt.Errorf("[%d]: unknown role %q (admin, approver, auditor or viewer)", i, r)
		}
		if seen[r] {
			return fmt.Errorf("[%d]: duplicate role %q", i, r)
		}
		seen[r] = true
	}
	return nil
}

// FieldError is a validation failure of one field that depends on other
// fields of the same entity (e.g. "escalate_to is required when on_timeout
// is escalate"). Field is the Ent field or edge name, e.g. "escalate_to".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// FieldErrors collects every [FieldError] of one mutation, so that an admin
// fixes them all in one round.
type FieldErrors []*FieldError

func (e FieldErrors) Error() string {
	msgs := make([]string, len(e))
	for i, f := range e {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

// Add appends a failure of field.
func (e *FieldErrors) Add(field, format string, args ...any) {
	*e = append(*e, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// Err returns e as an error, or nil when it is empty.
func (e FieldErrors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// ValidateWebhookURL checks an absolute http or https URL with a host.
func ValidateWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return errors.New("credentials in the URL would be shown to admins; sign with the secret instead")
	}
	return nil
}
