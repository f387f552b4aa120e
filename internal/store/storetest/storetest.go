// Package storetest gives tests a config store on PostgreSQL when one is
// configured: test/scripts/postgres.sh starts a throwaway cluster and prints
// the URL to put in [EnvPostgresURL].
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers database/sql driver "pgx"
)

// EnvPostgresURL names the variable holding the URL of a PostgreSQL server
// (any database on it) that tests may create databases on.
const EnvPostgresURL = "GATEHOUSE_TEST_POSTGRES_URL"

// PostgresURL creates a fresh, empty database on the server of
// $GATEHOUSE_TEST_POSTGRES_URL, drops it when the test ends, and returns its
// URL. It skips the test when the variable is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgresURL)
	if base == "" {
		t.Skip("PostgreSQL test skipped: set " + EnvPostgresURL + " to a server URL, e.g. export " + EnvPostgresURL + "=$(test/scripts/postgres.sh)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgresURL, err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gatehouse_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create test database on %s: %v", u.Redacted(), err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
