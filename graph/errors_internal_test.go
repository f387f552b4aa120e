package graph

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestStoreFailure: errors of a store that is down, unreachable or out of
// resources are the store's (STORE_UNAVAILABLE); a constraint violation
// or any other error is not.
func TestStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "53100"}, true},  // disk full
		{&pgconn.PgError{Code: "57P01"}, true},  // admin shutdown
		{&pgconn.PgError{Code: "08006"}, true},  // connection failure
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table
		{fmt.Errorf("query: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		{fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{&pgconn.ConnectError{}, true}, // e.g. FATAL 55000: the database does not accept connections
		{errors.New("something else"), false},
	} {
		if got := storeFailure(tc.err); got != tc.want {
			t.Errorf("storeFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestTxErrorPresented: a transaction that cannot begin or commit is
// STORE_UNAVAILABLE only when the store failed; a commit the database
// refuses for the change's sake keeps its own code, or none.
func TestTxErrorPresented(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err      *txError
		code     any
		contains string
	}{
		{&txError{err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}, codeStore, "could not begin a transaction, so nothing was changed"},
		{&txError{commit: true, err: &pgconn.PgError{Code: "53100", Message: "could not extend file"}}, codeStore, "could not commit the change: "},
		{&txError{commit: true, err: &pgconn.PgError{Code: "23505", Detail: "Key (name)=(x) already exists."}}, codeConflict, "name: already taken"},
		{&txError{commit: true, err: &pgconn.PgError{Code: "40001", Message: "could not serialize access"}}, nil, "could not commit the change: "},
	} {
		got := presentError(ctx, tc.err)
		if got.Extensions["code"] != tc.code || !strings.Contains(got.Message, tc.contains) {
			t.Errorf("presentError(%v) = %q %v, want code %v and %q", tc.err, got.Message, got.Extensions, tc.code, tc.contains)
		}
		if strings.Contains(got.Message, "failed: the configuration store") {
			t.Errorf("message says twice what failed: %q", got.Message)
		}
	}
}
