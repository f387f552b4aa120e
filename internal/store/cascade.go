package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/agent"
	"github.com/gatehouse-dev/gatehouse/ent/apikey"
	"github.com/gatehouse-dev/gatehouse/ent/grant"
	"github.com/gatehouse-dev/gatehouse/ent/guardrailrule"
	"github.com/gatehouse-dev/gatehouse/ent/hook"
	"github.com/gatehouse-dev/gatehouse/ent/ratelimit"
	"github.com/gatehouse-dev/gatehouse/ent/selection"
	"github.com/gatehouse-dev/gatehouse/ent/team"
	"github.com/gatehouse-dev/gatehouse/ent/virtualserver"
)

// The entities a virtual server or an agent owns (its selections, grants,
// guardrail rules and rate limits; its API keys) go with it: the database
// would delete them by cascade, unseen by the change log, so a compliance
// reader would find "delete VirtualServer demo" and not the grants that
// went with it. These hooks delete them first, through Ent, in the same
// transaction: each gets its own delete entry in the admin change log,
// before the entry of the entity that owned it.

// deleteOwnedByVirtualServer deletes a virtual server's owned entities
// before the virtual server.
var deleteOwnedByVirtualServer = hook.On(func(next ent.Mutator) ent.Mutator {
	return hook.VirtualServerFunc(func(ctx context.Context, m *ent.VirtualServerMutation) (ent.Value, error) {
		ids, err := m.IDs(ctx)
		if err != nil {
			return nil, fmt.Errorf("find the virtual servers to delete: %w", err)
		}
		if len(ids) > 0 {
			c, owned := m.Client(), virtualserver.IDIn(ids...)
			for _, d := range []struct {
				what string
				del  func() (int, error)
			}{
				{"selections", func() (int, error) {
					return c.Selection.Delete().Where(selection.HasVirtualServerWith(owned)).Exec(ctx)
				}},
				{"grants", func() (int, error) { return c.Grant.Delete().Where(grant.HasVirtualServerWith(owned)).Exec(ctx) }},
				{"guardrail rules", func() (int, error) {
					return c.GuardrailRule.Delete().Where(guardrailrule.HasVirtualServerWith(owned)).Exec(ctx)
				}},
				{"rate limits", func() (int, error) {
					return c.RateLimit.Delete().Where(ratelimit.HasVirtualServerWith(owned)).Exec(ctx)
				}},
			} {
				if _, err := d.del(); err != nil {
					return nil, fmt.Errorf("delete the virtual server's %s: %w", d.what, err)
				}
			}
		}
		return next.Mutate(ctx, m)
	})
}, ent.OpDelete|ent.OpDeleteOne)

// deleteOwnedByAgent deletes an agent's API keys before the agent.
var deleteOwnedByAgent = hook.On(func(next ent.Mutator) ent.Mutator {
	return hook.AgentFunc(func(ctx context.Context, m *ent.AgentMutation) (ent.Value, error) {
		ids, err := m.IDs(ctx)
		if err != nil {
			return nil, fmt.Errorf("find the agents to delete: %w", err)
		}
		if len(ids) > 0 {
			if _, err := m.Client().APIKey.Delete().Where(apikey.HasAgentWith(agent.IDIn(ids...))).Exec(ctx); err != nil {
				return nil, fmt.Errorf("delete the agent's API keys: %w", err)
			}
		}
		return next.Mutate(ctx, m)
	})
}, ent.OpDelete|ent.OpDeleteOne)

// InUseError is a delete the store refuses because other entities still
// depend on the entity.
type InUseError struct{ Reason string }

func (e *InUseError) Error() string { return "still in use: " + e.Reason }

// refuseTeamWithAgents refuses to delete a team that agents belong to. The
// database would clear their team, and with it every grant and approval
// rule that reaches them through the team's name, without a word.
var refuseTeamWithAgents = hook.On(func(next ent.Mutator) ent.Mutator {
	return hook.TeamFunc(func(ctx context.Context, m *ent.TeamMutation) (ent.Value, error) {
		ids, err := m.IDs(ctx)
		if err != nil {
			return nil, fmt.Errorf("find the teams to delete: %w", err)
		}
		if len(ids) == 0 {
			return next.Mutate(ctx, m)
		}
		members, err := m.Client().Agent.Query().Where(agent.HasTeamWith(team.IDIn(ids...))).
			Order(ent.Asc(agent.FieldName)).Limit(4).Select(agent.FieldName).Strings(ctx)
		if err != nil {
			return nil, fmt.Errorf("find the team's agents: %w", err)
		}
		if len(members) > 0 {
			list := strings.Join(members[:min(3, len(members))], ", ")
			if len(members) > 3 {
				list += ", …"
			}
			return nil, &InUseError{Reason: "agents belong to the team (" + list + "); move them to another team or delete them first"}
		}
		return next.Mutate(ctx, m)
	})
}, ent.OpDelete|ent.OpDeleteOne)
