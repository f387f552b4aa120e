package graph

import (
	"context"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// transactioner runs each mutation operation in one transaction of the
// config store, as [entgql.Transactioner] does (whose field serialisation
// it keeps), except that a failure to begin or commit goes to the error
// presenter like any other error. entgql formats those failures itself,
// past the presenter, so a store that is down and a change that is refused
// at commit would read the same; [presentError] tells them apart
// (STORE_UNAVAILABLE against, say, a constraint's CONFLICT).
type transactioner struct{ entgql.Transactioner }

// txError is a failure to begin or commit a mutation's transaction.
type txError struct {
	commit bool
	err    error
}

func (e *txError) Error() string {
	if e.commit {
		return "the configuration store could not commit the change: " + e.err.Error()
	}
	return "the configuration store could not begin a transaction, so nothing was changed: " + e.err.Error()
}

func (e *txError) Unwrap() error { return e.err }

// InterceptResponse runs a mutation operation under a transaction.
func (t transactioner) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	op := graphql.GetOperationContext(ctx).Operation
	if op == nil || op.Operation != ast.Mutation || (t.SkipTxFunc != nil && t.SkipTxFunc(op)) {
		return next(ctx)
	}
	txCtx, tx, err := t.OpenTx(ctx)
	if err != nil {
		return &graphql.Response{Errors: gqlerror.List{presentError(ctx, &txError{err: err})}}
	}
	defer func() {
		if r := recover(); r != nil {
			_ = tx.Rollback()
			panic(r)
		}
	}()
	rsp := next(txCtx)
	if len(rsp.Errors) > 0 {
		_ = tx.Rollback()
		return &graphql.Response{Errors: rsp.Errors}
	}
	if err := tx.Commit(); err != nil {
		return &graphql.Response{Errors: gqlerror.List{presentError(ctx, &txError{commit: true, err: err})}}
	}
	return rsp
}
