package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/backendtest"
)

func TestExecutionTimeout(t *testing.T) {
	got, err := audit.QueryOptions{Timeout: 1500 * time.Microsecond}.ExecutionTimeout(context.Background())
	if err != nil || got != 2*time.Millisecond {
		t.Errorf("Timeout 1.5ms: %v, %v; want 2ms rounded up", got, err)
	}
	if got, err := (audit.QueryOptions{}).ExecutionTimeout(context.Background()); err != nil || got != 0 {
		t.Errorf("no timeout, no deadline: %v, %v; want 0", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	got, err = audit.QueryOptions{Timeout: time.Hour}.ExecutionTimeout(ctx)
	if err != nil || got <= 0 || got > 250*time.Millisecond || got%time.Millisecond != 0 {
		t.Errorf("deadline in 250ms: %v, %v; want at most 250ms in whole milliseconds", got, err)
	}
	past := backendtest.TimerlessDeadline(time.Now().Add(-time.Millisecond))
	if _, err := (audit.QueryOptions{}).ExecutionTimeout(past); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("passed deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestContextErr(t *testing.T) {
	if err := audit.ContextErr(context.Background()); err != nil {
		t.Errorf("background: %v", err)
	}
	future := backendtest.TimerlessDeadline(time.Now().Add(time.Hour))
	if err := audit.ContextErr(future); err != nil {
		t.Errorf("deadline ahead: %v", err)
	}
	past := backendtest.TimerlessDeadline(time.Now().Add(-time.Millisecond))
	if err := audit.ContextErr(past); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline passed, timer not fired: %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := audit.ContextErr(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
