package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
)

const (
	hookSecret = "whsec-do-not-leak"
	// hookToken stands for a token some receivers put in the URL path.
	hookToken = "path-token-do-not-leak"
)

var hookNow = time.Unix(1_800_000_000, 0)

// receiver is a webhook endpoint that records deliveries and answers with
// status.
type receiver struct {
	srv    *httptest.Server
	status int
	mu     sync.Mutex
	got    []delivered
}

type delivered struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, status int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivered{req.Header.Clone(), body})
		r.mu.Unlock()
		if r.status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hook/" + hookToken }

func (r *receiver) deliveries() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func notifier(hooks map[string][]Webhook) *WebhookNotifier {
	return &WebhookNotifier{
		Lookup: func(_ context.Context, group string) ([]Webhook, error) {
			if group == "broken" {
				return nil, errors.New("store unavailable")
			}
			return hooks[group], nil
		},
		Now: func() time.Time { return hookNow },
	}
}

func notification(groups ...string) Notification {
	return Notification{Kind: NotificationRequested, ApprovalID: "appr-1", Agent: "deploy-bot", VirtualServer: "infra",
		Tool: "delete_bucket", Arguments: json.RawMessage(`{"bucket":"prod-logs"}`), Reasons: []string{"rule:destructive"},
		Rule: "destructive", Groups: groups, Quorum: 2, Approvers: []string{"alice"}, Deadline: hookNow.Add(time.Hour)}
}

func TestWebhookNotifierDelivers(t *testing.T) {
	t.Parallel()
	signed, unsigned, oncall := newReceiver(t, http.StatusOK), newReceiver(t, http.StatusNoContent), newReceiver(t, http.StatusAccepted)
	wn := notifier(map[string][]Webhook{
		"secops": {{Group: "secops", URL: signed.url(), Secret: hookSecret}, {Group: "secops", URL: unsigned.url()}},
		"oncall": {{Group: "oncall", URL: oncall.url(), Secret: "other"}},
	})
	if err := wn.Notify(t.Context(), notification("secops", "oncall", "nobody")); err != nil {
		t.Fatalf("Notify: %v", err)
	}

	for _, tc := range []struct {
		name   string
		r      *receiver
		group  string
		secret string
	}{
		{"signed", signed, "secops", hookSecret},
		{"unsigned", unsigned, "secops", ""},
		{"other group", oncall, "oncall", "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.deliveries()
			if len(got) != 1 {
				t.Fatalf("%d deliveries, want 1", len(got))
			}
			h, body := got[0].header, got[0].body
			for name, want := range map[string]string{
				"Content-Type":  "application/json",
				HeaderEvent:     EventApprovalRequested,
				HeaderDelivery:  "appr-1/requested/" + tc.group,
				HeaderTimestamp: strconv.FormatInt(hookNow.Unix(), 10),
			} {
				if v := h.Get(name); v != want {
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
			sig := h.Get(HeaderSignature)
			switch {
			case tc.secret == "" && sig != "":
				t.Errorf("unsigned webhook got signature %q", sig)
			case tc.secret != "" && !VerifySignature(tc.secret, sig, hookNow.Unix(), body):
				t.Errorf("signature %q does not verify", sig)
			case tc.secret != "" && VerifySignature("wrong", sig, hookNow.Unix(), body):
				t.Error("signature verifies with the wrong secret")
			}
			var p WebhookPayload
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			a := p.Approval
			if p.Event != EventApprovalRequested || p.Group != tc.group || a.ID != "appr-1" || a.Agent != "deploy-bot" ||
				a.VirtualServer != "infra" || a.Tool != "delete_bucket" || string(a.Arguments) != `{"bucket":"prod-logs"}` ||
				!slices.Equal(a.Reasons, []string{"rule:destructive"}) || a.Rule != "destructive" || a.Quorum != 2 ||
				!slices.Equal(a.Approvers, []string{"alice"}) || !a.Deadline.Equal(hookNow.Add(time.Hour)) {
				t.Errorf("payload = %s", body)
			}
			if strings.Contains(string(body), tc.secret) && tc.secret != "" {
				t.Error("payload contains the secret")
			}
		})
	}
}

func TestWebhookPayloadKeys(t *testing.T) {
	t.Parallel()
	// The payload's JSON names are an API: receivers parse them.
	b, err := json.Marshal(webhookPayload(EventApprovalEscalated, "oncall", Notification{}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"approval.escalated","group":"oncall","approval":{"id":"","agent":"","virtualServer":"","tool":"",` +
		`"arguments":null,"reasons":[],"rule":"","quorum":0,"approvers":[],"deadline":"0001-01-01T00:00:00Z"}}`
	if string(b) != want {
		t.Errorf("payload\n got %s\nwant %s", b, want)
	}
}

func TestWebhookNotifierErrors(t *testing.T) {
	t.Parallel()
	closedURL := "http://" + refusingAddr(t) + "/hook/" + hookToken
	tests := []struct {
		name      string
		urls      []string // "status:N" starts a receiver answering N
		groups    []string
		retryable bool
		want      []string // in the error message
	}{
		{"500", []string{"status:500"}, nil, true, []string{"500 Internal Server Error"}},
		{"429", []string{"status:429"}, nil, true, []string{"429"}},
		{"408", []string{"status:408"}, nil, true, []string{"408"}},
		{"400", []string{"status:400"}, nil, false, []string{"400 Bad Request", "group secops"}},
		{"404", []string{"status:404"}, nil, false, []string{"404"}},
		{"redirect", []string{"status:302"}, nil, false, []string{"302"}},
		{"connection refused", []string{closedURL}, nil, true, []string{"delivering approval.requested to 127.0.0.1:"}},
		{"invalid URL", []string{"ftp://example.com/" + hookToken}, nil, false, []string{"invalid URL"}},
		{"unparsable URL", []string{"http://exa mple.com/" + hookToken}, nil, false, []string{"invalid URL"}},
		{"rejected and unavailable", []string{"status:400", "status:503"}, nil, true, []string{"400", "503"}},
		{"all rejected", []string{"status:400", "status:404"}, nil, false, []string{"400", "404"}},
		{"lookup fails", []string{"status:200"}, []string{"broken", "secops"}, true, []string{"store unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var hooks []Webhook
			var ok *receiver // a healthy webhook next to the failing ones
			for _, u := range tt.urls {
				if code, found := strings.CutPrefix(u, "status:"); found {
					n, _ := strconv.Atoi(code)
					r := newReceiver(t, n)
					u = r.url()
					if n == http.StatusOK {
						ok = r
					}
				}
				hooks = append(hooks, Webhook{Group: "secops", URL: u, Secret: hookSecret})
			}
			if ok == nil {
				ok = newReceiver(t, http.StatusOK)
				hooks = append(hooks, Webhook{Group: "secops", URL: ok.url(), Secret: hookSecret})
			}
			groups := tt.groups
			if groups == nil {
				groups = []string{"secops"}
			}
			err := notifier(map[string][]Webhook{"secops": hooks}).Notify(t.Context(), notification(groups...))
			if err == nil {
				t.Fatal("Notify succeeded, want an error")
			}
			if n := len(ok.deliveries()); n != 1 {
				t.Errorf("healthy webhook got %d deliveries, want 1", n)
			}
			// The SDK classifies the top-level error only.
			ae, isApp := err.(*temporal.ApplicationError)
			if nonRetryable := isApp && ae.NonRetryable(); nonRetryable == tt.retryable {
				t.Errorf("error %v: non-retryable = %v, want %v", err, nonRetryable, !tt.retryable)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, hookSecret) || strings.Contains(msg, hookToken) {
				t.Errorf("error %q leaks the secret or the URL's path", msg)
			}
		})
	}
}

func TestWebhookNotifierMisconfigured(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		wn *WebhookNotifier
		n  Notification
	}{
		"no lookup":    {&WebhookNotifier{}, notification("secops")},
		"unknown kind": {notifier(nil), Notification{Kind: "closed", Groups: []string{"secops"}}},
	} {
		err := tc.wn.Notify(t.Context(), tc.n)
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || !ae.NonRetryable() {
			t.Errorf("%s: error %v, want non-retryable", name, err)
		}
	}
}

func TestSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"approval.requested"}`)
	// Computed independently: printf '1800000000.{"event":"approval.requested"}' | openssl dgst -sha256 -hmac s3cret
	const want = "sha256=6fcf5be686f6cb02198a07e5e0b5ac794407c3419315f58f023e19d60111b8fb"
	got := Sign("s3cret", 1_800_000_000, body)
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if !VerifySignature("s3cret", got, 1_800_000_000, body) {
		t.Error("signature does not verify")
	}
	for name, ok := range map[string]bool{
		"other body":      VerifySignature("s3cret", got, 1_800_000_000, []byte(`{}`)),
		"other timestamp": VerifySignature("s3cret", got, 1_800_000_001, body),
		"other secret":    VerifySignature("s3cret2", got, 1_800_000_000, body),
		"no prefix":       VerifySignature("s3cret", strings.TrimPrefix(got, "sha256="), 1_800_000_000, body),
		"empty":           VerifySignature("s3cret", "", 1_800_000_000, body),
	} {
		if ok {
			t.Errorf("%s: signature verifies", name)
		}
	}
}

func TestNotifyApproversActivityKeepsRetryBehaviour(t *testing.T) {
	t.Parallel()
	rejected := temporal.NewNonRetryableApplicationError("rejected", ErrTypeWebhookRejected, nil)
	for name, tc := range map[string]struct {
		err          error
		nonRetryable bool
	}{
		"application error": {rejected, true},
		"other error":       {errors.New("boom"), false},
	} {
		a := &Activities{Notifier: notifyFunc(func(Notification) error { return tc.err })}
		err := a.NotifyApprovers(t.Context(), notification("secops"))
		ae, isApp := err.(*temporal.ApplicationError)
		if got := isApp && ae.NonRetryable(); got != tc.nonRetryable {
			t.Errorf("%s: error %v, non-retryable = %v, want %v", name, err, got, tc.nonRetryable)
		}
	}
	if err := (&Activities{}).NotifyApprovers(t.Context(), notification("secops")); err != nil {
		t.Errorf("without notifier: %v", err)
	}
}

// refusingAddr returns a loopback address whose connections are refused
// for the whole test: a port bound by a socket that does not listen. (A
// server's closed port was taken by a parallel test's receiver, which
// answered 400 where the test wanted connection refused.)
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
