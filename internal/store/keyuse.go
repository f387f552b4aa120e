package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/apikey"
)

// RecordKeyUse writes when agents' API keys were last used (by hex SHA-256,
// as identity.KeyUse drains them) into last_used_at. It is bookkeeping, not
// an admin's change: updated_at and updated_by stay, and the change log and
// revision do not move. Hashes the store does not know are skipped; a use
// older than the stored one is ignored (another replica saw a later one).
func RecordKeyUse(ctx context.Context, client *ent.Client, uses map[string]time.Time) error {
	var errs []error
	for h, t := range uses {
		k, err := client.APIKey.Query().Where(apikey.KeyHash(h)).Only(ctx)
		if ent.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if k.LastUsedAt != nil && !k.LastUsedAt.Before(t) {
			continue
		}
		if err := client.APIKey.Update().
			Where(apikey.ID(k.ID)).
			SetLastUsedAt(t).
			SetUpdatedAt(k.UpdatedAt).
			Exec(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("record key use: %w", err)
	}
	return nil
}
