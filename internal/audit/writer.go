package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/spool"
)

// Tables name the tables of the audit trail: where the writer inserts,
// and where queries read (in a cluster, the Distributed tables). Names may
// be database-qualified. The zero value means the single-node names.
type Tables struct {
	Insert          string // events are inserted here (default audit_events)
	Checkpoints     string // checkpoints are inserted here (default audit_checkpoints)
	Events          string // events are read here (default audit_events)
	ReadCheckpoints string // checkpoints are read here (default audit_checkpoints)
}

func (t Tables) withDefaults() Tables {
	for _, f := range []struct {
		p   *string
		def string
	}{{&t.Insert, "audit_events"}, {&t.Checkpoints, "audit_checkpoints"}, {&t.Events, "audit_events"}, {&t.ReadCheckpoints, "audit_checkpoints"}} {
		if *f.p == "" {
			*f.p = f.def
		}
	}
	return t
}

// WriterOptions configure a [Writer].
type WriterOptions struct {
	// Dir holds the spool, the shipper's state and the checkpoint key
	// (DATA_DIR/audit).
	Dir string
	// Node names this gateway in events (default: the host name).
	Node string
	// Spool configures durability and the disk budget.
	Spool spool.Options
	// Backend receives the events. Migrate runs before the first batch.
	Backend Backend
	// Tables say where events and checkpoints go.
	Tables Tables
	// Migrate prepares the backend's schema; it is retried until it
	// succeeds, before anything is shipped. Nil skips it.
	Migrate func(context.Context, Backend) error
	// BatchSize and BatchWait are the shipper's thresholds: a batch goes
	// when it has BatchSize events or its oldest event waited BatchWait.
	// Defaults 10,000 and 1s.
	BatchSize int
	BatchWait time.Duration
	// CheckpointEvery signs a checkpoint after this many events (default
	// 1000) or CheckpointInterval (default 1m), whichever comes first.
	CheckpointEvery    uint64
	CheckpointInterval time.Duration
	Logger             *slog.Logger
}

// Writer is the audit trail's write side: [Writer.Record] seals an event
// into the node's hash chain and appends it to the spool (durably, before
// returning); a shipper drains the spool into the backend in batches,
// exactly once, and signs checkpoints of the chain.
type Writer struct {
	o     WriterOptions
	log   *slog.Logger
	spool *spool.Spool
	key   ed25519.PrivateKey

	chain Chain // guarded by the spool's lock (AppendFunc)

	refusedAt   atomic.Int64 // last refusal at the budget, unix ns
	shipped     atomic.Uint64
	shipErrors  atomic.Uint64
	lastShipErr atomic.Pointer[string]
	cancel      context.CancelFunc
	done        chan struct{}
}

// shipState is the shipper's durable state (DIR/shipper.json): the chain
// tail as of the last committed batch, and the batch being inserted, if
// any, so that a restart re-sends exactly that batch with the same
// deduplication token.
type shipState struct {
	TailSeq  uint64    `json:"tail_seq"`
	TailHash string    `json:"tail_hash"`
	LastCP   uint64    `json:"last_checkpoint_seq"`
	Inflight *inflight `json:"inflight,omitempty"`
}

type inflight struct {
	From  spool.Pos `json:"from"`
	To    spool.Pos `json:"to"`
	Count int       `json:"count"`
	Token string    `json:"token"`
}

// OpenWriter opens (or creates) the spool in o.Dir, recovers the chain's
// tail, and starts shipping.
func OpenWriter(ctx context.Context, o WriterOptions) (*Writer, error) {
	if o.Backend == nil {
		return nil, errors.New("audit writer: no backend")
	}
	if o.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("audit node name: %w", err)
		}
		o.Node = h
	}
	o.Tables = o.Tables.withDefaults()
	if o.BatchSize <= 0 {
		o.BatchSize = 10000
	}
	if o.BatchWait <= 0 {
		o.BatchWait = time.Second
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 1000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit directory: %w", err)
	}
	key, err := loadKey(filepath.Join(o.Dir, "checkpoint.key"))
	if err != nil {
		return nil, err
	}
	w := &Writer{o: o, log: o.Logger, key: key, chain: Chain{Node: o.Node}}
	o.Spool.Logger = o.Logger
	o.Spool.OnDiscard = w.rewind
	sp, err := spool.Open(filepath.Join(o.Dir, "spool"), o.Spool)
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	w.spool = sp
	st, err := w.loadState()
	if err != nil {
		sp.Close()
		return nil, err
	}
	w.chain.Seq, w.chain.Hash = st.TailSeq, st.TailHash
	if err := w.recoverTail(); err != nil {
		sp.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel, w.done = cancel, make(chan struct{})
	go w.ship(sctx, st)
	w.log.Info("audit writer open", "node", o.Node, "dir", o.Dir, "backend", o.Backend.Name(), "chain_seq", w.chain.Seq,
		"checkpoint_public_key", fmt.Sprintf("%x", key.Public()))
	return w, nil
}

// PublicKey is the key checkpoints are signed with.
func (w *Writer) PublicKey() ed25519.PublicKey { return w.key.Public().(ed25519.PublicKey) }

// Node is the name events of this writer carry.
func (w *Writer) Node() string { return w.o.Node }

// Admit reports whether new requests may proceed: not when the spool is
// at its budget and the policy refuses.
func (w *Writer) Admit() error { return w.spool.Admit() }

// Record seals e into the chain and appends it to the spool; it returns
// once e is durable as the spool's fsync policy says.
func (w *Writer) Record(e *Event) error {
	var saved Chain
	err := w.spool.AppendFunc(func() ([]byte, error) {
		saved = w.chain
		return w.chain.SealJSON(e), nil
	}, func() {
		w.chain = saved // not in the spool: not in the chain
	})
	if errors.Is(err, ErrSpoolFull) {
		w.refusedAt.Store(time.Now().UnixNano())
	}
	return err
}

// rewind sets the chain back to before first, the first of the events
// the spool discarded when it recovered from a write failure (their
// Records had failed): the next event takes first's place in the chain.
// The spool calls it under its lock, which guards the chain.
func (w *Writer) rewind(first []byte) error {
	var e struct {
		Node     string `json:"node"`
		Seq      uint64 `json:"seq"`
		PrevHash string `json:"prev_hash"`
	}
	if err := json.Unmarshal(first, &e); err != nil {
		return fmt.Errorf("reading the first discarded event: %w", err)
	}
	if e.Node != w.chain.Node || e.Seq == 0 || e.Seq > w.chain.Seq {
		return fmt.Errorf("the first discarded event (node %q, seq %d) is not in this chain (node %q, at seq %d)", e.Node, e.Seq, w.chain.Node, w.chain.Seq)
	}
	w.chain.Seq, w.chain.Hash = e.Seq-1, e.PrevHash
	return nil
}

// Close stops shipping (what is not shipped stays in the spool for the
// next start) and closes the spool.
func (w *Writer) Close() error {
	if w.cancel != nil {
		w.cancel()
		<-w.done
	}
	return w.spool.Close()
}

// WriterStats is the writer's state for metrics and /readyz.
type WriterStats struct {
	Spool      spool.Stats
	Shipped    uint64
	ShipErrors uint64
	// LastError is the last shipping failure, "" after a success.
	LastError string
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	s := WriterStats{Spool: w.spool.Stats(), Shipped: w.shipped.Load(), ShipErrors: w.shipErrors.Load()}
	if p := w.lastShipErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// recoverTail sets the chain to the last event in the spool, if any is
// after the shipped cursor.
func (w *Writer) recoverTail() error {
	pos := w.spool.Cursor()
	for {
		recs, next, err := w.spool.Read(pos, 10000, 64<<20)
		if err != nil {
			return fmt.Errorf("audit spool: recovering the chain: %w", err)
		}
		if len(recs) == 0 {
			return nil
		}
		var e Event
		if err := json.Unmarshal(recs[len(recs)-1].Data, &e); err != nil {
			return fmt.Errorf("audit spool: record at %v: %w", recs[len(recs)-1].Pos, err)
		}
		if e.Node == w.o.Node && e.Seq > w.chain.Seq {
			w.chain.Seq, w.chain.Hash = e.Seq, e.Hash
		}
		pos = next
	}
}

func (w *Writer) statePath() string { return filepath.Join(w.o.Dir, "shipper.json") }

func (w *Writer) loadState() (shipState, error) {
	var st shipState
	b, err := os.ReadFile(w.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("audit shipper state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("audit shipper state %s: %w", w.statePath(), err)
	}
	return st, nil
}

// saveState writes st atomically and durably.
func (w *Writer) saveState(st shipState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(w.statePath(), b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadKey reads the node's checkpoint signing key, creating it on first
// use.
func loadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != ed25519.SeedSize {
			return nil, fmt.Errorf("audit checkpoint key %s: want %d bytes, found %d", path, ed25519.SeedSize, len(b))
		}
		return ed25519.NewKeyFromSeed(b), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, seed); err != nil {
		return nil, fmt.Errorf("audit checkpoint key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
