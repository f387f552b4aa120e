package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/internal/gctune"
)

// serveReverseProxy runs the reverseproxy scenarios' proxy: the standard
// library's reverse proxy, which passes each request's bytes on to
// upstream over cleartext HTTP/2 (as the gateway does), flushing event
// streams as they come. It is the least a Go proxy hop can cost here, a
// baseline for what the gateway adds, and runs in a child process of the
// harness (itself, with -serve-reverse-proxy) pinned where the gateway
// would be. cal, when set, makes it cost what a gateway hop costs in CPU
// or in collection (see rpCalibration). It returns only on failure.
func serveReverseProxy(addr, upstream string, cal rpCalibration) error {
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
	h, heap := cal.wrap(rp)
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	err = srv.ListenAndServe()
	runtime.KeepAlive(heap) // live as long as the proxy
	return err
}

// startReverseProxy runs serveReverseProxy in a child process on the
// gateway's cores and waits until it listens; the returned URL is
// upstream's path on the proxy.
func startReverseProxy(ctx context.Context, ps *procs, upstream string, cal rpCalibration) (*proc, string, error) {
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
	args := []string{"-serve-reverse-proxy", addr, "-reverse-proxy-upstream", upstream}
	if cal.work > 0 {
		args = append(args, "-reverse-proxy-work", cal.work.String())
	}
	if cal.heapMiB > 0 {
		args = append(args, "-reverse-proxy-heap", strconv.Itoa(cal.heapMiB))
	}
	p, err := ps.start("gateway", self, args...)
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
func reverseProxyLoad(ctx context.Context, ps *procs, upstream string, cal rpCalibration, t target, load func(string, target) (*result, error)) (*result, error) {
	p, url, err := startReverseProxy(ctx, ps, upstream, cal)
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

// rpCalibration makes the reverse proxy cost what a gateway hop costs in one
// respect at a time, to find what a hop's tail comes from: CPU per call
// (work) or the collector's mark phases over a live heap (heapMiB).
type rpCalibration struct {
	work    time.Duration
	heapMiB int
}

func (c rpCalibration) String() string {
	var parts []string
	if c.work > 0 {
		parts = append(parts, fmt.Sprintf("spins %s per call", c.work))
	}
	if c.heapMiB > 0 {
		parts = append(parts, fmt.Sprintf("holds %d MiB of live heap, collector tuned as the gateway's", c.heapMiB))
	}
	return strings.Join(parts, ", ")
}

// wrap applies the calibration to h, the proxy: it builds the live heap,
// which the caller keeps alive, and starts the collector's tuner now, and
// spins before each POST.
func (c rpCalibration) wrap(h http.Handler) (http.Handler, []*heapNode) {
	var heap []*heapNode
	if c.heapMiB > 0 {
		heap = buildHeap(c.heapMiB << 20)
		gctune.Start(slog.New(slog.DiscardHandler))
	}
	if c.work <= 0 {
		return h, heap
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			for end := time.Now().Add(c.work); time.Now().Before(end); {
			}
		}
		h.ServeHTTP(w, r)
	}), heap
}

// heapNode is all pointers, each to a random node, so that marking the
// heap chases pointers across it as marking the gateway's maps and
// strings does.
type heapNode struct{ p [6]*heapNode }

func buildHeap(bytes int) []*heapNode {
	nodes := make([]*heapNode, bytes/int(unsafe.Sizeof(heapNode{})))
	for i := range nodes {
		nodes[i] = new(heapNode)
	}
	for _, n := range nodes {
		for j := range n.p {
			n.p[j] = nodes[rand.IntN(len(nodes))]
		}
	}
	return nodes
}
