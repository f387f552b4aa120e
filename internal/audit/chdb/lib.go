//go:build !nochdb

package chdb

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// lib is the loaded libchdb.so: the C functions this package calls, bound
// with purego (no cgo). The signatures follow chdb.h of chDB 26.7
// (programs/local/chdb.h in chdb-io/chdb-core):
//
//	chdb_connection *chdb_connect(int argc, char **argv);
//	void chdb_close_conn(chdb_connection *conn);
//	chdb_result *chdb_query_n(chdb_connection conn, const char *query, size_t query_len,
//	                          const char *format, size_t format_len);
//	void chdb_destroy_query_result(chdb_result *result);
//	char *chdb_result_buffer(chdb_result *result);
//	size_t chdb_result_length(chdb_result *result);
//	const char *chdb_result_error(chdb_result *result);
//	uint64_t chdb_result_rows_written(chdb_result *result);
//	chdb_insert_stream chdb_stream_insert_n(chdb_connection conn, const char *query, size_t query_len,
//	                                        const char *format, size_t format_len);
//	chdb_state chdb_stream_append(chdb_insert_stream stream, const void *data, size_t len);
//	chdb_result *chdb_stream_done(chdb_insert_stream stream);
//	void chdb_stream_cancel_insert(chdb_insert_stream stream);
//	const char *chdb_stream_insert_error(chdb_insert_stream stream);
//	void chdb_destroy_insert_stream(chdb_insert_stream stream);
//	chdb_state chdb_classify_query_n(chdb_connection conn, const char *sql, size_t sql_len,
//	                                 const char *target_database, size_t target_database_len,
//	                                 chdb_query_analysis_v1 *out);
//	void chdb_set_signal_handlers_enabled(int enabled);
//	const char *chdb_version(void);
//
// chdb_connection is a pointer to an opaque struct: connect returns a
// pointer to one, the query functions take the pointer itself.
type lib struct {
	path string

	connect         func(argc int32, argv []*byte) *unsafe.Pointer
	closeConn       func(conn *unsafe.Pointer)
	queryN          func(conn unsafe.Pointer, query []byte, queryLen uintptr, format []byte, formatLen uintptr) unsafe.Pointer
	destroyResult   func(res unsafe.Pointer)
	resultBuffer    func(res unsafe.Pointer) *byte
	resultLength    func(res unsafe.Pointer) uintptr
	resultError     func(res unsafe.Pointer) *byte
	resultRowsWrite func(res unsafe.Pointer) uint64
	streamInsertN   func(conn unsafe.Pointer, query []byte, queryLen uintptr, format []byte, formatLen uintptr) unsafe.Pointer
	streamAppend    func(stream unsafe.Pointer, data []byte, n uintptr) int32
	streamDone      func(stream unsafe.Pointer) unsafe.Pointer
	streamCancel    func(stream unsafe.Pointer)
	streamError     func(stream unsafe.Pointer) *byte
	streamDestroy   func(stream unsafe.Pointer)
	classifyN       func(conn unsafe.Pointer, sql []byte, sqlLen uintptr, db []byte, dbLen uintptr, out *queryAnalysis) int32
	setSignals      func(enabled int32)
	version         func() *byte
}

// queryAnalysis is chdb_query_analysis_v1.
type queryAnalysis struct {
	StructSize     uint32
	StatementCount uint32
	Flags          uint32
	QueryClass     uint32
}

// Query classes of chdb_classify_query_n.
const (
	classReadOnly = 0
)

var (
	libMu     sync.Mutex
	loadedLib *lib // the first library loaded; a process loads one
)

// loadLib dlopens the library at path once per process. chDB keeps one
// engine per process, so a second, different path is refused.
func loadLib(path string) (*lib, error) {
	libMu.Lock()
	defer libMu.Unlock()
	if loadedLib != nil {
		if loadedLib.path != path {
			return nil, fmt.Errorf("loading %s: this process already loaded the embedded engine from %s", path, loadedLib.path)
		}
		return loadedLib, nil
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, err
	}
	l := &lib{path: path}
	syms := []struct {
		fptr any
		name string
	}{
		{&l.connect, "chdb_connect"},
		{&l.closeConn, "chdb_close_conn"},
		{&l.queryN, "chdb_query_n"},
		{&l.destroyResult, "chdb_destroy_query_result"},
		{&l.resultBuffer, "chdb_result_buffer"},
		{&l.resultLength, "chdb_result_length"},
		{&l.resultError, "chdb_result_error"},
		{&l.resultRowsWrite, "chdb_result_rows_written"},
		{&l.streamInsertN, "chdb_stream_insert_n"},
		{&l.streamAppend, "chdb_stream_append"},
		{&l.streamDone, "chdb_stream_done"},
		{&l.streamCancel, "chdb_stream_cancel_insert"},
		{&l.streamError, "chdb_stream_insert_error"},
		{&l.streamDestroy, "chdb_destroy_insert_stream"},
		{&l.classifyN, "chdb_classify_query_n"},
		{&l.setSignals, "chdb_set_signal_handlers_enabled"},
		{&l.version, "chdb_version"},
	}
	for _, s := range syms {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil {
			_ = purego.Dlclose(h)
			return nil, fmt.Errorf("%s lacks %s (it needs chDB 26.7 or newer): %w", path, s.name, err)
		}
		purego.RegisterFunc(s.fptr, addr)
	}
	// The Go runtime owns the process's signals (it relies on SIGSEGV,
	// SIGURG, SIGPROF, ...): chDB must not install handlers of its own.
	l.setSignals(0)
	loadedLib = l
	return l, nil
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// libPath resolves [Options.LibPath] as documented there. When no
// candidate exists it returns the first, for the error message.
func (o Options) libPath() (path, looked string) {
	if o.LibPath != "" {
		return o.LibPath, o.LibPath
	}
	if p := os.Getenv(EnvLib); p != "" {
		return p, p + " ($" + EnvLib + ")"
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		candidates = append(candidates, filepath.Join(dir, "libchdb.so"), filepath.Clean(filepath.Join(dir, "..", "lib", "libchdb.so")))
	}
	wd, _ := os.Getwd()
	if wd != "" {
		for dir := wd; ; dir = filepath.Dir(dir) {
			candidates = append(candidates, filepath.Join(dir, DevLibPath))
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, c
		}
	}
	if len(candidates) == 0 {
		return "libchdb.so", "libchdb.so"
	}
	looked = strings.Join(candidates[:min(2, len(candidates))], ", ")
	if wd != "" {
		looked += ", and " + DevLibPath + " in " + wd + " and each directory above it"
	}
	return candidates[0], looked
}
