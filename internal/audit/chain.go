package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Chain links a node's events: each event carries the hash of the one
// before it (the first one's PrevHash is empty), and its own hash covers
// its content and PrevHash. Deleting, reordering or changing any event
// breaks the chain from that event on; [Verify] finds where.
type Chain struct {
	Node string
	Seq  uint64 // of the last sealed event; 0 before the first
	Hash string // of the last sealed event
}

// Seal numbers e as the chain's next event and sets its chain fields. It
// first replaces invalid UTF-8 in e's strings (which JSON could not carry
// unchanged, so the hash could not be recomputed from a stored copy).
func (c *Chain) Seal(e *Event) { c.SealJSON(e) }

// SealJSON is Seal, returning e's JSON encoding as well (its canonical
// form, hash included), encoded once for both.
func (c *Chain) SealJSON(e *Event) []byte {
	e.sanitize()
	e.canonicalize()
	c.Seq++
	e.Node, e.Seq, e.PrevHash = c.Node, c.Seq, c.Hash
	e.EventID = c.Node + "-" + strconv.FormatUint(c.Seq, 10)
	e.Hash = ""
	bp := sealBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxSealBuf {
			sealBufs.Put(bp)
		}
	}()
	b, hashAt, ok := appendJSON((*bp)[:0], e)
	*bp = b
	if !ok {
		// The time has no JSON encoding: json.Marshal says why.
		mustMarshal(e)
		panic("audit: an event's time has no JSON encoding")
	}
	sum := sha256.Sum256(b)
	e.Hash = hex.EncodeToString(sum[:])
	// The encoding has "hash":"" where the hash goes, its closing quote
	// at hashAt. Splicing it in beats encoding the event a second time,
	// and the result is the one allocation.
	out := make([]byte, 0, len(b)+len(e.Hash))
	out = append(out, b[:hashAt]...)
	out = append(out, e.Hash...)
	out = append(out, b[hashAt:]...)
	c.Hash = e.Hash
	return out
}

// canonicalize puts e in the form its hash covers: time in UTC
// microseconds, empty lists rather than nil ones.
func (e *Event) canonicalize() {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	for _, l := range []*[]string{&e.Roles, &e.Grants, &e.Approvers, &e.SecretBindings, &e.LeaseIDs} {
		if *l == nil {
			*l = []string{}
		}
	}
	if e.Findings == nil {
		e.Findings = []Finding{}
	}
}

// sealBufs holds the buffers SealJSON encodes into; one larger than
// maxSealBuf (an event with huge arguments) is not kept.
var sealBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxSealBuf = 64 << 10

func mustMarshal(e *Event) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		// Event holds only strings, numbers, times and lists of them.
		panic(fmt.Sprintf("audit: encoding an event: %v", err))
	}
	return b
}

func (e *Event) sanitize() {
	// Strings are only written when invalid: lists may be shared (a
	// principal's roles) and must not be written concurrently.
	fix := func(p *string) {
		if !utf8.ValidString(*p) {
			*p = strings.ToValidUTF8(*p, "\uFFFD")
		}
	}
	for _, p := range []*string{&e.RequestID, &e.SessionID, &e.Agent, &e.Team, &e.AuthMethod, &e.VirtualServer, &e.Upstream,
		&e.Method, &e.Target, &e.Arguments, &e.ArgsHash, &e.Decision, &e.Rule, &e.ApprovalID, &e.Outcome, &e.Error, &e.Kind} {
		fix(p)
	}
	for _, l := range [][]string{e.Roles, e.Grants, e.Approvers, e.SecretBindings, e.LeaseIDs} {
		for i := range l {
			fix(&l[i])
		}
	}
	for i := range e.Findings {
		f := &e.Findings[i]
		for _, p := range []*string{&f.Rule, &f.Detector, &f.Kind, &f.Path, &f.Action} {
			fix(p)
		}
	}
}

// HashEvent is the hash an event's Hash field must hold: SHA-256 over its
// canonical JSON (Hash itself left out, nil lists as empty ones, time in
// UTC microseconds), so that the hash of an event read back from
// ClickHouse is the hash computed when it was sealed.
func HashEvent(e *Event) string {
	c := *e
	c.Hash = ""
	c.canonicalize()
	sum := sha256.Sum256(mustMarshal(&c))
	return hex.EncodeToString(sum[:])
}

// Checkpoint is a signed statement that a node's chain reached Seq with
// Hash: verification can then start from it, and a chain rewritten from
// the start cannot match the signed hashes.
type Checkpoint struct {
	Node      string    `json:"node"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	Signature string    `json:"signature"` // hex ed25519 over CheckpointMessage
}

// CheckpointMessage is what a checkpoint signs.
func CheckpointMessage(node string, seq uint64, hash string) []byte {
	return []byte("gatehouse-audit-checkpoint\x00" + node + "\x00" + strconv.FormatUint(seq, 10) + "\x00" + hash)
}

// Sign makes a checkpoint of the chain's current state.
func (c *Chain) Sign(key ed25519.PrivateKey, now time.Time) Checkpoint {
	return Checkpoint{Node: c.Node, Seq: c.Seq, Hash: c.Hash, Time: now.UTC().Truncate(time.Microsecond),
		Signature: hex.EncodeToString(ed25519.Sign(key, CheckpointMessage(c.Node, c.Seq, c.Hash)))}
}

// Problem is one break in a chain that [Verify] found.
type Problem struct {
	Node string `json:"node"`
	Seq  uint64 `json:"seq"`
	// Kind is gap (events missing before Seq), modified (the event's
	// content does not match its hash), broken_link (its PrevHash is not
	// the hash of the event before), duplicate, or bad_checkpoint.
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	return fmt.Sprintf("node %s seq %d: %s: %s", p.Node, p.Seq, p.Kind, p.Detail)
}

// Verifier checks one node's events, fed in Seq order.
type Verifier struct {
	Node     string
	Key      ed25519.PublicKey // nil skips checkpoint signatures
	Problems []Problem
	Checked  uint64

	last     uint64
	lastHash string
	hashes   map[uint64]string // of checkpointed seqs, for checkpoint checks
	want     map[uint64]bool
}

// NewVerifier checks node's chain from its first event.
func NewVerifier(node string, key ed25519.PublicKey) *Verifier {
	return &Verifier{Node: node, Key: key, hashes: map[uint64]string{}, want: map[uint64]bool{}}
}

// WantHash asks the verifier to remember the hash of event seq (for
// checking a checkpoint against it).
func (v *Verifier) WantHash(seq uint64) { v.want[seq] = true }

func (v *Verifier) problem(seq uint64, kind, format string, args ...any) {
	v.Problems = append(v.Problems, Problem{Node: v.Node, Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// Next checks the next event (events must come in Seq order).
func (v *Verifier) Next(e *Event) {
	v.Checked++
	switch {
	case e.Seq == v.last && v.last != 0:
		v.problem(e.Seq, "duplicate", "event %s appears twice", e.EventID)
		return
	case e.Seq > v.last+1:
		v.problem(e.Seq, "gap", "events %d to %d are missing", v.last+1, e.Seq-1)
	case e.Seq <= v.last:
		v.problem(e.Seq, "duplicate", "event out of order after seq %d", v.last)
		return
	}
	if h := HashEvent(e); h != e.Hash {
		v.problem(e.Seq, "modified", "content does not match its hash (event %s)", e.EventID)
	} else if e.Seq == v.last+1 && e.PrevHash != v.lastHash {
		v.problem(e.Seq, "broken_link", "prev_hash does not match the hash of seq %d", v.last)
	}
	if v.want[e.Seq] {
		v.hashes[e.Seq] = e.Hash
	}
	v.last, v.lastHash = e.Seq, e.Hash
}

// Checkpoint checks a checkpoint against its signature and the event it
// names (which must have been fed, after WantHash).
func (v *Verifier) Checkpoint(cp Checkpoint) {
	if v.Key != nil {
		sig, err := hex.DecodeString(cp.Signature)
		if err != nil || !ed25519.Verify(v.Key, CheckpointMessage(cp.Node, cp.Seq, cp.Hash), sig) {
			v.problem(cp.Seq, "bad_checkpoint", "signature does not verify")
			return
		}
	}
	h, ok := v.hashes[cp.Seq]
	switch {
	case !ok:
		v.problem(cp.Seq, "bad_checkpoint", "the checkpointed event is missing")
	case h != cp.Hash:
		v.problem(cp.Seq, "bad_checkpoint", "the checkpointed event's hash differs from the signed one")
	}
}
