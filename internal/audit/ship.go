package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/spool"
)

// MaxBatchBytes bounds one batch read from the spool, which is held in
// memory from its first event until it is inserted: 30,000 events of 2 KB
// fit.
const MaxBatchBytes = 64 << 20

// ship drains the spool into the backend until ctx ends: migrate first,
// then batch by batch, each inserted with a deduplication token and
// recorded in the shipper's state before it is sent, so that after a
// crash the same batch goes again with the same token (and the backend
// drops it if it had arrived). The spool's cursor advances only after the
// backend confirmed.
func (w *Writer) ship(ctx context.Context, st shipState) {
	defer close(w.done)
	backoff := time.Second
	fail := func(what string, err error) bool {
		msg := fmt.Sprintf("%s: %v", what, err)
		w.lastShipErr.Store(&msg)
		w.shipErrors.Add(1)
		w.log.Warn("audit shipping failed; events stay in the spool", "step", what, "retry_in", backoff.String(), "error", err,
			"unshipped_bytes", w.spool.Stats().UnshippedBytes)
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, 30*time.Second)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	ok := func() {
		backoff = time.Second
		w.lastShipErr.Store(nil)
	}
	if w.o.Migrate != nil {
		for {
			err := w.o.Migrate(ctx, w.o.Backend)
			if err == nil {
				break
			}
			if ctx.Err() != nil || !fail("migrating the audit schema", err) {
				return
			}
		}
		ok()
	}
	lastCP := time.Now()
	// batch holds st.Inflight's records once read: gathered by nextBatch
	// as they were appended, or read back by readBatch for a batch
	// recovered from the state; kept across retries of its insert.
	var batch *batch
	for ctx.Err() == nil {
		if st.Inflight == nil {
			b, recs, err := w.nextBatch(ctx)
			if err != nil {
				if ctx.Err() != nil || !fail("reading the spool", err) {
					return
				}
				continue
			}
			if b == nil {
				continue // nothing yet
			}
			st.Inflight = b
			if err := w.saveState(st); err != nil {
				st.Inflight = nil
				if !fail("saving the shipper state", err) {
					return
				}
				continue
			}
			batch = recs
		}
		if batch == nil {
			var err error
			if batch, err = w.readBatch(*st.Inflight); err != nil {
				if !fail("reading the spool", err) {
					return
				}
				continue
			}
		}
		// A crash between saving the state and committing the cursor
		// replays events already shipped (in a batch cut differently, so
		// with another token): skip what the tail says is shipped.
		batch.skipShipped(w.o.Node, st.TailSeq)
		if len(batch.heads) > 0 {
			if err := w.insert(ctx, batch, st.Inflight.Token); err != nil {
				if ctx.Err() != nil || !fail("inserting into "+w.o.Backend.Name(), err) {
					return
				}
				continue
			}
		}
		next := st
		next.Inflight = nil
		if n := len(batch.heads); n > 0 && batch.heads[n-1].Node == w.o.Node {
			next.TailSeq, next.TailHash = batch.heads[n-1].Seq, batch.heads[n-1].Hash
		}
		if next.TailSeq-st.LastCP >= w.o.CheckpointEvery || (time.Since(lastCP) >= w.o.CheckpointInterval && next.TailSeq > st.LastCP) {
			cp := (&Chain{Node: w.o.Node, Seq: next.TailSeq, Hash: next.TailHash}).Sign(w.key, time.Now())
			if err := w.o.Backend.Exec(ctx, checkpointInsert(w.o.Tables.Checkpoints, cp)); err != nil {
				w.log.Warn("audit checkpoint not stored; the next batch tries again", "seq", cp.Seq, "error", err)
			} else {
				next.LastCP, lastCP = cp.Seq, time.Now()
			}
		}
		// The state first: a crash between the two replays a batch the
		// backend deduplicates, never skips one.
		if err := w.saveState(next); err != nil {
			if !fail("saving the shipper state", err) {
				return
			}
			continue
		}
		if err := w.spool.Commit(st.Inflight.To); err != nil {
			if !fail("committing the spool cursor", err) {
				return
			}
			continue
		}
		w.shipped.Add(uint64(len(batch.heads)))
		st, batch = next, nil
		ok()
	}
}

// nextBatch waits for events after the cursor, up to BatchWait for a full
// batch, and returns the batch to send with its records; nil when none
// came. The records are kept as they are read, a few at each wake-up, so
// that a batch is not read back from the spool (tens of MB at once,
// beside the calls the gateway serves) before its insert.
func (w *Writer) nextBatch(ctx context.Context) (*inflight, *batch, error) {
	from := w.spool.Cursor()
	deadline := time.NewTimer(w.o.BatchWait)
	defer deadline.Stop()
	expired := false
	// Each wake-up reads only what was appended since the last one: the
	// batch so far is [from, to), the records in b, of nbytes (it may pass
	// MaxBatchBytes by its last record).
	to, nbytes := from, 0
	b := &batch{}
	for {
		// While the batch fills, what is durable: each background sync
		// notifies, and the records appended since it come with the next
		// one (not a second fdatasync right after the first). When the
		// batch wait is over, everything appended, so that a long fsync
		// interval does not hold events back.
		read := w.spool.ReadSynced
		if expired {
			read = w.spool.Read
		}
		recs, next, err := read(to, w.o.BatchSize-len(b.rows), MaxBatchBytes-nbytes)
		if err != nil {
			return nil, nil, err
		}
		if err := b.add(recs); err != nil {
			return nil, nil, err
		}
		for _, r := range recs {
			nbytes += len(r.Data)
		}
		to = next
		count := len(b.rows)
		if count >= w.o.BatchSize || nbytes >= MaxBatchBytes || (count > 0 && expired) {
			return &inflight{From: from, To: to, Count: count,
				Token: fmt.Sprintf("%s:%d.%d-%d.%d", w.o.Node, from.Segment, from.Offset, to.Segment, to.Offset)}, b, nil
		}
		if expired {
			return nil, nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-deadline.C:
			expired = true
		case <-w.spool.Notify():
		}
	}
}

// head is what the shipper needs of an event without decoding all of it.
type head struct {
	Node string `json:"node"`
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// batch is one batch's records: their raw JSON and their heads.
type batch struct {
	rows  [][]byte
	heads []head
}

func (b *batch) skipShipped(node string, tail uint64) {
	keep := 0
	for i, h := range b.heads {
		if h.Node == node && h.Seq <= tail {
			continue
		}
		b.rows[keep], b.heads[keep] = b.rows[i], h
		keep++
	}
	b.rows, b.heads = b.rows[:keep], b.heads[:keep]
}

// insert sends a batch: as raw JSON rows when the backend takes them,
// else decoded.
func (w *Writer) insert(ctx context.Context, b *batch, token string) error {
	if ri, ok := w.o.Backend.(RawInserter); ok {
		return ri.InsertJSON(ctx, w.o.Tables.Insert, b.rows, token)
	}
	events := make([]Event, len(b.rows))
	for i, r := range b.rows {
		if err := json.Unmarshal(r, &events[i]); err != nil {
			return fmt.Errorf("spool record of event %s-%d: %w", b.heads[i].Node, b.heads[i].Seq, err)
		}
	}
	return w.o.Backend.Insert(ctx, w.o.Tables.Insert, events, token)
}

// readBatch reads exactly the records of b (a batch recovered from the
// shipper's state).
func (w *Writer) readBatch(b inflight) (*batch, error) {
	recs, to, err := w.spool.Read(b.From, b.Count, 0)
	if err != nil {
		return nil, err
	}
	if len(recs) != b.Count || to != b.To {
		return nil, fmt.Errorf("spool batch %v-%v: read %d records ending at %v, want %d", b.From, b.To, len(recs), to, b.Count)
	}
	out := &batch{rows: make([][]byte, 0, len(recs)), heads: make([]head, 0, len(recs))}
	if err := out.add(recs); err != nil {
		return nil, err
	}
	return out, nil
}

// add appends records to the batch.
func (b *batch) add(recs []spool.Record) error {
	for _, r := range recs {
		h, ok := scanHead(r.Data)
		if !ok {
			if err := json.Unmarshal(r.Data, &h); err != nil {
				return fmt.Errorf("spool record %v: %w", r.Pos, err)
			}
		}
		b.rows = append(b.rows, r.Data)
		b.heads = append(b.heads, h)
	}
	return nil
}

// scanHead reads node, seq and hash from a record as Writer.Record encodes
// it (the chain fields lead the object, before any text the event
// carries) without parsing the rest; ok is false for anything else.
func scanHead(b []byte) (h head, ok bool) {
	str := func(field string) (string, bool) {
		i := bytes.Index(b, []byte(field))
		if i < 0 {
			return "", false
		}
		rest := b[i+len(field):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
			return "", false
		}
		return string(rest[:j]), true
	}
	var okNode, okHash bool
	if h.Node, okNode = str(`"node":"`); !okNode {
		return h, false
	}
	if h.Hash, okHash = str(`"hash":"`); !okHash {
		return h, false
	}
	i := bytes.Index(b, []byte(`"seq":`))
	if i < 0 {
		return h, false
	}
	rest := b[i+len(`"seq":`):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil {
		return h, false
	}
	h.Seq = seq
	return h, true
}

// checkpointInsert is the INSERT of one checkpoint (all values are
// hex, numbers or the node name, quoted).
func checkpointInsert(table string, cp Checkpoint) string {
	return fmt.Sprintf("INSERT INTO %s (node, seq, hash, time, signature) VALUES (%s, %d, %s, %s, %s)",
		table, quote(cp.Node), cp.Seq, quote(cp.Hash), quote(cp.Time.UTC().Format(chTime)), quote(cp.Signature))
}

// quote is a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
