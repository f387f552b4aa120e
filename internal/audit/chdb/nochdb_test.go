//go:build nochdb

package chdb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb"
)

func TestNotBuilt(t *testing.T) {
	_, err := chdb.Open(context.Background(), chdb.Options{DataDir: t.TempDir()})
	if !errors.Is(err, chdb.ErrNotBuilt) {
		t.Fatalf("Open = %v, want ErrNotBuilt", err)
	}
}
