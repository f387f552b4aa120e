package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sealed(n int) (*Chain, []Event) {
	c := &Chain{Node: "n1"}
	var out []Event
	for i := range n {
		e := Event{Time: time.Now(), Kind: KindRequest, Agent: "a", Target: "echo", Arguments: `{"i":` + string(rune('0'+i%10)) + `}`}
		c.Seal(&e)
		out = append(out, e)
	}
	return c, out
}

func verify(events []Event, key ed25519.PublicKey, cps ...Checkpoint) []Problem {
	v := NewVerifier("n1", key)
	for _, cp := range cps {
		v.WantHash(cp.Seq)
	}
	for i := range events {
		v.Next(&events[i])
	}
	for _, cp := range cps {
		v.Checkpoint(cp)
	}
	return v.Problems
}

func TestChain(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	c, events := sealed(10)
	cp := c.Sign(priv, time.Now())
	if p := verify(events, pub, cp); len(p) != 0 {
		t.Fatalf("intact chain: %v", p)
	}
	if events[0].PrevHash != "" || events[1].PrevHash != events[0].Hash || events[9].EventID != "n1-10" {
		t.Fatalf("chain fields: %+v", events[1])
	}

	modified := append([]Event(nil), events...)
	modified[4].Arguments = `{"i":"tampered"}`
	if p := verify(modified, pub); len(p) != 1 || p[0].Kind != "modified" || p[0].Seq != 5 {
		t.Errorf("modified event: %v", p)
	}

	deleted := append(append([]Event(nil), events[:3]...), events[4:]...)
	if p := verify(deleted, pub); len(p) != 1 || p[0].Kind != "gap" || p[0].Seq != 5 {
		t.Errorf("deleted event: %v", p)
	}

	// Rewriting the content and re-hashing the event still breaks the link.
	rehashed := append([]Event(nil), events...)
	rehashed[4].Arguments = "x"
	rehashed[4].Hash = HashEvent(&rehashed[4])
	if p := verify(rehashed, pub); len(p) == 0 || p[0].Kind != "broken_link" || p[0].Seq != 6 {
		t.Errorf("re-hashed event: %v", p)
	}

	// A chain rewritten from scratch does not match the signed checkpoint.
	_, forged := sealed(10)
	forged[9].Agent = "someone-else"
	c2 := &Chain{Node: "n1"}
	for i := range forged {
		c2.Seal(&forged[i])
	}
	if p := verify(forged, pub, cp); len(p) != 1 || p[0].Kind != "bad_checkpoint" {
		t.Errorf("forged chain: %v", p)
	}
	bad := cp
	bad.Signature = strings.Repeat("0", len(cp.Signature))
	if p := verify(events, pub, bad); len(p) != 1 || !strings.Contains(p[0].Detail, "signature") {
		t.Errorf("bad signature: %v", p)
	}
}

func TestHashIgnoresEncodingNoise(t *testing.T) {
	_, events := sealed(1)
	e := events[0]
	e.Roles, e.Grants = []string{}, nil
	e.Time = e.Time.In(time.FixedZone("x", 3600))
	if HashEvent(&e) != e.Hash {
		t.Error("empty vs nil lists or the time zone changed the hash")
	}
}

func TestCheckSQL(t *testing.T) {
	for _, ok := range []string{
		"SELECT count() FROM audit_events",
		"select agent, count() from audit_events where time > now() - INTERVAL 1 DAY group by agent",
		"WITH x AS (SELECT * FROM audit_events) SELECT * FROM x JOIN audit_checkpoints USING node",
	} {
		if err := CheckSQL(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"INSERT INTO audit_events VALUES (1)",
		"DROP TABLE audit_events",
		"SELECT * FROM system.users",
		"SELECT * FROM file('/etc/passwd')",
		"SELECT * FROM url('http://x', CSV)",
		"SELECT * FROM audit_events SETTINGS readonly=0",
		"SELECT * FROM audit_events INTO OUTFILE '/tmp/x'",
		"SELECT 1",
		"SELECT * FROM audit_events; DROP TABLE audit_events",
		"SELECT * FROM `system`.tables",
	} {
		if err := CheckSQL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSealInvalidUTF8(t *testing.T) {
	c := &Chain{Node: "n1"}
	e := Event{Time: time.Now(), Arguments: "bad \xff byte", Roles: []string{"ok", "x\xfe"}}
	c.Seal(&e)
	b, _ := json.Marshal(&e)
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if HashEvent(&back) != e.Hash {
		t.Error("an event with invalid UTF-8 does not verify after a JSON round trip")
	}
}

func TestSealJSONIsTheEventsEncoding(t *testing.T) {
	c := &Chain{Node: "n1"}
	e := Event{Time: time.Now(), Arguments: `{"hash":"","x":"<a&b>\u2028"}`, Error: `"hash":""`}
	b := c.SealJSON(&e)
	want, _ := json.Marshal(&e)
	if string(b) != string(want) {
		t.Fatalf("SealJSON wrote\n%s\nwant\n%s", b, want)
	}
	if HashEvent(&e) != e.Hash {
		t.Fatal("hash does not verify")
	}
}

func TestScanHead(t *testing.T) {
	c := &Chain{Node: "gw-1"}
	for range 3 {
		e := Event{Time: time.Now(), Agent: `tricky "node":"x" agent`, Arguments: `{"seq":99,"hash":"nope"}`}
		b := c.SealJSON(&e)
		h, ok := scanHead(b)
		if !ok || h.Node != "gw-1" || h.Seq != e.Seq || h.Hash != e.Hash {
			t.Fatalf("scanHead = %+v %v, want %s %d %s", h, ok, e.Node, e.Seq, e.Hash)
		}
	}
	if _, ok := scanHead([]byte(`{"x":1}`)); ok {
		t.Error("a record without a head scanned")
	}
}
