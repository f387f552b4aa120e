package graph

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
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
