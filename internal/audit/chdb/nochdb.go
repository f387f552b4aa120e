//go:build nochdb

package chdb

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// Backend is the embedded engine; this build has none.
type Backend struct{}

var _ audit.Backend = (*Backend)(nil)

// Open fails: this build has no embedded engine.
func Open(ctx context.Context, opts Options) (*Backend, error) { return nil, ErrNotBuilt }

// Exec implements [audit.Backend].
func (b *Backend) Exec(ctx context.Context, stmt string) error { return ErrNotBuilt }

// Insert implements [audit.Backend].
func (b *Backend) Insert(ctx context.Context, table string, events []audit.Event, token string) error {
	return ErrNotBuilt
}

// Query implements [audit.Backend].
func (b *Backend) Query(ctx context.Context, query string, opts audit.QueryOptions) (*audit.Result, error) {
	return nil, ErrNotBuilt
}

// Name implements [audit.Backend].
func (b *Backend) Name() string { return "chdb:none" }

// Close implements [audit.Backend].
func (b *Backend) Close() error { return nil }
