package console

import (
	"net/http"
	"time"
)

// auditExport streams the explorer's current filter as CSV or JSONL: it
// runs the auditors' /audit/export handler in-process with the signed-in
// admin's token, so the export is exactly what GET /audit/export answers:
// same columns, same checks, same roles, offered as a download.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	if c.audit == nil {
		c.renderError(w, r, nil, http.StatusServiceUnavailable, "Export unavailable", "This gateway does not serve the audit endpoints.")
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format != "csv" {
		format = "jsonl"
	}
	f := parseAuditFilter(q, c.now())
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/audit/export?"+f.exportQuery(format).Encode(), nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.RemoteAddr = r.RemoteAddr
	c.log.Info("console audit export", "admin", s.name, "format", format, "from", f.From.Format(time.RFC3339), "to", f.To.Format(time.RFC3339))
	// The handler names the file (Content-Disposition: attachment) and
	// streams it page by page; its errors are JSON with their status.
	c.audit.ServeHTTP(w, req)
}
