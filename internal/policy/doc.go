// Package policy decides every request: grants (RBAC with CEL conditions)
// compiled once per snapshot, and per-replica rate limits.
package policy

import (
	_ "github.com/google/cel-go/cel" // the grant condition language
)
