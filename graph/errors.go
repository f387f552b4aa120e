package graph

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/internal/clip"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Error codes in the extensions of GraphQL errors ("extensions": {"code": ...}).
// Clients branch on these, not on messages.
const (
	codeInvalid         = "INVALID"         // a field failed validation; extensions.field says which
	codeConflict        = "CONFLICT"        // a unique name or key already exists
	codeNotFound        = "NOT_FOUND"       // no entity with that ID
	codeInUse           = "IN_USE"          // other entities still refer to it
	codeForbidden       = "FORBIDDEN"       // the admin token lacks the role
	codeUnauthenticated = "UNAUTHENTICATED" // no or bad admin token
	codeUnavailable     = "UNAVAILABLE"     // needs the running gateway
	codeLimit           = "LIMIT_EXCEEDED"  // query too deep
	// The configuration store failed: its disk is full, its database is
	// down or unreachable. Retry once it is back.
	codeStore = "STORE_UNAVAILABLE"
)

// ErrGatewayUnavailable is the error of operations that need the running
// gateway when the API has none ([Resolver.Gateway] is nil).
var ErrGatewayUnavailable = errors.New("this operation needs the running gateway, which this admin API is not connected to")

var errUnauthenticated = errors.New("missing or invalid admin token")

// fieldError is a validation error of one argument field, e.g. "agent" or
// "input.name".
func fieldError(ctx context.Context, field, code, format string, args ...any) *gqlerror.Error {
	e := gqlerror.ErrorPathf(graphql.GetPath(ctx), format, args...)
	e.Extensions = map[string]any{"code": code, "field": field}
	return e
}

// expiresInFuture refuses to create a key or token that expires at once
// (updating one to an expiry in the past is how one is cut off, so that
// stays allowed).
func expiresInFuture(ctx context.Context, at *time.Time) error {
	if at != nil && !at.After(time.Now()) {
		return fieldError(ctx, "input.expiresAt", codeInvalid, "expiresAt: %s is not in the future, so the credential could never be used", at.UTC().Format(time.RFC3339))
	}
	return nil
}

// presentError is the gqlgen error presenter: it turns store errors into
// messages an admin can act on and tags each with a code, and validation
// errors with the input field at fault.
func presentError(ctx context.Context, err error) *gqlerror.Error {
	gerr := graphql.DefaultErrorPresenter(ctx, err)
	if gerr.Extensions != nil && gerr.Extensions["code"] != nil {
		return gerr
	}
	set := func(code, field, msg string) *gqlerror.Error {
		gerr.Message = msg
		gerr.Extensions = map[string]any{"code": code}
		if field != "" {
			gerr.Extensions["field"] = field
		}
		return gerr
	}
	var (
		ve     *ent.ValidationError
		fe     *schematype.FieldError
		fes    schematype.FieldErrors
		nf     *ent.NotFoundError
		ce     *ent.ConstraintError
		pge    *pgconn.PgError
		inUse  *store.InUseError
		numErr *strconv.NumError
	)
	arg := argName(gerr) // the argument an argument's parse error names, or ""
	switch {
	case errors.As(err, &ve):
		field, msg := validationMessage(ve)
		return set(codeInvalid, "input."+field, field+": "+msg)
	case errors.As(err, &fe) || (errors.As(err, &fes) && len(fes) > 0):
		if fe == nil {
			fe = fes[0] // not expanded by expandFieldErrors: report the first
		}
		field := gqlField(fe.Field)
		return set(codeInvalid, "input."+field, field+": "+fe.Reason)
	case errors.As(err, &nf):
		return set(codeNotFound, "", "not found: "+strings.TrimPrefix(nf.Error(), "ent: "))
	case errors.As(err, &numErr) && arg != "":
		// An ID argument that is not one (gqlgen's "strconv.Atoi: ...").
		return set(codeInvalid, arg, fmt.Sprintf("%s: %q is not an ID of this API (IDs are the strings it returns, e.g. in id fields)", arg, clip.String(numErr.Num, 64)))
	case strings.HasPrefix(gerr.Message, "cannot decode cursor") && (arg == "after" || arg == "before"):
		return set(codeInvalid, arg, arg+": not a cursor of this API (pass pageInfo.endCursor or startCursor as a connection returned it)")
	case strings.Contains(gerr.Message, "RFC3339") && arg != "":
		// gqlgen's Time scalar: "time should be RFC3339Nano formatted string".
		return set(codeInvalid, arg, arg+": not a time: give one as RFC 3339, e.g. 2026-12-03T14:00:00Z")
	case strings.HasPrefix(gerr.Message, "Passing both `first` and `last`"):
		return set(codeInvalid, "last", "give first or last, not both")
	case errors.As(err, &inUse):
		return set(codeInUse, "", inUse.Error())
	case errors.Is(err, ErrGatewayUnavailable):
		return set(codeUnavailable, "", err.Error())
	case errors.Is(err, errUnauthenticated):
		return set(codeUnauthenticated, "", err.Error())
	case storeFailure(err):
		if te := (*txError)(nil); errors.As(err, &te) {
			return set(codeStore, "", te.Error()) // says what failed already
		}
		return set(codeStore, "", "the configuration store failed: "+err.Error())
	case errors.As(err, &pge) && strings.HasPrefix(pge.Code, "23"), errors.As(err, &ce): // class 23: integrity constraint violation
		return constraintError(rootFieldName(ctx), err, pge, set)
	}
	return gerr
}

// argName is the argument an error of argument parsing names: the last
// element of its path, when that is a name, as gqlgen sets it.
func argName(e *gqlerror.Error) string {
	if n := len(e.Path); n > 1 {
		if name, ok := e.Path[n-1].(ast.PathName); ok {
			return string(name)
		}
	}
	return ""
}

// storeFailure reports whether err is the configuration store failing
// rather than the request: a full disk, an I/O error, a database that is
// down, unreachable or out of resources.
func storeFailure(err error) bool {
	var (
		se  *sqlite.Error
		pge *pgconn.PgError
		ce  *pgconn.ConnectError
		ne  net.Error
	)
	switch {
	case errors.As(err, &ce):
		return true // a connection that could not be made, whatever the server said
	case errors.As(err, &se):
		switch se.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_BUSY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
		return false
	case errors.As(err, &pge):
		// 08: connection exception, 53: insufficient resources (53100:
		// disk full), 57: operator intervention (a shutdown), 58: system
		// error (an I/O error).
		return slices.Contains([]string{"08", "53", "57", "58"}, pge.Code[:min(2, len(pge.Code))])
	}
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone)
}

// expandFieldErrors expands a [schematype.FieldErrors] (several invalid fields
// of one mutation) into one GraphQL error per field; other errors pass.
func expandFieldErrors(err error) error {
	var fes schematype.FieldErrors
	if !errors.As(err, &fes) {
		return err
	}
	list := make(gqlerror.List, len(fes))
	for i, fe := range fes {
		list[i] = &gqlerror.Error{Err: fe, Message: fe.Error()}
	}
	return list
}

var (
	sqliteUniqueRE = regexp.MustCompile(`UNIQUE constraint failed: \w+\.(\w+)`)
	pgDetailRE     = regexp.MustCompile(`^Key \(([^)]+)\)=`)
)

// rootFieldName is the name of the root field (the mutation) an error of
// ctx belongs to, or "".
func rootFieldName(ctx context.Context) string {
	if rfc := graphql.GetRootFieldContext(ctx); rfc != nil && rfc.Field.Field != nil {
		return rfc.Field.Name
	}
	return ""
}

func constraintError(op string, err error, pge *pgconn.PgError, set func(code, field, msg string) *gqlerror.Error) *gqlerror.Error {
	msg := err.Error()
	var column string
	fk := (pge != nil && pge.Code == "23503") || strings.Contains(msg, "FOREIGN KEY constraint failed")
	switch {
	case fk && (strings.HasPrefix(op, "create") || strings.HasPrefix(op, "update")):
		// Writing a reference: the ID it names does not exist.
		return set(codeNotFound, "", "not found: an ID in the input (e.g. teamID, upstreamID, virtualServerID) names no entity of that type")
	case fk:
		return set(codeInUse, "", "still in use: other entities refer to it (e.g. an upstream selected by a virtual server); remove those first")
	case pge != nil && pge.Code == "23505": // unique_violation
		if m := pgDetailRE.FindStringSubmatch(pge.Detail); m != nil {
			column = m[1]
		}
	default:
		if m := sqliteUniqueRE.FindStringSubmatch(msg); m != nil {
			column = m[1]
		}
	}
	if column == "" || strings.Contains(column, ",") {
		return set(codeConflict, "", "conflicts with an existing entity (a unique name or key is taken)")
	}
	field := gqlField(column)
	return set(codeConflict, "input."+field, fmt.Sprintf("%s: already taken by another entity", field))
}

// validationMessage returns the GraphQL input field name and reason of an
// Ent validation error, without Ent's wording around it.
func validationMessage(ve *ent.ValidationError) (field, msg string) {
	field = gqlField(ve.Name)
	inner := errors.Unwrap(ve)
	switch {
	case inner == nil:
		msg = ve.Error()
	case errors.Unwrap(inner) != nil:
		msg = errors.Unwrap(inner).Error()
	case strings.Contains(inner.Error(), "missing required edge"):
		field, msg = field+"ID", "required"
	case strings.Contains(inner.Error(), "missing required field"):
		msg = "required"
	default:
		msg = inner.Error()
	}
	return field, msg
}

// gqlField converts an Ent field name (snake_case) to the GraphQL one
// (camelCase), as entgql does: "escalate_to" -> "escalateTo".
func gqlField(name string) string {
	var b strings.Builder
	upper := false
	for i, r := range name {
		switch {
		case r == '_':
			upper = i > 0
		case upper:
			b.WriteRune(unicode.ToUpper(r))
			upper = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
