package cli

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// bodyReadDeadline bounds reading a request's body to d (limits.
// body_read_timeout). The server's ReadTimeout cannot do it: it also
// bounds the connection while the handler runs, and on HTTP/1.1 the
// server's wait for the client to hang up would then end every long
// answer (an event stream, a call held for approval) at d. So the
// deadline is set on the request's connection or stream when the handler
// starts and cleared once the body has been read to its end. A client
// that stops sending mid-body gets its read failing at d; one the
// handler answers without reading its body (401 without credentials)
// has its connection closed once the server's drain of the body times
// out, instead of held for good.
func bodyReadDeadline(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			h.ServeHTTP(w, r) // a writer without deadlines (none of net/http's)
			return
		}
		body := r.Body
		r.Body = &deadlineBody{ReadCloser: body, clear: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		// The server drains an unread body after the handler through the
		// request's Body field, by its own type: put its body back.
		defer func() { r.Body = body }()
		h.ServeHTTP(w, r)
	})
}

// deadlineBody clears the read deadline when the body hits its end.
type deadlineBody struct {
	io.ReadCloser
	once  sync.Once
	clear func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.clear)
	}
	return n, err
}
