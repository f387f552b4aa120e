//go:build !nochdb

package chdb

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

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
		return appendString(b, x), nil
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
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']'), nil
	case []audit.Finding:
		b = append(b, '[')
		for i, f := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"rule":`...)
			b = appendString(b, f.Rule)
			b = append(b, `,"detector":`...)
			b = appendString(b, f.Detector)
			b = append(b, `,"kind":`...)
			b = appendString(b, f.Kind)
			b = append(b, `,"path":`...)
			b = appendString(b, f.Path)
			b = append(b, `,"action":`...)
			b = appendString(b, f.Action)
			b = append(b, `,"start":`...)
			b = strconv.AppendUint(b, uint64(f.Start), 10)
			b = append(b, `,"end":`...)
			b = strconv.AppendUint(b, uint64(f.End), 10)
			b = append(b, '}')
		}
		return append(b, ']'), nil
	}
	return b, fmt.Errorf("no JSON encoding for %T", v)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as with encoding/json.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
