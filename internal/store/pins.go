package store

/*
Tool-definition pinning in the store.

Each Tool row holds the definition its upstream serves now (title,
description, schemas, annotations and definition_hash, the
[tooldef.Definition.Hash] of them) and, once approved, the approved one
(approved_hash, approved_definition, approved_at, approved_by). A tool's pin
status follows ([PinStatusOf]): no approved hash, PENDING; the approved hash
equals the current one, PINNED; else QUARANTINED. The gateway withholds
every tool that is not PINNED (unless pinning is off).

Gateways report what upstreams serve with [RecordToolDefinitions] whenever
they load a catalog. Only real changes (a new tool, a new definition, an
approval) are configuration changes, logged and moving [Revision], so that
every replica re-applies; refreshing last_seen is bookkeeping, like a key's
last_used_at. Admins approve with [ApproveToolDefinition], against the hash
they reviewed.
*/

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"entgo.io/ent/dialect/sql"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/ent/predicate"
	"github.com/gatehouse-dev/gatehouse/ent/tool"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
)

// PinStatus is where a tool stands with pinning.
type PinStatus string

// Pin statuses (the GraphQL enum ToolPinStatus has the same values).
const (
	PinPinned      PinStatus = "PINNED"      // serves the approved definition
	PinPending     PinStatus = "PENDING"     // no definition approved yet
	PinQuarantined PinStatus = "QUARANTINED" // serves another definition than the approved one
)

// ErrDefinitionChanged is returned by [ApproveToolDefinition] when the
// tool's current definition no longer has the hash the admin reviewed.
var ErrDefinitionChanged = errors.New("the definition changed again; review the new diff")

// ApprovedByAuto is approved_by of definitions that pinning mode auto
// approved.
const ApprovedByAuto = "auto"

// PinStatusOf returns t's pin status.
func PinStatusOf(t *ent.Tool) PinStatus {
	switch approved := approvedHash(t); {
	case approved == "":
		return PinPending
	case approved == t.DefinitionHash:
		return PinPinned
	}
	return PinQuarantined
}

// approvedHash is t's approved hash, "" when none.
func approvedHash(t *ent.Tool) string {
	if t.ApprovedHash == nil {
		return ""
	}
	return *t.ApprovedHash
}

// ToolsWithPinStatus is the predicate of tools whose [PinStatusOf] is s.
func ToolsWithPinStatus(s PinStatus) predicate.Tool {
	approved := tool.And(tool.ApprovedHashNotNil(), tool.ApprovedHashNEQ(""))
	sameHash := predicate.Tool(func(s *sql.Selector) {
		s.Where(sql.ColumnsEQ(s.C(tool.FieldApprovedHash), s.C(tool.FieldDefinitionHash)))
	})
	switch s {
	case PinPending:
		return tool.Not(approved)
	case PinPinned:
		return tool.And(approved, sameHash)
	case PinQuarantined:
		return tool.And(approved, tool.Or(tool.DefinitionHashIsNil(), tool.Not(sameHash)))
	}
	return predicate.Tool(func(s *sql.Selector) { s.Where(sql.False()) })
}

// ToolDefinition returns the definition t's upstream serves now, as
// recorded.
func ToolDefinition(t *ent.Tool) tooldef.Definition {
	return tooldef.Definition{
		Name:         t.Name,
		Title:        t.Title,
		Description:  t.Description,
		InputSchema:  t.InputSchema,
		OutputSchema: t.OutputSchema,
		Annotations:  t.Annotations,
	}
}

// DefinitionDiff describes how t's current definition differs from the
// approved one ([tooldef.Diff]); "" when t is not quarantined.
func DefinitionDiff(t *ent.Tool) string {
	if PinStatusOf(t) != PinQuarantined || t.ApprovedDefinition == nil {
		return ""
	}
	return tooldef.Diff(*t.ApprovedDefinition, ToolDefinition(t))
}

// pins lists every recorded tool as a [config.Pin], by upstream and name:
// the approved hash, or "" for a tool never approved.
func pins(ctx context.Context, client *ent.Client) ([]config.Pin, error) {
	tools, err := client.Tool.Query().
		Select(tool.FieldName, tool.FieldApprovedHash).
		WithUpstream(func(q *ent.UpstreamQuery) { q.Select(upstream.FieldName) }).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("export pins: %w", err)
	}
	out := make([]config.Pin, 0, len(tools))
	for _, t := range tools {
		if t.Edges.Upstream == nil {
			continue
		}
		out = append(out, config.Pin{Upstream: t.Edges.Upstream.Name, Tool: t.Name, Hash: approvedHash(t)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Upstream != out[j].Upstream {
			return out[i].Upstream < out[j].Upstream
		}
		return out[i].Tool < out[j].Tool
	})
	return out, nil
}

// RecordToolDefinitions records the tools upstream serves (defs, as the
// gateway loaded its catalog at now), in one transaction. New tools are
// created; a known tool whose definition hash changed gets the new
// definition, which quarantines it if it was pinned. In pinning mode auto
// (config.PinningAuto), a tool with no approved definition has its current
// one approved (approved_by "auto"); other modes never approve. Tools
// upstream no longer serves keep their rows.
//
// changed reports whether the configuration changed: those changes are in
// the admin change log (under ctx's actor, else "upstream:NAME") and move
// [Revision]. Otherwise only last_seen is refreshed, as bookkeeping that
// neither the change log nor the revision shows, and changed is false:
// calling it again with the same catalog is cheap and changes nothing.
//
// An upstream the store lacks is an error for which ent.IsNotFound holds.
// Two replicas recording the same new tool at once may collide on its
// unique key; the loser retries once.
func RecordToolDefinitions(ctx context.Context, client *ent.Client, upstreamName string, defs []tooldef.Definition, mode string, now time.Time) (changed bool, err error) {
	if actor.FromContext(ctx) == "" {
		ctx = actor.NewContext(ctx, "upstream:"+upstreamName)
	}
	// PostgreSQL keeps microseconds: so does the store everywhere.
	now = now.Truncate(time.Microsecond)
	for attempt := 0; ; attempt++ {
		changed, err = inTx(ctx, client, func(c *ent.Client) (bool, error) {
			return recordTools(ctx, c, upstreamName, defs, mode, now)
		})
		if err == nil || attempt > 0 || !ent.IsConstraintError(err) {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("record tool definitions of upstream %q: %w", upstreamName, err)
	}
	return changed, nil
}

// inTx runs f in a transaction of client's, or in client's own when client
// is a transaction's.
func inTx[T any](ctx context.Context, client *ent.Client, f func(*ent.Client) (T, error)) (v T, err error) {
	tx, err := client.Tx(ctx)
	if errors.Is(err, ent.ErrTxStarted) {
		return f(client)
	}
	if err != nil {
		return v, fmt.Errorf("begin: %w", err)
	}
	v, err = f(tx.Client())
	if err != nil {
		_ = tx.Rollback()
		return v, err
	}
	if err := tx.Commit(); err != nil {
		return v, fmt.Errorf("commit: %w", err)
	}
	return v, nil
}

func recordTools(ctx context.Context, c *ent.Client, upstreamName string, defs []tooldef.Definition, mode string, now time.Time) (changed bool, err error) {
	up, err := c.Upstream.Query().Where(upstream.Name(upstreamName)).Only(ctx)
	if err != nil {
		return false, err
	}
	stored, err := c.Tool.Query().Where(tool.HasUpstreamWith(upstream.ID(up.ID))).All(ctx)
	if err != nil {
		return false, err
	}
	byName := make(map[string]*ent.Tool, len(stored))
	for _, t := range stored {
		byName[t.Name] = t
	}
	// Refreshing last_seen is nobody's change: updated_by stays.
	bookkeepingCtx := actor.NewContext(ctx, "")
	seen := map[string]bool{}
	for _, def := range defs {
		if seen[def.Name] {
			continue // an upstream listing a name twice: the first wins
		}
		seen[def.Name] = true
		hash, err := def.Hash()
		if err != nil {
			return false, err
		}
		old := byName[def.Name]
		approve := mode == config.PinningAuto && (old == nil || approvedHash(old) == "")
		switch {
		case old == nil:
			cr := c.Tool.Create().SetUpstream(up).SetName(def.Name).SetFirstSeen(now).SetLastSeen(now)
			setDefinition(cr.Mutation(), def, hash)
			if approve {
				setApproval(cr.Mutation(), def, hash, ApprovedByAuto, now)
			}
			err = cr.Exec(ctx)
		case old.DefinitionHash != hash || approve:
			u := c.Tool.UpdateOne(old).SetLastSeen(now)
			if old.DefinitionHash != hash {
				setDefinition(u.Mutation(), def, hash)
			}
			if approve {
				setApproval(u.Mutation(), def, hash, ApprovedByAuto, now)
			}
			err = u.Exec(ctx)
		case old.LastSeen.Before(now):
			err = c.Tool.Update().
				Where(tool.ID(old.ID)).
				SetLastSeen(now).
				SetUpdatedAt(old.UpdatedAt).
				Exec(bookkeepingCtx)
			if err != nil {
				return false, fmt.Errorf("tool %q: %w", def.Name, err)
			}
			continue
		default:
			continue
		}
		if err != nil {
			return false, fmt.Errorf("tool %q: %w", def.Name, err)
		}
		changed = true
	}
	return changed, nil
}

func setDefinition(m *ent.ToolMutation, def tooldef.Definition, hash string) {
	m.SetTitle(def.Title)
	m.SetDescription(def.Description)
	m.SetDefinitionHash(hash)
	if def.InputSchema != nil {
		m.SetInputSchema(def.InputSchema)
	} else {
		m.ClearInputSchema()
	}
	if def.OutputSchema != nil {
		m.SetOutputSchema(def.OutputSchema)
	} else {
		m.ClearOutputSchema()
	}
	if def.Annotations != nil {
		m.SetAnnotations(def.Annotations)
	} else {
		m.ClearAnnotations()
	}
}

func setApproval(m *ent.ToolMutation, def tooldef.Definition, hash, by string, now time.Time) {
	m.SetApprovedHash(hash)
	m.SetApprovedDefinition(&def)
	m.SetApprovedAt(now)
	m.SetApprovedBy(by)
}

// ApproveToolDefinition approves the current definition of the tool with
// id, provided its hash is still hash (the one the admin reviewed): the
// tool becomes PINNED. Otherwise it returns [ErrDefinitionChanged] and
// changes nothing. by is recorded as approved_by (e.g. "token:NAME").
// Approving the definition already approved writes nothing. An unknown id
// is an error for which ent.IsNotFound holds.
func ApproveToolDefinition(ctx context.Context, client *ent.Client, id int, hash, by string, now time.Time) (*ent.Tool, error) {
	_, err := inTx(ctx, client, func(c *ent.Client) (struct{}, error) {
		var none struct{}
		t, err := c.Tool.Get(ctx, id)
		if err != nil {
			return none, err
		}
		if t.DefinitionHash != hash || hash == "" {
			return none, ErrDefinitionChanged
		}
		if approvedHash(t) == hash {
			return none, nil
		}
		// The hash is checked again by the update itself, in case the
		// upstream changed the tool since the read.
		u := c.Tool.Update().Where(tool.ID(id), tool.DefinitionHash(hash))
		setApproval(u.Mutation(), ToolDefinition(t), hash, by, now.Truncate(time.Microsecond))
		n, err := u.Save(ctx)
		if err != nil {
			return none, err
		}
		if n == 0 {
			return none, ErrDefinitionChanged
		}
		return none, nil
	})
	if err != nil {
		return nil, fmt.Errorf("approve tool definition: %w", err)
	}
	return client.Tool.Get(ctx, id)
}
