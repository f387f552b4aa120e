package chschema_test

import "github.com/gatehouse-dev/gatehouse/internal/audit"

var auditQuery = audit.QueryOptions{}
