package backendtest

import (
	"io/fs"

	"github.com/gatehouse-dev/gatehouse/schema"
)

func schemaFS() fs.FS { return schema.ClickHouse }
