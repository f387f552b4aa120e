package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// apiClient runs GraphQL operations in-process on the admin API handler,
// as the admin whose token it is given: the API authenticates the token
// and checks its roles exactly as for a request over HTTP.
type apiClient struct {
	h http.Handler
}

// apiError is a failed operation: the GraphQL error's code (FORBIDDEN,
// NOT_FOUND, UNAUTHENTICATED, ...) and message, and the HTTP status the
// console answers with.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// statusOf maps the API's error codes to the console's HTTP status.
func statusOf(code string) int {
	switch code {
	case "UNAUTHENTICATED":
		return http.StatusUnauthorized
	case "FORBIDDEN":
		return http.StatusForbidden
	case "NOT_FOUND":
		return http.StatusNotFound
	case "CONFLICT":
		return http.StatusConflict
	case "INVALID", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT":
		return http.StatusBadRequest
	case "UNAVAILABLE":
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadGateway
	}
}

// do runs query with vars as the admin of token and decodes its data into
// out. Any GraphQL error fails the whole operation with an *apiError (the
// first error's code and message; the rest are joined into the message).
func (a *apiClient) do(ctx context.Context, token, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return fmt.Errorf("encoding the GraphQL request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building the GraphQL request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if r := requestFrom(ctx); r != nil {
		req.RemoteAddr = r.RemoteAddr
	}
	rec := newRecorder()
	a.h.ServeHTTP(rec, req)
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &resp); err != nil {
		return fmt.Errorf("decoding the GraphQL response (HTTP %d): %w", rec.status, err)
	}
	if len(resp.Errors) > 0 {
		code, _ := resp.Errors[0].Extensions["code"].(string)
		if code == "" && rec.status == http.StatusUnauthorized {
			code = "UNAUTHENTICATED"
		}
		msgs := make([]string, len(resp.Errors))
		for i, e := range resp.Errors {
			msgs[i] = e.Message
		}
		return &apiError{Status: statusOf(code), Code: code, Message: strings.Join(msgs, "; ")}
	}
	if rec.status != http.StatusOK {
		return &apiError{Status: http.StatusBadGateway, Code: "INTERNAL", Message: fmt.Sprintf("the admin API answered HTTP %d", rec.status)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("decoding the GraphQL data: %w", err)
	}
	return nil
}

// recorder is the response writer of in-process requests.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

type requestKey struct{}

// withRequest lets in-process API requests carry the browser's address,
// for the API's logs.
func withRequest(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

func requestFrom(ctx context.Context) *http.Request {
	r, _ := ctx.Value(requestKey{}).(*http.Request)
	return r
}
