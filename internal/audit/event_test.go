package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/backendtest"
)

func TestExecutionLimit(t *testing.T) {
	got, err := audit.QueryOptions{Timeout: 1500 * time.Microsecond}.ExecutionLimit(context.Background())
	if err != nil || got != (audit.ExecutionLimit{Timeout: 2 * time.Millisecond}) || got.Setting() != "0.002" {
		t.Errorf("Timeout 1.5ms: %+v, %v; want 2ms rounded up, not from a deadline", got, err)
	}
	if got, err := (audit.QueryOptions{}).ExecutionLimit(context.Background()); err != nil || got != (audit.ExecutionLimit{}) || got.Setting() != "" {
		t.Errorf("no timeout, no deadline: %+v, %v; want none", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	got, err = audit.QueryOptions{Timeout: time.Hour}.ExecutionLimit(ctx)
	if err != nil || got.Timeout <= 0 || got.Timeout > 250*time.Millisecond || got.Timeout%time.Millisecond != 0 || !got.FromDeadline {
		t.Errorf("deadline in 250ms: %+v, %v; want at most 250ms in whole milliseconds, from the deadline", got, err)
	}
	got, err = audit.QueryOptions{Timeout: time.Millisecond}.ExecutionLimit(ctx)
	if err != nil || got != (audit.ExecutionLimit{Timeout: time.Millisecond}) {
		t.Errorf("Timeout 1ms, deadline in 250ms: %+v, %v; want 1ms, not from the deadline", got, err)
	}
	past := backendtest.TimerlessDeadline(time.Now().Add(-time.Millisecond))
	if _, err := (audit.QueryOptions{}).ExecutionLimit(past); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("passed deadline: %v, want context.DeadlineExceeded", err)
	}
}

// TestCause: a query the engine stopped at a limit taken from the
// context's deadline failed because of that deadline, even when the
// engine's clock called it before Go's does.
func TestCause(t *testing.T) {
	ahead := backendtest.TimerlessDeadline(time.Now().Add(time.Hour))
	fromDeadline := audit.ExecutionLimit{Timeout: time.Hour, FromDeadline: true}
	fromOptions := audit.ExecutionLimit{Timeout: time.Second}
	if err := fromDeadline.Cause(ahead, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("engine timeout at the deadline's limit: %v, want context.DeadlineExceeded", err)
	}
	if err := fromDeadline.Cause(ahead, false); err != nil {
		t.Errorf("other failure, deadline ahead: %v, want nil", err)
	}
	if err := fromOptions.Cause(ahead, true); err != nil {
		t.Errorf("engine timeout at the options' limit: %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fromOptions.Cause(ctx, false); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
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
