package chschema

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Result values look the same from both backends ([audit.Result] rows are
// JSON-compatible):
//
//   - integers are int64 when |v| <= 2^53, so that a JSON reader that
//     parses numbers as float64 (JavaScript, jq) loses nothing, and
//     decimal strings beyond that (UInt64 hashes, sums of counters);
//   - floats are float64; NaN and infinities are nil (null);
//   - DateTime and DateTime64 are RFC 3339 strings in UTC with exactly
//     the column's fractional digits ("2026-01-02T03:04:05.123456Z" for
//     DateTime64(6)), which time.Parse(time.RFC3339Nano, ...) reads; Date
//     is "2006-01-02";
//   - strings are strings, arrays are []any, named tuples are
//     map[string]any, unnamed tuples []any, maps map[string]any, and NULL
//     is nil.

// MaxExactInt is the largest integer a float64 holds exactly (2^53).
const MaxExactInt = 1 << 53

// Int is v as a result value: int64, or its decimal string beyond
// ±[MaxExactInt].
func Int(v int64) any {
	if v > MaxExactInt || v < -MaxExactInt {
		return strconv.FormatInt(v, 10)
	}
	return v
}

// Uint is v as a result value: int64, or its decimal string beyond
// [MaxExactInt].
func Uint(v uint64) any {
	if v > MaxExactInt {
		return strconv.FormatUint(v, 10)
	}
	return int64(v)
}

// Float is v as a result value: v, or nil for NaN and infinities.
func Float(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// Time is t as a result value of a DateTime64(scale) (scale 0: DateTime).
func Time(t time.Time, scale int) string {
	layout := "2006-01-02T15:04:05"
	if scale > 0 {
		layout += "." + strings.Repeat("0", min(scale, 9))
	}
	return t.UTC().Format(layout + "Z")
}

// Date is t as a result value of a Date or Date32.
func Date(t time.Time) string { return t.Format("2006-01-02") }

// TimeScale is the number of fractional digits of a ClickHouse type
// (DateTime64(6, 'UTC') is 6; DateTime is 0), and whether it is a
// date-time type at all. Nullable and LowCardinality wrappers are looked
// through.
func TimeScale(typ string) (scale int, ok bool) {
	typ = Unwrap(typ)
	switch {
	case strings.HasPrefix(typ, "DateTime64("):
		args := strings.TrimSuffix(strings.TrimPrefix(typ, "DateTime64("), ")")
		p, _, _ := strings.Cut(args, ",")
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return 3, true
		}
		return n, true
	case typ == "DateTime" || strings.HasPrefix(typ, "DateTime("):
		return 0, true
	}
	return 0, false
}

// IsFloat says whether typ is Float32/Float64 (or a Nullable of one).
func IsFloat(typ string) bool {
	typ = Unwrap(typ)
	return typ == "Float32" || typ == "Float64" || typ == "BFloat16"
}

// ArrayElem is the element type of an Array type, or "".
func ArrayElem(typ string) string {
	if args, ok := typeArgs(typ, "Array"); ok {
		return args
	}
	return ""
}

// MapValue is the value type of a Map type, or "".
func MapValue(typ string) string {
	if args, ok := typeArgs(typ, "Map"); ok {
		if parts := splitTop(args); len(parts) == 2 {
			return parts[1]
		}
	}
	return ""
}

// TupleElem is one element of a Tuple type; Name is "" in an unnamed
// tuple.
type TupleElem struct{ Name, Type string }

// TupleElems are the elements of a Tuple type, or nil.
func TupleElems(typ string) []TupleElem {
	args, ok := typeArgs(typ, "Tuple")
	if !ok {
		return nil
	}
	var out []TupleElem
	for _, p := range splitTop(args) {
		// "name Type" or "Type": a name is an identifier followed by a
		// space before any parenthesis.
		e := TupleElem{Type: p}
		if i := strings.IndexByte(p, ' '); i > 0 && !strings.ContainsAny(p[:i], "(,") {
			e = TupleElem{Name: strings.Trim(p[:i], "`"), Type: strings.TrimSpace(p[i+1:])}
		}
		out = append(out, e)
	}
	return out
}

// typeArgs is the text between the parentheses of name(...), after
// Nullable/LowCardinality.
func typeArgs(typ, name string) (string, bool) {
	typ = Unwrap(typ)
	if strings.HasPrefix(typ, name+"(") && strings.HasSuffix(typ, ")") {
		return typ[len(name)+1 : len(typ)-1], true
	}
	return "", false
}

// splitTop splits at commas outside parentheses and quotes, trimming.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// Unwrap strips Nullable(...) and LowCardinality(...) from a type.
func Unwrap(typ string) string {
	for {
		switch {
		case strings.HasPrefix(typ, "Nullable(") && strings.HasSuffix(typ, ")"):
			typ = typ[len("Nullable(") : len(typ)-1]
		case strings.HasPrefix(typ, "LowCardinality(") && strings.HasSuffix(typ, ")"):
			typ = typ[len("LowCardinality(") : len(typ)-1]
		default:
			return typ
		}
	}
}
