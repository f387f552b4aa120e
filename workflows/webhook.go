package workflows

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"
)

// Webhook is an endpoint that receives an approver group's notifications.
type Webhook struct {
	// Group is the approver group the webhook serves.
	Group string
	// URL receives the deliveries by POST; http or https.
	URL string
	// Secret is the key of the deliveries' signature (see [Sign]). Empty
	// sends them without the [HeaderSignature] header.
	Secret string
}

// Headers of a webhook delivery, besides Content-Type: application/json.
const (
	// HeaderEvent is the event: [EventApprovalRequested] or
	// [EventApprovalEscalated].
	HeaderEvent = "X-Gatehouse-Event"
	// HeaderDelivery identifies the delivery: approval ID, notification kind
	// and group joined by "/". A retried delivery has the same identity, so
	// that receivers can drop duplicates.
	HeaderDelivery = "X-Gatehouse-Delivery"
	// HeaderTimestamp is when the delivery was sent, in Unix seconds.
	HeaderTimestamp = "X-Gatehouse-Timestamp"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// webhook's secret, of the timestamp, "." and the body (see [Sign]).
	HeaderSignature = "X-Gatehouse-Signature"
)

// Events of webhook deliveries, by [Notification].Kind.
const (
	EventApprovalRequested = "approval.requested"
	EventApprovalEscalated = "approval.escalated"
)

var webhookEvents = map[string]string{
	NotificationRequested: EventApprovalRequested,
	NotificationEscalated: EventApprovalEscalated,
}

// WebhookPayload is the JSON body of a webhook delivery.
type WebhookPayload struct {
	// Event is [EventApprovalRequested] or [EventApprovalEscalated].
	Event string `json:"event"`
	// Group is the approver group notified.
	Group    string          `json:"group"`
	Approval WebhookApproval `json:"approval"`
}

// WebhookApproval is the call awaiting approval in a [WebhookPayload]; see
// [Notification] for its fields.
type WebhookApproval struct {
	ID            string          `json:"id"`
	Agent         string          `json:"agent"`
	VirtualServer string          `json:"virtualServer"`
	Tool          string          `json:"tool"`
	Arguments     json.RawMessage `json:"arguments"`
	Reasons       []string        `json:"reasons"`
	Rule          string          `json:"rule"`
	Quorum        int             `json:"quorum"`
	Approvers     []string        `json:"approvers"`
	Deadline      time.Time       `json:"deadline"`
}

// Types of the [*temporal.ApplicationError]s of [WebhookNotifier].
const (
	// ErrTypeWebhookUnavailable is a delivery that failed for now (network
	// error, 408, 429, 5xx); it is retried.
	ErrTypeWebhookUnavailable = "WebhookUnavailable"
	// ErrTypeWebhookRejected is a delivery the receiver refused, or a
	// webhook that cannot work (invalid URL); it is not retried.
	ErrTypeWebhookRejected = "WebhookRejected"
)

// WebhookNotifier is a [Notifier] that POSTs a signed [WebhookPayload] to
// the webhooks of each group notified.
//
// Deliveries run concurrently, and one failing does not stop the others.
// Notify returns them all joined: a non-retryable
// [*temporal.ApplicationError] if none can succeed on a retry, else a
// retryable error, and the activity's retry then delivers again to every
// webhook (receivers drop duplicates by [HeaderDelivery]). Errors name a
// webhook by its URL's host, never by its full URL (which may carry a
// token) nor its secret.
type WebhookNotifier struct {
	// Lookup returns the webhooks of an approver group. Required.
	Lookup func(ctx context.Context, group string) ([]Webhook, error)
	// Client sends the deliveries. Nil means a client with a 10s timeout
	// that does not follow redirects.
	Client *http.Client
	// Now is the clock of [HeaderTimestamp]. Nil means [time.Now].
	Now func() time.Time
}

var _ Notifier = (*WebhookNotifier)(nil)

var defaultWebhookClient = &http.Client{
	Timeout: 10 * time.Second,
	// A redirect is a misconfigured URL; following it would also turn the
	// POST into a GET.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Notify delivers n to the webhooks of each of n.Groups.
func (wn *WebhookNotifier) Notify(ctx context.Context, n Notification) error {
	event, ok := webhookEvents[n.Kind]
	if !ok {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("notifying approvers: unknown notification kind %q", n.Kind), ErrTypeWebhookRejected, nil)
	}
	if wn.Lookup == nil {
		return temporal.NewNonRetryableApplicationError(
			"notifying approvers: no webhook lookup configured", ErrTypeWebhookRejected, nil)
	}
	var (
		deliveries []delivery
		errs       []error
	)
	for _, g := range n.Groups {
		hooks, err := wn.Lookup(ctx, g)
		if err != nil {
			errs = append(errs, fmt.Errorf("looking up the webhooks of group %s: %w", g, err))
			continue
		}
		if len(hooks) == 0 {
			continue
		}
		body, err := json.Marshal(webhookPayload(event, g, n))
		if err != nil { // only invalid Arguments
			errs = append(errs, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("encoding the notification of %s: %v", n.ApprovalID, err), ErrTypeWebhookRejected, nil))
			continue
		}
		for _, h := range hooks {
			deliveries = append(deliveries, delivery{event: event, id: n.ApprovalID + "/" + n.Kind + "/" + g,
				group: g, body: body, hook: h})
		}
	}

	c := wn.Client
	if c == nil {
		c = defaultWebhookClient
	}
	results := make([]error, len(deliveries))
	var wg sync.WaitGroup
	for i, d := range deliveries {
		wg.Go(func() {
			results[i] = wn.deliver(ctx, c, d)
		})
	}
	wg.Wait()
	for _, err := range results {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return joinDeliveryErrors(errs)
}

func webhookPayload(event, group string, n Notification) WebhookPayload {
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return WebhookPayload{Event: event, Group: group, Approval: WebhookApproval{
		ID: n.ApprovalID, Agent: n.Agent, VirtualServer: n.VirtualServer, Tool: n.Tool,
		Arguments: n.Arguments, Reasons: nonNil(n.Reasons), Rule: n.Rule, Quorum: n.Quorum,
		Approvers: nonNil(n.Approvers), Deadline: n.Deadline,
	}}
}

// delivery is one POST of a notification.
type delivery struct {
	event, id, group string
	body             []byte
	hook             Webhook
}

// deliver POSTs d and classifies the outcome.
func (wn *WebhookNotifier) deliver(ctx context.Context, c *http.Client, d delivery) error {
	event, group, h := d.event, d.group, d.hook
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The parse error quotes the URL: leave it out.
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("a webhook of group %s has an invalid URL; ask an admin to fix it", group), ErrTypeWebhookRejected, nil)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(d.body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("building the delivery to %s: invalid request", u.Host), ErrTypeWebhookRejected, nil)
	}
	now := time.Now
	if wn.Now != nil {
		now = wn.Now
	}
	ts := now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEvent, event)
	req.Header.Set(HeaderDelivery, d.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if h.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(h.Secret, ts, d.body))
	}

	resp, err := c.Do(req)
	if err != nil {
		// The *url.Error names the full URL: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return temporal.NewApplicationError(
			fmt.Sprintf("delivering %s to %s: %v", event, u.Host, err), ErrTypeWebhookUnavailable)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused

	code := resp.StatusCode
	status := strconv.Itoa(code) + " " + http.StatusText(code)
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return temporal.NewApplicationError(
			fmt.Sprintf("delivering %s to %s: %s", event, u.Host, status), ErrTypeWebhookUnavailable)
	default:
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("delivering %s to %s: rejected with %s; ask an admin to check the webhook of group %s",
				event, u.Host, status, group), ErrTypeWebhookRejected, nil)
	}
}

// joinDeliveryErrors joins errs into one error that a retry can fix, or, if
// none of errs can be fixed by a retry, into a non-retryable
// [*temporal.ApplicationError] (the SDK reads only the top-level error).
func joinDeliveryErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	joined := errors.Join(errs...)
	for _, err := range errs {
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || !ae.NonRetryable() {
			return joined
		}
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("notifying approvers: all %d failed deliveries were rejected", len(errs)), ErrTypeWebhookRejected, joined)
}

// Sign returns the value of [HeaderSignature] for a delivery of body at
// timestamp (Unix seconds): "sha256=" and the hex HMAC-SHA256, keyed with
// secret, of the decimal timestamp, "." and body.
func Sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports, in constant time, whether header is the
// [HeaderSignature] of a delivery of body at timestamp signed with secret.
// Receivers should also reject timestamps far from their clock (say, more
// than five minutes), so that a captured delivery cannot be replayed later.
func VerifySignature(secret, header string, timestamp int64, body []byte) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, timestamp, body)))
}
