package cli

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugFlags serve Go's profiling endpoints (net/http/pprof) on a listener
// of their own, never on the agents' port: profiles expose memory
// contents, so the address should be loopback or otherwise protected.
type debugFlags struct{ listen string }

func (d *debugFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.listen, "debug-listen", "", "serve Go profiles (/debug/pprof/) on this separate address, e.g. 127.0.0.1:6060 (default: off); keep it on loopback")
}

// start listens when --debug-listen is set and returns the function that
// stops the server.
func (d *debugFlags) start(log *slog.Logger) (stop func(), err error) {
	if d.listen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", d.listen)
	if err != nil {
		return nil, fmt.Errorf("--debug-listen %s: %w", d.listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener stopped", "err", err)
		}
	}()
	log.Info("serving Go profiles", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return func() { srv.Close() }, nil
}
