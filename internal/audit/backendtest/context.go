package backendtest

import (
	"context"
	"time"
)

// TimerlessDeadline returns a context with deadline d whose timer never
// fires: Err stays nil after d, as a real context's does for a moment on a
// busy machine, so code that must notice a passed deadline itself can be
// tested deterministically.
func TimerlessDeadline(d time.Time) context.Context {
	return timerless{Context: context.Background(), deadline: d}
}

type timerless struct {
	context.Context
	deadline time.Time
}

func (c timerless) Deadline() (time.Time, bool) { return c.deadline, true }
