//go:build !nochdb

package chdb

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
)

// appendEvent appends e as one JSONEachRow line: an object with the
// columns of chschema.EventColumns, which are the Event's JSON names, so
// the line is the Event's JSON encoding (with times in ClickHouse's basic
// format) written without reflection.
func appendEvent(b []byte, e *audit.Event) ([]byte, error) {
	b = append(b, '{')
	for i, c := range chschema.EventColumns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, c.Name...)
		b = append(b, '"', ':')
		var err error
		if b, err = appendValue(b, c.Value(e)); err != nil {
			return b, fmt.Errorf("column %s: %w", c.Name, err)
		}
	}
	return append(b, '}', '\n'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return audit.AppendString(b, x), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case time.Time:
		b = append(b, '"')
		b = x.UTC().AppendFormat(b, "2006-01-02 15:04:05.000000")
		return append(b, '"'), nil
	case []string:
		return audit.AppendStrings(b, x), nil
	case []audit.Finding:
		return audit.AppendFindings(b, x), nil
	}
	return b, fmt.Errorf("no JSON encoding for %T", v)
}
