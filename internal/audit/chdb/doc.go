// Package chdb is the audit trail's embedded ClickHouse engine: chDB's
// libchdb.so (ClickHouse 26.7), loaded at [Open] with purego, so the
// binary needs no cgo and starts without the library when audit goes to
// a ClickHouse server instead.
//
// The library is the npm package @chdb/lib-linux-x64-gnu (`make chdb`
// installs it under .cache/chdb). Loading it makes the process depend on
// glibc (libc, libm, libpthread, librt, libdl). A build with the tag
// nochdb leaves the engine out and stays fully static; its [Open] always
// fails with [ErrNotBuilt].
//
// # Engine model
//
// chDB runs one engine per process with one data directory: [Open] with
// a second directory while a [Backend] is open fails. A Backend keeps one
// session for Exec and Insert and serializes every statement (a chDB
// session runs one statement at a time). Queries run on a short-lived
// second session of the same engine that carries the query's limits as
// session settings (readonly, max_result_rows, max_execution_time), so
// that a query can neither lift them nor leave them behind. A running
// statement cannot be interrupted: a context only bounds the wait for
// the session, and its deadline becomes max_execution_time for queries.
package chdb

import "errors"

// EnvLib names the environment variable with the path of libchdb.so,
// consulted when [Options.LibPath] is empty.
const EnvLib = "GATEHOUSE_CHDB_LIB"

// DevLibPath is where `make chdb` installs the library, relative to the
// repository root.
const DevLibPath = ".cache/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"

// ErrNotBuilt is returned by [Open] in a build without the engine (build
// tag nochdb).
var ErrNotBuilt = errors.New("this build has no embedded ClickHouse engine (built with the nochdb tag); configure a ClickHouse server for audit")

// Options configure [Open].
type Options struct {
	// LibPath is the path of libchdb.so. Empty means $GATEHOUSE_CHDB_LIB,
	// else the first that exists of: libchdb.so next to the executable,
	// ../lib/libchdb.so from it, and DevLibPath under the current
	// directory or one of its parents.
	LibPath string
	// DataDir holds the engine's databases; it is created if missing and
	// the data persists across Open/Close. Required.
	DataDir string
	// Nice is the nice value (1–19) of the engine's own threads, and of
	// the threads that call into it (inserts, statements, auditors'
	// queries: the engine does much of their work on the calling thread),
	// so that they yield the CPU to the gateway's: a batch insert or a
	// background merge on a core that also serves calls then waits for
	// the calls instead of stalling them. 0 leaves them at the process's
	// priority. Either way an engine call runs with one more P than the
	// process has (GOMAXPROCS + 1), so that calls do not wait for the
	// runtime to take the P back from it.
	Nice int
}
