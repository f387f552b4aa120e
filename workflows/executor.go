package workflows

import (
	"context"
	"encoding/json"
	"sync"
)

// UpstreamFunc calls an upstream tool.
type UpstreamFunc func(ctx context.Context, req ToolCallRequest) (json.RawMessage, error)

// MemoryExecutor is an [Executor] that remembers outcomes in memory. It keeps
// the at-most-once promise only within one process; it serves tests and
// single-process development.
type MemoryExecutor struct {
	upstream UpstreamFunc

	mu    sync.Mutex
	calls map[string]*memoryCall
}

type memoryCall struct {
	done chan struct{}
	res  json.RawMessage
	err  error
}

var _ Executor = (*MemoryExecutor)(nil)

// NewMemoryExecutor returns a [MemoryExecutor] calling upstream.
func NewMemoryExecutor(upstream UpstreamFunc) *MemoryExecutor {
	return &MemoryExecutor{upstream: upstream, calls: make(map[string]*memoryCall)}
}

// Call calls the upstream the first time it sees key and returns the stored
// outcome afterwards. A concurrent call with the same key waits for the first.
func (e *MemoryExecutor) Call(ctx context.Context, key string, req ToolCallRequest) (json.RawMessage, error) {
	e.mu.Lock()
	c, seen := e.calls[key]
	if !seen {
		c = &memoryCall{done: make(chan struct{})}
		e.calls[key] = c
	}
	e.mu.Unlock()

	if seen {
		select {
		case <-c.done:
			return c.res, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// A failure, including the end of ctx, is stored like a result: the
	// upstream may have acted on the call.
	c.res, c.err = e.upstream(ctx, req)
	if c.err != nil {
		c.err = &UpstreamError{Err: c.err}
	}
	close(c.done)
	return c.res, c.err
}
