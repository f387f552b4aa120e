package chserver

import (
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"
)

// TestValue checks the scanned-value conversions against the conventions
// of chschema, which the embedded engine's JSON output follows too.
func TestValue(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.FixedZone("X", 3600))
	s := "x"
	var nilString *string
	tests := []struct {
		name string
		v    any
		typ  string
		want any
	}{
		{"uint64 small", uint64(42), "UInt64", int64(42)},
		{"uint64 big", uint64(1<<53 + 1), "UInt64", "9007199254740993"},
		{"int64 negative big", int64(-(1<<53 + 1)), "Int64", "-9007199254740993"},
		{"int8", int8(-1), "Int8", int64(-1)},
		{"float", 1.5, "Float64", 1.5},
		{"nan", math.NaN(), "Float64", nil},
		{"datetime64", ts, "DateTime64(3, 'UTC')", "2026-01-02T02:04:05.500Z"},
		{"datetime", ts.Truncate(time.Second), "DateTime('UTC')", "2026-01-02T02:04:05Z"},
		{"date", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), "Date", "2026-01-02"},
		{"nullable", &s, "Nullable(String)", "x"},
		{"null", nilString, "Nullable(String)", nil},
		{"lowcardinality", "y", "LowCardinality(String)", "y"},
		{"array", []uint64{1, 1<<53 + 1}, "Array(UInt64)", []any{int64(1), "9007199254740993"}},
		{"array of float", []float64{2, 2.5}, "Array(Float64)", []any{2.0, 2.5}},
		{"named tuple", map[string]any{"a": "x", "b": uint8(1)}, "Tuple(a String, b UInt8)", map[string]any{"a": "x", "b": int64(1)}},
		{"unnamed tuple", []any{"x", uint8(1)}, "Tuple(String, UInt8)", []any{"x", int64(1)}},
		{"findings", []map[string]any{{"rule": "r", "start": uint32(3)}}, "Array(Tuple(rule String, start UInt32))", []any{map[string]any{"rule": "r", "start": int64(3)}}},
		{"map", map[string]uint8{"k": 1}, "Map(String, UInt8)", map[string]any{"k": int64(1)}},
		{"int128", *big.NewInt(7), "Int128", "7"},
		{"bool", true, "Bool", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := value(reflect.ValueOf(tc.v), tc.typ); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("value(%#v, %s) = %#v, want %#v", tc.v, tc.typ, got, tc.want)
			}
		})
	}
}
