package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

// serveReverseProxy runs the reverseproxy scenarios' proxy: the standard
// library's reverse proxy, which passes each request's bytes on to
// upstream over cleartext HTTP/2 (as the gateway does), flushing event
// streams as they come. It is the least a Go proxy hop can cost here, a
// baseline for what the gateway adds, and runs in a child process of the
// harness (itself, with -serve-reverse-proxy) pinned where the gateway
// would be. It returns only on failure.
func serveReverseProxy(addr, upstream string) error {
	up, err := url.Parse(upstream)
	if err != nil {
		return fmt.Errorf("reverse proxy upstream %q: %w", upstream, err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1000, IdleConnTimeout: 90 * time.Second}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = up.Scheme, up.Host, up.Host
		},
		Transport:     tr,
		FlushInterval: -1,
	}
	srv := &http.Server{Addr: addr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// startReverseProxy runs serveReverseProxy in a child process on the
// gateway's cores and waits until it listens; the returned URL is
// upstream's path on the proxy.
func startReverseProxy(ctx context.Context, ps *procs, upstream string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("reverse proxy: finding the harness's executable: %w", err)
	}
	up, err := url.Parse(upstream)
	if err != nil {
		return nil, "", fmt.Errorf("reverse proxy upstream %q: %w", upstream, err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := ps.start("gateway", self, "-serve-reverse-proxy", addr, "-reverse-proxy-upstream", upstream)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, p, addr); err != nil {
		ps.stop(p)
		return nil, "", fmt.Errorf("reverse proxy: %w", err)
	}
	return p, "http://" + addr + up.Path, nil
}

// reverseProxyLoad runs t through a fresh reverse proxy to upstream as
// reverseproxy@half, the proxy's CPU time and RSS measured as a
// gateway's.
func reverseProxyLoad(ctx context.Context, ps *procs, upstream string, t target, load func(string, target) (*result, error)) (*result, error) {
	p, url, err := startReverseProxy(ctx, ps, upstream)
	if err != nil {
		return nil, err
	}
	defer ps.stop(p)
	t.url, t.gw = url, p
	r, err := load("reverseproxy@half", t)
	if err != nil {
		return nil, fmt.Errorf("reverseproxy@half: %w\n%s", err, p.tail(30))
	}
	return r, nil
}
