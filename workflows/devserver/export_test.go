package devserver

import (
	"context"
)

// CreateNamespaceWithoutSearchAttributes prepares dataDir as a version of
// this package before search attributes would have: database and namespace
// without them.
func CreateNamespaceWithoutSearchAttributes(ctx context.Context, dataDir, namespace string) error {
	return setupDB(ctx, sqlConfig(dataDir), namespace, nil)
}
