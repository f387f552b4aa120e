package graph

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/ent"
)

// Who may do what. Every root field is checked ([checkRootField]): a
// mutation needs the admin role (checked for the whole operation by
// requireAdminForMutations); a query field needs one of [readRoles], except
// the fields [queryRoles] lists. The audit trail (auditEvents, auditStats,
// auditVerify and the HTTP endpoints of [NewAuditHandler]) needs one of
// [auditRoles], like the change log. The approver role reads and decides
// approvals (approveCall and denyCall; see approvals.go) and reads nothing
// else but me.
var (
	// readRoles may read the configuration.
	readRoles = []string{"admin", "viewer", "auditor"}
	// auditRoles may read the admin change log and the audit trail.
	auditRoles = []string{"admin", "auditor"}

	// queryRoles lists the query fields whose roles differ from readRoles;
	// nil means any admin token.
	queryRoles = map[string][]string{
		"me":               nil,
		"adminChanges":     auditRoles,
		"approvals":        approvalRoles,
		"pendingApprovals": approvalRoles,
		"approval":         approvalRoles,
		"approvalChanged":  approvalRoles,
		"auditEvents":      auditRoles,
		"auditStats":       auditRoles,
		"auditVerify":      auditRoles,
	}
)

// checkRootField is the root-field middleware of [NewHandler]: it answers
// FORBIDDEN for a query field the caller's roles do not allow.
// Introspection (__schema, __type, __typename) is open to every token.
func checkRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	fc := graphql.GetRootFieldContext(ctx)
	oc := graphql.GetOperationContext(ctx)
	if fc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Query || strings.HasPrefix(fc.Field.Name, "__") {
		return next(ctx)
	}
	roles, listed := queryRoles[fc.Field.Name]
	if !listed {
		roles = readRoles
	}
	if err := requireRole(ctx, roles); err != nil {
		graphql.AddError(ctx, err)
		return graphql.Null
	}
	return next(ctx)
}

// requireRole returns nil when the caller holds one of roles (any role when
// roles is nil), else a FORBIDDEN error.
func requireRole(ctx context.Context, roles []string) error {
	p := PrincipalFromContext(ctx)
	if p == nil {
		return errUnauthenticated
	}
	if roles == nil {
		return nil
	}
	for _, r := range roles {
		if p.HasRole(r) {
			return nil
		}
	}
	return &gqlerror.Error{
		Path:       graphql.GetPath(ctx),
		Message:    "this needs an admin token with the role " + strings.Join(roles, ", ") + " (or another of them)",
		Extensions: map[string]any{"code": codeForbidden},
	}
}

// mayRead checks that the caller may read n, reached through node or nodes:
// change log entries need one of [auditRoles]; the rest was checked with
// the root field.
func mayRead(ctx context.Context, n ent.Noder) error {
	switch n.(type) {
	case *ent.AdminChange:
		return requireRole(ctx, auditRoles)
	case *ent.Approval:
		return requireRole(ctx, approvalRoles)
	}
	return nil
}
