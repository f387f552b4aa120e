package chserver_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/backendtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chserver"
)

// TestUnavailable: a server that is down makes every call fail with
// audit.ErrUnavailable, which the shipper retries.
func TestUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	b, err := chserver.Open(context.Background(), chserver.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Exec(ctx, "SELECT 1"); !errors.Is(err, audit.ErrUnavailable) {
		t.Errorf("Exec: %v, want ErrUnavailable", err)
	}
	if err := b.Insert(ctx, "audit_events", backendtest.Events("n", time.Now(), 2, 0), "t"); !errors.Is(err, audit.ErrUnavailable) {
		t.Errorf("Insert: %v, want ErrUnavailable", err)
	}
	if _, err := b.Query(ctx, "SELECT 1", audit.QueryOptions{}); !errors.Is(err, audit.ErrUnavailable) {
		t.Errorf("Query: %v, want ErrUnavailable", err)
	}
}
