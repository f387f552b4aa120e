package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profile collects the gateway's profiles over one scenario, from its
// --debug-listen endpoint: a CPU profile of the measured window (taken
// after warmup, for duration) and, after it, the allocation profile since
// start and the heap in use. The channel yields once, when all are written
// to dir as gateway-{cpu,allocs,heap}.pprof and, with trace, the window's
// execution trace as gateway.trace (go tool trace).
func (g *gateway) profile(ctx context.Context, dir string, warmup, duration time.Duration, trace bool) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("profile dir: %w", err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(warmup):
			}
			secs := max(1, int(duration.Round(time.Second)/time.Second))
			// The execution trace covers the same window as the CPU profile:
			// it shows where a slow call waited (collections, the scheduler,
			// the audit engine's threads), which a CPU profile cannot.
			traced := make(chan error, 1)
			go func() {
				if !trace {
					traced <- nil
					return
				}
				traced <- g.fetchProfile(ctx, fmt.Sprintf("trace?seconds=%d", secs), filepath.Join(dir, "gateway.trace"))
			}()
			for _, p := range []struct{ name, query string }{
				{"cpu", fmt.Sprintf("profile?seconds=%d", secs)},
				{"allocs", "allocs"},
				{"heap", "heap?gc=1"},
			} {
				if err := g.fetchProfile(ctx, p.query, filepath.Join(dir, "gateway-"+p.name+".pprof")); err != nil {
					return fmt.Errorf("%s profile: %w", p.name, err)
				}
			}
			if err := <-traced; err != nil {
				return fmt.Errorf("execution trace: %w", err)
			}
			return nil
		}()
	}()
	return done
}

func (g *gateway) fetchProfile(ctx context.Context, query, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.debugAddr+"/debug/pprof/"+query, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
