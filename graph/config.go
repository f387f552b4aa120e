package graph

import (
	"context"
	"errors"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// exportConfig writes the store's configuration as the YAML document,
// without process settings (auth among them) and pins.
func exportConfig(ctx context.Context, client *ent.Client) (string, error) {
	doc, err := store.ExportDocument(ctx, client)
	if err != nil {
		return "", err
	}
	b, err := config.Marshal(&config.Document{
		Upstreams: doc.Upstreams, VirtualServers: doc.VirtualServers, Agents: doc.Agents,
		Grants: doc.Grants, Guardrails: doc.Guardrails, RateLimits: doc.RateLimits, ApprovalRules: doc.ApprovalRules,
		SecretBindings: doc.SecretBindings, Pinning: doc.Pinning,
	})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// applyConfig applies a YAML document with client, the mutation's
// transaction. It is validated by ApplyDocument (without prune, as merged
// into the store: it may refer to stored upstreams and virtual servers);
// process settings in it are validated and otherwise ignored; CEL
// expressions are checked with [CheckExpression].
func applyConfig(ctx context.Context, client *ent.Client, document string, prune, dryRun bool) (*model.ApplyConfigPayload, error) {
	doc, err := config.Decode([]byte(document))
	if err != nil {
		return nil, documentErrors(ctx, err)
	}
	if err := documentCELErrors(doc); err != nil {
		return nil, documentErrors(ctx, err)
	}
	opts := store.ApplyOptions{Prune: prune, DryRun: dryRun}
	if p := PrincipalFromContext(ctx); p != nil {
		opts.Actor = p.Actor()
	}
	res, err := store.ApplyDocument(ctx, client, doc, opts)
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		return nil, documentErrors(ctx, ve)
	}
	if err != nil {
		return nil, err
	}
	rev, err := store.Revision(ctx, client)
	if err != nil {
		return nil, err
	}
	out := &model.ApplyConfigPayload{
		Changes:  make([]*model.ConfigChange, len(res.Changes)),
		Applied:  !dryRun && len(res.Changes) > 0,
		Revision: int(rev),
	}
	for i, c := range res.Changes {
		fields := c.Fields
		if fields == nil {
			fields = []string{}
		}
		out.Changes[i] = &model.ConfigChange{Kind: c.Kind, Name: c.Name, Op: c.Op, Fields: fields}
	}
	return out, nil
}

// dryRunApply plans an apply: it applies the document in the mutation's
// transaction, asks what the real apply would be refused for (the config
// guard's refusals, the running gateway's check included), and rolls the
// writes back. The real apply is refused for the same errors.
func (r *Resolver) dryRunApply(ctx context.Context, document string, prune bool) (*model.ApplyConfigPayload, error) {
	tx := r.ent(ctx)
	if tx == r.client { // not in a transaction: the store plans it alone
		return applyConfig(ctx, tx, document, prune, true)
	}
	var out *model.ApplyConfigPayload
	var refused gqlerror.List
	err := store.RolledBack(ctx, tx, func() error {
		var err error
		if out, err = applyConfig(ctx, tx, document, prune, false); err != nil {
			return err
		}
		refused, err = configGuard{client: r.client, gateway: r.Gateway}.refusals(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(refused) > 0 {
		return nil, refused
	}
	rev, err := store.Revision(ctx, tx)
	if err != nil {
		return nil, err
	}
	out.Applied, out.Revision = false, int(rev)
	return out, nil
}

// documentErrors turns what is wrong with a document into INVALID errors on
// the argument "document": one per *config.FieldError, with its path in the
// document in extensions.path (e.g. upstreams[0].url); a YAML error (syntax,
// unknown key) is one error without a path.
func documentErrors(ctx context.Context, err error) error {
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		return &gqlerror.Error{
			Path:       graphql.GetPath(ctx),
			Message:    fmt.Sprintf("document: %v", err),
			Extensions: map[string]any{"code": codeInvalid, "field": "document"},
		}
	}
	list := make(gqlerror.List, len(ve.Fields))
	for i, f := range ve.Fields {
		list[i] = &gqlerror.Error{
			Path:       graphql.GetPath(ctx),
			Message:    "document: " + f.Error(),
			Extensions: map[string]any{"code": codeInvalid, "field": "document", "path": f.Path},
		}
	}
	return list
}
