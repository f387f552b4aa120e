package graph_test

import (
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for env.rawDB

	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

// eachBackend runs f as two parallel subtests, each with a fresh admin API:
// "sqlite" over a SQLite file, and "postgres" over a fresh database on the
// PostgreSQL server of GATEHOUSE_TEST_POSTGRES_URL (skipped when it is
// unset; `export GATEHOUSE_TEST_POSTGRES_URL=$(test/scripts/postgres.sh)`).
// The suite's tests that touch the store run through it, so that the same
// GraphQL documents meet both databases, including the errors whose wording
// comes from the database (unique and foreign-key violations).
func eachBackend(t *testing.T, opts *graph.HandlerOptions, f func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, newEnv(t, opts))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, newEnvAt(t, storetest.PostgresURL(t), opts))
	})
}
