package store

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/agent"
	"github.com/gatehouse-dev/gatehouse/ent/apikey"
	"github.com/gatehouse-dev/gatehouse/ent/selection"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/ent/virtualserver"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// ExportDocument builds the declarative document from the store: its
// upstreams, virtual servers (selections in order of position), agents
// (active key hashes, in creation order), approval rules, rate limits,
// secret bindings, each list sorted by name, grants and guardrails (by
// priority, highest first, then name), the pinning mode and the pins: every recorded tool with its
// approved definition hash, "" for a tool never approved. Grants stored
// without a name carry their [GrantName]. The document's process settings
// (listen, data_dir, log, limits, http, auth) are not stored: they carry
// their defaults, for the caller to override.
//
// Entities the document cannot express (policy rules, webhooks, admin
// tokens, revoked keys, held calls) are left out.
// A guardrail rule with detector cel (from an earlier Gatehouse) is
// exported as it is, so that validating the document reports it at its
// path rather than the gateway silently not enforcing it.
func ExportDocument(ctx context.Context, client *ent.Client) (*config.Document, error) {
	doc := new(config.Document)
	ups, err := client.Upstream.Query().Order(ent.Asc(upstream.FieldName)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("export upstreams: %w", err)
	}
	for _, u := range ups {
		doc.Upstreams = append(doc.Upstreams, upstreamDoc(u))
	}
	vss, err := client.VirtualServer.Query().
		Order(ent.Asc(virtualserver.FieldName)).
		WithSelections(func(q *ent.SelectionQuery) {
			q.Order(ent.Asc(selection.FieldPosition), ent.Asc(selection.FieldID)).WithUpstream()
		}).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("export virtual servers: %w", err)
	}
	for _, vs := range vss {
		v := config.VirtualServer{Name: vs.Name, Description: vs.Description, Anonymous: vs.Anonymous}
		for _, s := range vs.Edges.Selections {
			v.Include = append(v.Include, selectionDoc(s))
		}
		doc.VirtualServers = append(doc.VirtualServers, v)
	}
	agents, err := client.Agent.Query().
		Order(ent.Asc(agent.FieldName)).
		WithTeam().
		WithRoles().
		WithAPIKeys(func(q *ent.APIKeyQuery) {
			q.Where(apikey.Revoked(false)).Order(ent.Asc(apikey.FieldID))
		}).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("export agents: %w", err)
	}
	for _, a := range agents {
		doc.Agents = append(doc.Agents, agentDoc(a))
	}
	if err := exportAccess(ctx, client, doc); err != nil {
		return nil, err
	}
	if err := exportSecrets(ctx, client, doc); err != nil {
		return nil, err
	}
	doc.ApplyDefaults()
	return doc, nil
}

func upstreamDoc(u *ent.Upstream) config.Upstream {
	return config.Upstream{
		Name:           u.Name,
		Transport:      u.Transport.String(),
		URL:            u.URL,
		Headers:        u.Headers,
		Command:        u.Command,
		Args:           u.Args,
		Env:            u.Env,
		Dir:            u.Dir,
		Timeout:        config.Duration(fromSeconds(u.TimeoutSeconds)),
		ConnectTimeout: config.Duration(fromSeconds(u.ConnectTimeoutSeconds)),
		Disabled:       u.Disabled,
		H2C:            u.H2c,
	}
}

// selectionDoc needs s's upstream edge loaded.
func selectionDoc(s *ent.Selection) config.Selection {
	var up string
	if s.Edges.Upstream != nil {
		up = s.Edges.Upstream.Name
	}
	return config.Selection{
		Upstream:                 up,
		Tools:                    s.Tools,
		ExcludeTools:             s.ExcludeTools,
		Resources:                s.Resources,
		ExcludeResources:         s.ExcludeResources,
		ResourceTemplates:        s.ResourceTemplates,
		ExcludeResourceTemplates: s.ExcludeResourceTemplates,
		Prompts:                  s.Prompts,
		ExcludePrompts:           s.ExcludePrompts,
		Rename:                   s.Rename,
		RenamePrompts:            s.RenamePrompts,
		Descriptions:             s.Descriptions,
	}
}

// agentDoc needs a's team, roles and (active) keys loaded.
func agentDoc(a *ent.Agent) config.Agent {
	d := config.Agent{Name: a.Name, Labels: a.Labels}
	if a.Edges.Team != nil {
		d.Team = a.Edges.Team.Name
	}
	for _, r := range a.Edges.Roles {
		d.Roles = append(d.Roles, r.Name)
	}
	sort.Strings(d.Roles)
	for _, k := range a.Edges.APIKeys {
		key := config.APIKey{SHA256: k.KeyHash}
		if k.ExpiresAt != nil {
			t := k.ExpiresAt.UTC()
			key.Expires = &t
		}
		d.APIKeys = append(d.APIKeys, key)
	}
	return d
}

// seconds and fromSeconds convert durations to the store's float seconds and
// back, exactly for whole nanoseconds below about 104 days.
func seconds(d config.Duration) float64 { return time.Duration(d).Seconds() }

func fromSeconds(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }
