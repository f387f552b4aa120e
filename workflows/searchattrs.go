package workflows

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Search attributes of [ToolCallWorkflow], so that admins can list approvals
// with visibility queries such as
//
//	GatehouseState = "pending" AND GatehouseApprovers = "alice"
//
// They exist only where they were registered in the namespace (see
// [SearchAttributeTypes] and [EnsureSearchAttributes]); the workflow upserts
// them only when [ToolCallRequest].IndexSearchAttributes is set.
var (
	// SearchAttributeState is the approval's [State]: "pending", "executing"
	// or a final state.
	SearchAttributeState = temporal.NewSearchAttributeKeyKeyword("GatehouseState")
	// SearchAttributeAgent is the requesting agent.
	SearchAttributeAgent = temporal.NewSearchAttributeKeyKeyword("GatehouseAgent")
	// SearchAttributeVirtualServer is the virtual server of the call.
	SearchAttributeVirtualServer = temporal.NewSearchAttributeKeyKeyword("GatehouseVirtualServer")
	// SearchAttributeTool is the called tool.
	SearchAttributeTool = temporal.NewSearchAttributeKeyKeyword("GatehouseTool")
	// SearchAttributeApprovers are the approvers who approved so far.
	SearchAttributeApprovers = temporal.NewSearchAttributeKeyKeywordList("GatehouseApprovers")
)

// SearchAttributeTypes maps the names of the search attributes above to
// their types, as a namespace registers them. Treat it as read-only.
var SearchAttributeTypes = map[string]enumspb.IndexedValueType{
	SearchAttributeState.GetName():         SearchAttributeState.GetValueType(),
	SearchAttributeAgent.GetName():         SearchAttributeAgent.GetValueType(),
	SearchAttributeVirtualServer.GetName(): SearchAttributeVirtualServer.GetValueType(),
	SearchAttributeTool.GetName():          SearchAttributeTool.GetValueType(),
	SearchAttributeApprovers.GetName():     SearchAttributeApprovers.GetValueType(),
}

// StartSearchAttributes returns the search attributes a starter passes in
// [client.StartWorkflowOptions].TypedSearchAttributes along with
// req.IndexSearchAttributes = true: state "pending" and the agent, virtual
// server and tool (those that are not empty).
func StartSearchAttributes(req ToolCallRequest) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(startSearchAttributes(req)...)
}

func startSearchAttributes(req ToolCallRequest) []temporal.SearchAttributeUpdate {
	u := []temporal.SearchAttributeUpdate{SearchAttributeState.ValueSet(string(StatePending))}
	for _, kv := range []struct {
		k temporal.SearchAttributeKeyKeyword
		v string
	}{{SearchAttributeAgent, req.Agent}, {SearchAttributeVirtualServer, req.VirtualServer}, {SearchAttributeTool, req.Tool}} {
		if kv.v != "" {
			u = append(u, kv.k.ValueSet(kv.v))
		}
	}
	return u
}

// ErrSearchAttributeType reports that a namespace has one of Gatehouse's
// search attributes with another type; an operator must remove or rename it.
var ErrSearchAttributeType = errors.New("search attribute registered with another type")

// EnsureSearchAttributes registers in namespace those of [SearchAttributeTypes]
// that it lacks, through c's operator service. It is meant for an external
// cluster, at startup; an error says the gateway cannot use the attributes
// (for lack of permission, say), and the caller then starts workflows without
// [ToolCallRequest].IndexSearchAttributes.
//
// A new attribute may take a few seconds to become usable on every server
// (the namespace cache refreshes every 2s by default).
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("registering search attributes in namespace %s: %w", namespace, err)
		}
	}()
	svc := c.OperatorService()
	have, err := svc.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("listing search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range slices.Sorted(maps.Keys(SearchAttributeTypes)) {
		want := SearchAttributeTypes[name]
		got, ok := have.GetCustomAttributes()[name]
		if !ok {
			got, ok = have.GetSystemAttributes()[name]
		}
		switch {
		case !ok:
			missing[name] = want
		case got != want:
			return fmt.Errorf("%s is a %s, want %s: %w", name, got, want, ErrSearchAttributeType)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = svc.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) { // exists: another gateway was faster
		return fmt.Errorf("adding %v: %w", slices.Sorted(maps.Keys(missing)), err)
	}
	return nil
}
