package store

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// ImportAdminToken stores an admin token the operator made beforehand (e.g.
// with `gatehouse keygen --admin`, kept in a secret store and handed to
// `gatehouse serve --admin-token-file`). Only its hash and prefix are kept.
func ImportAdminToken(ctx context.Context, client *ent.Client, name string, roles []string, token string) (*ent.AdminToken, error) {
	t, err := client.AdminToken.Create().
		SetName(name).
		SetRoles(roles).
		SetTokenHash(identity.HashKey(token)).
		SetPrefix(identity.Prefix(token)).
		Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("import admin token: %w", err)
	}
	return t, nil
}
