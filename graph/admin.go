package graph

import (
	"context"
	"slices"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/admintoken"
)

// keepAnAdmin refuses a change (its transaction then rolls back) that
// leaves no unexpired admin token with the admin role: nobody could change
// the configuration through the API any more.
func keepAnAdmin(ctx context.Context, client *ent.Client) error {
	tokens, err := client.AdminToken.Query().
		Where(admintoken.Or(admintoken.ExpiresAtIsNil(), admintoken.ExpiresAtGT(time.Now()))).
		All(ctx)
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if slices.Contains(t.Roles, "admin") {
			return nil
		}
	}
	e := gqlerror.Errorf("this would leave no admin token with the admin role: create another one first")
	e.Extensions = map[string]any{"code": codeConflict}
	return e
}
