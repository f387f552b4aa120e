package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// randString mixes what encoding/json escapes (quotes, backslashes,
// control characters, HTML characters, U+2028/U+2029, invalid UTF-8)
// with plain ASCII and multi-byte text.
func randString(r *rand.Rand) string {
	pieces := []string{"a", "Z9", " ", `"`, `\`, "<", ">", "&", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"é", "日本", "\u2028", "\u2029", "\U0001F600", "\xff", "\xe2\x80", "'", "/", "{}", "[]"}
	var sb strings.Builder
	for range r.IntN(12) {
		sb.WriteString(pieces[r.IntN(len(pieces))])
	}
	return sb.String()
}

// randFill sets every field of v (a struct, reached through reflection,
// so that a field added to Event is filled too) to a random value; lists
// are sometimes nil, sometimes empty.
func randFill(r *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(randString(r))
	case reflect.Int32, reflect.Int64:
		v.SetInt(r.Int64N(1<<40) - 1<<39)
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(r.Uint64() >> (r.UintN(64)))
	case reflect.Slice:
		if r.IntN(4) == 0 {
			v.SetZero()
			return
		}
		n := r.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			randFill(r, s.Index(i))
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			t := time.Unix(r.Int64N(1<<34), r.Int64N(1e9))
			switch r.IntN(3) {
			case 0:
				t = t.UTC()
			case 1:
				t = t.In(time.FixedZone("X", int(r.Int64N(24*3600))-12*3600))
			}
			v.Set(reflect.ValueOf(t))
			return
		}
		for i := range v.NumField() {
			randFill(r, v.Field(i))
		}
	default:
		panic("randFill: no generator for " + v.Type().String())
	}
}

// TestAppendJSON: appendJSON writes json.Marshal's bytes for any event,
// and hashAt points at the Hash string's closing quote.
func TestAppendJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var e Event
		randFill(r, reflect.ValueOf(&e).Elem())
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, hashAt, ok := appendJSON([]byte("prefix"), &e)
		if !ok {
			t.Fatalf("event %d: not encoded", i)
		}
		if !bytes.Equal(got[len("prefix"):], want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got[len("prefix"):], want)
		}
		hash, _ := json.Marshal(e.Hash)
		if !bytes.HasSuffix(got[len("prefix"):][:hashAt+1], append([]byte(`"hash":`), hash...)) {
			t.Fatalf("event %d: hashAt %d does not end the hash field in %s", i, hashAt, got[len("prefix"):])
		}
	}
	// A time json.Marshal cannot encode: not encoded here either.
	e := Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := json.Marshal(&e); err == nil {
		t.Fatal("json.Marshal encoded year 10000")
	}
	if b, _, ok := appendJSON([]byte("x"), &e); ok || string(b) != "x" {
		t.Errorf("year 10000: ok %v, %q", ok, b)
	}
}
