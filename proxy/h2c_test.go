package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingRT answers requests by method: ok lists the methods it
// answers (204), anything else fails as a connection would.
type recordingRT struct {
	name string
	mu   sync.Mutex
	ok   map[string]bool
	got  []string
}

func (rt *recordingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.got = append(rt.got, r.Method+" "+r.URL.String())
	if !rt.ok[r.Method] {
		return nil, errors.New(rt.name + ": connection refused")
	}
	return &http.Response{StatusCode: http.StatusNoContent, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func (rt *recordingRT) take() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	got := rt.got
	rt.got = nil
	return got
}

// TestSplitTransportProbe: while neither protocol answers the probe,
// calls go over h2c and the probe waits probeBackoff before it asks
// again; once HTTP/1.1 answers, calls go over it; the probe never carries
// the request's query (where secrets may be injected).
func TestSplitTransportProbe(t *testing.T) {
	streams := &recordingRT{name: "h2c", ok: map[string]bool{http.MethodGet: true}}
	calls := &recordingRT{name: "http1", ok: map[string]bool{}}
	st := &splitTransport{streams: streams, calls: calls, log: slog.New(slog.DiscardHandler)}
	post := func() {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://up.example/mcp?token=secret", strings.NewReader("{}"))
		if resp, err := st.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}

	post() // down: both probes fail, the call goes over h2c
	if got, want := strings.Join(calls.take(), "; "), "OPTIONS http://up.example/mcp"; got != want {
		t.Errorf("HTTP/1.1 saw %q, want only the probe %q", got, want)
	}
	if got, want := strings.Join(streams.take(), "; "), "OPTIONS http://up.example/mcp; POST http://up.example/mcp?token=secret"; got != want {
		t.Errorf("h2c saw %q, want %q", got, want)
	}
	if st.mode.Load() != callsUnknown {
		t.Fatalf("mode = %d after unanswered probes, want unknown", st.mode.Load())
	}

	calls.mu.Lock()
	calls.ok[http.MethodOptions], calls.ok[http.MethodPost] = true, true
	calls.mu.Unlock()
	post() // within the backoff: no probe, h2c
	if got := calls.take(); len(got) != 0 {
		t.Errorf("HTTP/1.1 saw %q within the backoff, want nothing", got)
	}
	if got := streams.take(); len(got) != 1 || !strings.HasPrefix(got[0], "POST ") {
		t.Errorf("h2c saw %q within the backoff, want the call", got)
	}

	st.probing.Lock()
	st.nextProbe = time.Now().Add(-time.Second) // the backoff is over
	st.probing.Unlock()
	post()
	post()
	if got, want := strings.Join(calls.take(), "; "), "OPTIONS http://up.example/mcp; POST http://up.example/mcp?token=secret; POST http://up.example/mcp?token=secret"; got != want {
		t.Errorf("HTTP/1.1 saw %q, want one probe and both calls: %q", got, want)
	}
	if got := streams.take(); len(got) != 0 {
		t.Errorf("h2c saw %q once HTTP/1.1 answered, want nothing", got)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://up.example/mcp", nil)
	if _, err := st.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if got := streams.take(); len(got) != 1 || !strings.HasPrefix(got[0], "GET ") {
		t.Errorf("h2c saw %q, want the event stream's GET", got)
	}
}
