package workflows

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
)

// operatorClient fakes the two operator calls of EnsureSearchAttributes; the
// embedded interfaces panic on anything else.
type operatorClient struct {
	client.Client
	operatorservice.OperatorServiceClient
	have    map[string]enumspb.IndexedValueType
	listErr error
	addErr  error
	added   map[string]enumspb.IndexedValueType
}

func (c *operatorClient) OperatorService() operatorservice.OperatorServiceClient { return c }

func (c *operatorClient) ListSearchAttributes(context.Context, *operatorservice.ListSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	if c.listErr != nil {
		return nil, c.listErr
	}
	return &operatorservice.ListSearchAttributesResponse{CustomAttributes: c.have,
		SystemAttributes: map[string]enumspb.IndexedValueType{"WorkflowId": enumspb.INDEXED_VALUE_TYPE_KEYWORD}}, nil
}

func (c *operatorClient) AddSearchAttributes(_ context.Context, req *operatorservice.AddSearchAttributesRequest, _ ...grpc.CallOption) (*operatorservice.AddSearchAttributesResponse, error) {
	if req.GetNamespace() != "gatehouse" {
		return nil, serviceerror.NewNamespaceNotFound(req.GetNamespace())
	}
	c.added = req.GetSearchAttributes()
	return &operatorservice.AddSearchAttributesResponse{}, c.addErr
}

func TestEnsureSearchAttributes(t *testing.T) {
	t.Parallel()
	keyword, text := enumspb.INDEXED_VALUE_TYPE_KEYWORD, enumspb.INDEXED_VALUE_TYPE_TEXT
	some := map[string]enumspb.IndexedValueType{"GatehouseState": keyword, "GatehouseAgent": keyword, "CustomerId": text}
	tests := []struct {
		name      string
		c         *operatorClient
		wantAdded []string
		wantErr   string // substring; empty means success
	}{
		{"all present", &operatorClient{have: maps.Clone(SearchAttributeTypes)}, nil, ""},
		{"some missing", &operatorClient{have: some},
			[]string{"GatehouseApprovers", "GatehouseTool", "GatehouseVirtualServer"}, ""},
		{"none", &operatorClient{}, []string{"GatehouseAgent", "GatehouseApprovers", "GatehouseState",
			"GatehouseTool", "GatehouseVirtualServer"}, ""},
		{"added meanwhile", &operatorClient{addErr: serviceerror.NewAlreadyExists("exists")}, nil, ""},
		{"wrong type", &operatorClient{have: map[string]enumspb.IndexedValueType{"GatehouseState": text}}, nil,
			"GatehouseState is a Text, want Keyword"},
		{"no permission", &operatorClient{listErr: serviceerror.NewPermissionDenied("operator only", "")}, nil,
			"listing search attributes: operator only"},
		{"add fails", &operatorClient{addErr: serviceerror.NewInvalidArgument("too many")}, nil, "too many"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := EnsureSearchAttributes(t.Context(), tt.c, "gatehouse")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("EnsureSearchAttributes: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "namespace gatehouse") {
				t.Fatalf("error %v, want one about namespace gatehouse containing %q", err, tt.wantErr)
			}
			if tt.wantAdded != nil {
				for _, name := range tt.wantAdded {
					if tt.c.added[name] != SearchAttributeTypes[name] {
						t.Errorf("added %v, want %v", tt.c.added, tt.wantAdded)
					}
				}
				if len(tt.c.added) != len(tt.wantAdded) {
					t.Errorf("added %v, want %v", tt.c.added, tt.wantAdded)
				}
			} else if tt.c.added != nil && tt.c.addErr == nil {
				t.Errorf("added %v, want nothing", tt.c.added)
			}
		})
	}
	err := EnsureSearchAttributes(t.Context(), &operatorClient{have: map[string]enumspb.IndexedValueType{"GatehouseTool": text}}, "gatehouse")
	if !errors.Is(err, ErrSearchAttributeType) {
		t.Errorf("error %v, want %v", err, ErrSearchAttributeType)
	}
}
