package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/admintoken"
	"github.com/gatehouse-dev/gatehouse/ent/agent"
	"github.com/gatehouse-dev/gatehouse/ent/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// AdminTokenPrefix starts every admin token, so that a leaked one is
// recognizable (and distinct from agent keys, which start with "gh_").
const AdminTokenPrefix = "gha_"

// ErrInvalidAdminToken means a presented admin token is unknown or expired.
var ErrInvalidAdminToken = errors.New("invalid admin token")

// NewAdminToken returns a fresh admin token: [AdminTokenPrefix] and 43
// URL-safe base64 characters (256 bits).
func NewAdminToken() string {
	return AdminTokenPrefix + strings.TrimPrefix(identity.NewAPIKey(), "gh_")
}

// CreateAdminToken stores a new admin token named name with roles (admin,
// approver, auditor, viewer) and returns it with its plaintext, which is not
// stored and cannot be shown again. expires nil means never. Use it to
// bootstrap the first admin.
func CreateAdminToken(ctx context.Context, client *ent.Client, name string, roles []string, expires *time.Time) (string, *ent.AdminToken, error) {
	token := NewAdminToken()
	t, err := storeAdminToken(ctx, client, name, roles, expires, token)
	if err != nil {
		return "", nil, fmt.Errorf("create admin token: %w", err)
	}
	return token, t, nil
}

// storeAdminToken keeps token's hash and prefix, never the token.
func storeAdminToken(ctx context.Context, client *ent.Client, name string, roles []string, expires *time.Time, token string) (*ent.AdminToken, error) {
	return client.AdminToken.Create().
		SetName(name).
		SetRoles(roles).
		SetNillableExpiresAt(expires).
		SetTokenHash(identity.HashKey(token)).
		SetPrefix(identity.Prefix(token)).
		Save(ctx)
}

// lastUsedGranularity bounds how often authentication writes last_used_at.
const lastUsedGranularity = time.Minute

// AuthenticateAdminToken finds the stored admin token whose hash is that of
// token. An unknown or expired token gives [ErrInvalidAdminToken]. It records
// the use in last_used_at at most once a minute.
func AuthenticateAdminToken(ctx context.Context, client *ent.Client, token string, now time.Time) (*ent.AdminToken, error) {
	// Looked up by the hash of a high-entropy secret: the lookup's timing
	// reveals nothing about stored tokens.
	t, err := client.AdminToken.Query().Where(admintoken.TokenHash(identity.HashKey(token))).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, ErrInvalidAdminToken
	}
	if err != nil {
		return nil, fmt.Errorf("look up admin token: %w", err)
	}
	if t.ExpiresAt != nil && now.After(*t.ExpiresAt) {
		return nil, fmt.Errorf("%w: expired", ErrInvalidAdminToken)
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= lastUsedGranularity {
		// Not an admin's change: leave updated_at/updated_by alone.
		if _, err := client.AdminToken.Update().
			Where(admintoken.ID(t.ID)).
			SetLastUsedAt(now).
			SetUpdatedAt(t.UpdatedAt).
			Save(ctx); err != nil {
			return nil, fmt.Errorf("record admin token use: %w", err)
		}
	}
	return t, nil
}

// RotateAgentKey creates a new API key for the agent with id agentID and
// returns its plaintext once: only its SHA-256 and prefix are stored. With
// revokeExisting, the agent's other active keys are revoked; revoked counts
// them. expires nil means never. Run it in a transaction (client from a Tx)
// to make both steps one.
func RotateAgentKey(ctx context.Context, client *ent.Client, agentID int, expires *time.Time, revokeExisting bool) (key string, k *ent.APIKey, revoked int, err error) {
	ag, err := client.Agent.Get(ctx, agentID)
	if err != nil {
		return "", nil, 0, fmt.Errorf("rotate agent key: %w", err)
	}
	if revokeExisting {
		revoked, err = client.APIKey.Update().
			Where(apikey.HasAgentWith(agent.ID(ag.ID)), apikey.Revoked(false)).
			SetRevoked(true).
			Save(ctx)
		if err != nil {
			return "", nil, 0, fmt.Errorf("rotate agent key: revoke old keys: %w", err)
		}
	}
	key = identity.NewAPIKey()
	k, err = client.APIKey.Create().
		SetAgent(ag).
		SetKeyHash(identity.HashKey(key)).
		SetPrefix(identity.Prefix(key)).
		SetNillableExpiresAt(expires).
		Save(ctx)
	if err != nil {
		return "", nil, 0, fmt.Errorf("rotate agent key: %w", err)
	}
	return key, k, revoked, nil
}
