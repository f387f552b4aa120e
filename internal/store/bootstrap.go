package store

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/ent"
)

// ImportAdminToken stores an admin token the operator made beforehand (e.g.
// with `gatehouse keygen --admin`, kept in a secret store and handed to
// `gatehouse serve --admin-token-file`). Only its hash and prefix are kept.
func ImportAdminToken(ctx context.Context, client *ent.Client, name string, roles []string, token string) (*ent.AdminToken, error) {
	t, err := storeAdminToken(ctx, client, name, roles, nil, token)
	if err != nil {
		return nil, fmt.Errorf("import admin token: %w", err)
	}
	return t, nil
}
