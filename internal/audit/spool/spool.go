// Package spool is the audit trail's durable local queue: an append-only
// log of opaque records (audit events as JSON) that the gateway writes
// before it acknowledges a call, and that a shipper drains into ClickHouse.
//
// # Files
//
// A spool is a directory:
//
//	00000000000000000001.seg   segments, append-only, numbered from 1
//	00000000000000000002.seg   the last one is being written
//	cursor.json                the shipped position, {"segment":N,"offset":M}
//	lock                       flock(2)-ed by the process that has it open
//	reserve                    [ReserveBytes] of zeros, given up when the disk fills
//
// A segment is a sequence of frames, each
//
//	length  uint32, little endian, of the payload (1 … [MaxRecordBytes])
//	crc     uint32, little endian, CRC-32C (Castagnoli) of length and payload
//	payload length bytes
//
// with no segment header. A [Pos] is a segment number and the byte offset
// of a frame in it. Segments rotate when the next frame would take the
// segment past [Options.SegmentBytes]; a frame larger than that gets a
// segment of its own. Segment numbers only grow and a segment is never
// written again once a later one exists: [Open] truncates a torn tail and
// then starts a new segment, so a position, once it held a record, never
// holds a different one. Deduplication tokens derived from positions rely
// on that. (A recovery from a write failure, below, reuses the positions
// of the records it discards, which nobody acknowledged or read.)
//
// # Durability
//
// [Spool.Append] returns only when the record is as durable as
// [Options.Fsync] asks:
//
//   - FsyncAlways: the record has been written and fdatasync(2)ed, so it
//     survives power loss. Appends are group-committed: the records
//     queued while a flush runs form a group, which the next flush writes
//     with one pwrite per segment and one fdatasync. There is no flusher
//     goroutine: a caller that finds no flush running becomes the leader
//     and flushes the group holding its record; the others wait on their
//     group's channel, and a leader that is done closes it and hands
//     leadership to one waiter of the next group. Each caller wakes once,
//     and a lone caller is its own leader and never waits.
//   - FsyncInterval: the record has been written with pwrite(2) (it is in
//     the kernel's page cache and survives the process being killed) and
//     a background fdatasync runs every [Options.FsyncInterval]; power
//     loss can lose the last interval. Concurrent appends share writes
//     the same way.
//
// Rotation fdatasyncs the old segment and the directory (for the new
// file's entry) before the new segment is used, so only the last segment
// can have a torn tail.
//
// # Recovery
//
// A write cut short by a crash leaves a partial frame at the end of the
// last segment; it was never acknowledged, so [Open] truncates it away
// (and logs a warning with the file, offset and byte count). A bad frame
// counts as such a torn tail only when it is in the last segment and
// either its header is incomplete, its length runs past the end of the
// file, it is the last frame in the file, or everything from it to the
// end of the file is zero bytes (a power cut after the file grew but
// before its data reached the disk). Any other bad frame is corruption:
// [Open] (last segment) or [Spool.Read] (earlier segments) returns a
// [*CorruptError] naming the file and offset, and nothing is skipped
// silently. One consequence: under FsyncInterval, a power cut that
// persisted later pages of the unsynced tail but not earlier ones makes
// Open fail on the last segment instead of guessing; the error says how
// to discard the tail.
//
// # Write failures
//
// A write that fails (the disk is full: ENOSPC, EDQUOT, EFBIG; or a new
// segment cannot be created) fails the appends of its group and of every
// group queued behind it, none of which was acknowledged, and the spool
// refuses appends (and [Spool.Admit]) from then on. It deletes its
// reserve file at once, so that a full disk still has room for the
// shipper's small writes (the cursor, the shipper's state), whose commits
// delete shipped segments. It recovers by itself: every
// [Options.RetryInterval] it truncates what the failed groups wrote (from
// the end of the last group written on) and fdatasyncs, checks that the
// disk has room again (statfs(2) reports the reserve's size and
// [RetryProbeBytes] more free) and writes the reserve back; then it
// forgets the discarded records and tells [Options.OnDiscard] which was
// the first of them (a builder that chains records, as the audit's hash
// chain does, rewinds to before it). Their positions hold the next
// records appended. A failed fdatasync is different: the kernel may have
// dropped the pages it could not write, so nothing in memory can say what
// is on disk, and the spool refuses appends until a restart ([Open] reads
// the files again).
//
// # Reading and shipping
//
// [Spool.Read] returns records from a position on. It returns only
// records that are durable: with FsyncInterval a Read that would stop at
// data not yet synced first runs an fdatasync. So a reader sees every
// record whose Append has returned, and whatever a shipper has sent is on
// disk: a power cut cannot take it back. [Spool.Notify] wakes a reader
// when more data became durable. [Spool.Commit] durably moves the cursor
// (temporary file, fsync, rename, directory fsync) and deletes the
// segments that lie entirely before it. After a restart, reading resumes
// at [Spool.Cursor], so records read but not committed are read again.
//
// The records appended last (up to [MemTailBytes] of frames) are also
// kept in memory as they were appended, and a Read that starts at one of
// them is served from there: a shipper that keeps up never reads the
// segment back (no pread, no copy, no second checksum pass), and one that
// fell behind reads the files until it reaches them. Either way Read
// returns the same records, and only durable ones.
//
// Replays are deterministic: Read(from, maxRecords, maxBytes) returns the
// longest run of records from from that fits the limits, crossing
// segment boundaries as needed, and next is the position just after the
// last record returned (never moved on to the following segment). So
// with the same from and limits, a replay returns the same records and the
// same next whenever the first read stopped at a limit (maxRecords
// reached, or the following record would have passed maxBytes). A read
// that stopped at the end of the data may return more on a replay; a
// shipper that needs exactly the same batch again records from, next and
// the count before it sends, and replays with Read(from, count, ...)
// (which returns exactly count records ending at next).
package spool

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Fsync policies for [Options.Fsync].
const (
	// FsyncAlways makes each record durable against power loss before
	// Append returns, sharing fdatasyncs among concurrent appenders.
	FsyncAlways = "always"
	// FsyncInterval makes each record survive a process crash before
	// Append returns and fdatasyncs in the background.
	FsyncInterval = "interval"
)

// Policies for [Options.OnFull].
const (
	// OnFullRefuse makes Append fail with [ErrFull] (and Admit report it),
	// so that the gateway refuses calls it cannot audit.
	OnFullRefuse = "refuse"
	// OnFullDrop makes Append discard the record, count it and log.
	OnFullDrop = "drop"
)

// Defaults for [Options].
const (
	DefaultFsyncInterval = 100 * time.Millisecond
	DefaultSegmentBytes  = 64 << 20
	DefaultBudgetBytes   = 1 << 30
	DefaultRetryInterval = time.Second
)

// RetryProbeBytes is the room (beyond the reserve's) a recovery from a
// write failure wants the file system to report free (statfs(2)) before
// it lets appends in again, so that a disk still full keeps the spool
// refusing instead of failing the next group's write.
const RetryProbeBytes = 1 << 20

// ReserveBytes is the size of the reserve file a spool keeps in its
// directory and deletes when a write finds the disk full.
const ReserveBytes = 1 << 20

// MaxRecordBytes bounds one record.
const MaxRecordBytes = 64 << 20

// MemTailBytes bounds the records (with their frame headers) a spool
// keeps in memory for its reader; older ones are read from the segment
// files. A shipper that reads at every fsync needs a small part of it;
// the rest covers an insert of a few seconds at thousands of events a
// second, during which the shipper does not read.
const MemTailBytes = 32 << 20

// Errors the spool returns.
var (
	// ErrFull is wrapped by Append and Admit when unshipped data reached
	// the budget and the policy is [OnFullRefuse]. It cannot be
	// audit.ErrSpoolFull itself, since package audit imports this one;
	// audit.ErrSpoolFull should be defined as this value.
	ErrFull = errors.New("audit spool full")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("audit spool closed")
)

// Options configure a [Spool]. The zero value is usable: every field's
// zero value means its default.
type Options struct {
	// Fsync is FsyncAlways or FsyncInterval; "" means FsyncInterval.
	Fsync string
	// FsyncInterval is how often FsyncInterval syncs in the background;
	// 0 means DefaultFsyncInterval.
	FsyncInterval time.Duration
	// SegmentBytes is the size a segment rotates at; 0 means 64 MiB.
	SegmentBytes int64
	// BudgetBytes bounds unshipped data (appended and not yet committed,
	// counting frame headers); 0 means 1 GiB and a negative value means
	// no limit.
	BudgetBytes int64
	// OnFull is what Append does at the budget: OnFullRefuse or
	// OnFullDrop; "" means OnFullRefuse.
	OnFull string
	// RetryInterval is how often a spool that failed a write tries to
	// recover (see the package comment); 0 means DefaultRetryInterval.
	RetryInterval time.Duration
	// OnDiscard, if set, is called when a spool recovers from a write
	// failure, with the first of the records it discarded: records that
	// were built and queued, whose appends failed, and that are no longer
	// in the spool; so is every record queued after it. It runs under
	// the spool's lock, as AppendFunc's build does, and must not call the
	// spool. An error keeps the spool refusing appends until a restart.
	OnDiscard func(first []byte) error
	// Logger receives warnings (torn tails, drops); nil means
	// slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	switch o.Fsync {
	case "":
		o.Fsync = FsyncInterval
	case FsyncAlways, FsyncInterval:
	default:
		return o, fmt.Errorf("audit spool fsync policy %q: want %q or %q", o.Fsync, FsyncAlways, FsyncInterval)
	}
	switch o.OnFull {
	case "":
		o.OnFull = OnFullRefuse
	case OnFullRefuse, OnFullDrop:
	default:
		return o, fmt.Errorf("audit spool full policy %q: want %q or %q", o.OnFull, OnFullRefuse, OnFullDrop)
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	switch {
	case o.BudgetBytes == 0:
		o.BudgetBytes = DefaultBudgetBytes
	case o.BudgetBytes < 0:
		o.BudgetBytes = 0 // internally, 0 is no limit
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Stats are a spool's counters, for metrics.
type Stats struct {
	// Segments is the number of segment files.
	Segments int
	// UnshippedBytes is appended data (with frame headers) after the
	// cursor; the budget applies to it.
	UnshippedBytes int64
	// BudgetBytes is the budget, 0 if unlimited.
	BudgetBytes int64
	// Appended and AppendedBytes count records acknowledged since Open.
	Appended      uint64
	AppendedBytes uint64
	// Dropped counts records discarded at the budget ([OnFullDrop]);
	// Refused counts appends refused at the budget ([OnFullRefuse]).
	Dropped uint64
	Refused uint64
	// Fsyncs counts fdatasyncs of segment files since Open, and
	// LastFsync is how long the latest one took.
	Fsyncs    uint64
	LastFsync time.Duration
	// Recoveries counts recoveries from write failures since Open, and
	// Discarded the records they discarded (appends that had failed).
	Recoveries uint64
	Discarded  uint64
}

// segment is one segment file. size is its final size once a later
// segment exists, the written size for the last one.
type segment struct {
	id   uint64
	size int64
}

// group is the records queued while one flush runs; the next flush
// writes them together.
type group struct {
	n, bytes uint64 // records, payload bytes
	err      error  // the outcome, set before done is closed
	// done is closed when the group is durable or failed; lead receives
	// a value when a waiter is to flush the group. The first caller that
	// waits makes both; a group nobody waits on has neither.
	done chan struct{}
	lead chan struct{}
}

// wait makes g's channels; mu held.
func (g *group) wait() {
	if g.done == nil {
		g.done, g.lead = make(chan struct{}), make(chan struct{}, 1)
	}
}

// chunk is a run of frames queued for one segment, starting at off.
type chunk struct {
	seg uint64
	off int64
	buf []byte
}

// Spool is an open spool directory. Its methods are safe for concurrent
// use.
type Spool struct {
	dir  string
	o    Options
	log  *slog.Logger
	lock *os.File

	// syncMu is held while an fdatasync of the active segment runs
	// outside the append path (background and read syncs) and while
	// rotation swaps the active segment, so that neither syncs a closed
	// file.
	syncMu sync.Mutex

	// cmu serializes Commit.
	cmu sync.Mutex

	mu sync.Mutex

	// The queue. Invariant: cur or flushing is non-nil only while leader
	// is set, and cur, if non-nil, has a waiter and channels.
	chunks     []chunk  // frames of cur, oldest first
	spare      []chunk  // the other half of the chunks double buffer
	free       [][]byte // reusable chunk buffers
	tail       Pos      // position after the last queued frame
	cur        *group   // records queued since the last flush began
	flushing   *group   // the group being flushed
	spareGroup *group   // a flushed group nobody waited on, for reuse
	leader     bool     // an appender is flushing (or a recovery runs)
	err        error    // an I/O failure: appends fail until it is recovered
	fatal      bool     // err is one only a restart recovers from
	failedAt   time.Time
	closed     bool

	// The file being written. file, fileSeg and fileEnd change only
	// while holding the leadership (and, for file, mu and syncMu).
	file    *os.File
	fileSeg uint64
	fileEnd int64

	segs      []segment // oldest first; the last is being written
	written   Pos       // end of data written to the file
	synced    Pos       // end of durable data: what Read returns
	cursor    Pos       // committed
	unshipped int64     // bytes after cursor, including queued
	notify    chan struct{}

	// The memory tail: the last records queued, as they were queued (at
	// most MemTailBytes of frames), oldest first. Read serves a run that
	// starts in it from here and drops the records up to the run's end;
	// the oldest go when it is full.
	mem      []Record
	memBytes int64
	evicted  Pos // end of the newest record dropped (or never kept) for room

	appended, appendedBytes uint64
	dropped, refused        uint64
	fsyncs                  uint64
	lastFsync               time.Duration
	recoveries, discarded   uint64
	fullLogged              time.Time // rate limit for budget messages
	fullSince               uint64    // drops or refusals not logged yet

	stop chan struct{}
	wg   sync.WaitGroup
}

// fullLogEvery rate-limits budget messages.
const fullLogEvery = 10 * time.Second

// maxSpareBuf bounds the chunk buffers kept for reuse.
const maxSpareBuf = 4 << 20

// Append adds rec (which Append copies) to the spool and returns once it
// is durable as [Options.Fsync] asks. At the budget, it writes nothing and
// either returns an error wrapping [ErrFull] ([OnFullRefuse]) or returns
// nil after counting and logging the drop ([OnFullDrop]). After an I/O
// error every Append fails until the spool recovers (see the package
// comment).
func (s *Spool) Append(rec []byte) error {
	return s.AppendFunc(func() ([]byte, error) { return bytes.Clone(rec), nil }, nil)
}

// AppendFunc is Append for a record built by build, which runs under the
// spool's lock right before the record is queued: records are in the
// spool in the order their build ran, while appenders still share fsyncs
// (a hash chain seals each record in build). The record build returns is
// the spool's from then on (a reader may get it as it is): build must not
// keep it to modify it later. If the record is then not
// queued (the budget, a closed or failed spool), undo runs, still under
// the lock, before AppendFunc returns; undo may be nil. build and undo
// must not call the spool.
func (s *Spool) AppendFunc(build func() ([]byte, error), undo func()) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("appending to audit spool %s: %w", s.dir, ErrClosed)
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	rec, err := build()
	if err == nil && len(rec) == 0 {
		err = errors.New("appending to audit spool: empty record")
	}
	if err == nil && len(rec) > MaxRecordBytes {
		err = fmt.Errorf("appending to audit spool: record of %d bytes is larger than the limit of %d", len(rec), MaxRecordBytes)
	}
	if err != nil {
		if undo != nil {
			undo()
		}
		s.mu.Unlock()
		return err
	}
	hdr := frameHeader(rec)
	n := int64(frameHeaderSize + len(rec))
	if b := s.o.BudgetBytes; b > 0 && s.unshipped+n > b {
		if undo != nil {
			undo()
		}
		return s.full(n) // unlocks
	}
	s.enqueue(hdr[:], rec, n)
	if !s.leader {
		s.leader = true
		return s.lead()
	}
	g := s.cur
	g.wait()
	s.mu.Unlock()
	select {
	case <-g.done:
		return g.err
	case <-g.lead:
		s.mu.Lock()
		return s.lead()
	}
}

// full handles a record of n bytes that does not fit the budget. It is
// called with mu held and releases it.
func (s *Spool) full(n int64) error {
	drop := s.o.OnFull == OnFullDrop
	if drop {
		s.dropped++
	} else {
		s.refused++
	}
	s.fullSince++
	unshipped, budget := s.unshipped, s.o.BudgetBytes
	var logCount uint64
	if now := time.Now(); now.Sub(s.fullLogged) >= fullLogEvery {
		s.fullLogged, logCount, s.fullSince = now, s.fullSince, 0
	}
	total := s.dropped
	s.mu.Unlock()
	if drop {
		if logCount > 0 {
			s.log.Error("audit spool full: DROPPING audit events; calls proceed unaudited until the shipper catches up",
				"dir", s.dir, "dropped", logCount, "dropped_total", total, "unshipped_bytes", unshipped, "budget_bytes", budget)
		}
		return nil
	}
	if logCount > 0 {
		s.log.Warn("audit spool full: refusing audit events (and the calls they record) until the shipper catches up",
			"dir", s.dir, "refused", logCount, "unshipped_bytes", unshipped, "budget_bytes", budget)
	}
	return fmt.Errorf("appending to audit spool %s: %d bytes unshipped, record of %d bytes exceeds the budget of %d: %w",
		s.dir, unshipped, n, budget, ErrFull)
}

// enqueue queues one frame in the current group; mu held.
func (s *Spool) enqueue(hdr, rec []byte, n int64) {
	if s.tail.Offset > 0 && s.tail.Offset+n > s.o.SegmentBytes {
		s.tail = Pos{Segment: s.tail.Segment + 1}
	}
	if k := len(s.chunks); k == 0 || s.chunks[k-1].seg != s.tail.Segment {
		var buf []byte
		if f := len(s.free); f > 0 {
			buf, s.free = s.free[f-1], s.free[:f-1]
		}
		s.chunks = append(s.chunks, chunk{seg: s.tail.Segment, off: s.tail.Offset, buf: buf})
	}
	c := &s.chunks[len(s.chunks)-1]
	c.buf = append(append(c.buf, hdr...), rec...)
	s.remember(Record{Pos: s.tail, Data: rec[:len(rec):len(rec)]}, n)
	s.tail.Offset += n
	s.unshipped += n
	if s.cur == nil {
		s.cur, s.spareGroup = s.spareGroup, nil
		if s.cur == nil {
			s.cur = new(group)
		}
	}
	s.cur.n++
	s.cur.bytes += uint64(len(rec))
}

// remember adds a queued record of n frame bytes to the memory tail,
// dropping the oldest records to stay within MemTailBytes; mu held.
func (s *Spool) remember(r Record, n int64) {
	if n > MemTailBytes {
		s.forget(len(s.mem))
		s.evicted = r.End()
		return
	}
	drop, free := 0, MemTailBytes-s.memBytes
	for free < n {
		free += s.mem[drop].frameSize()
		drop++
	}
	if drop > 0 {
		s.evicted = s.mem[drop-1].End()
	}
	s.forget(drop)
	s.mem = append(s.mem, r)
	s.memBytes += n
}

// forget drops the memory tail's first i records; mu held.
func (s *Spool) forget(i int) {
	for _, r := range s.mem[:i] {
		s.memBytes -= r.frameSize()
	}
	clear(s.mem[:i]) // let the records go (a reader has copies)
	if i == len(s.mem) {
		s.mem = s.mem[:0]
		return
	}
	s.mem = s.mem[i:]
}

// lead flushes the current group as the leader: it writes (and with
// FsyncAlways, syncs) the group's frames, publishes the outcome, and
// hands leadership to a waiter of the group queued meanwhile, if any. It
// is called with mu held and leader set, releases mu during I/O, and
// returns the group's outcome with mu released.
func (s *Spool) lead() error {
	g, chunks, end := s.cur, s.chunks, s.tail
	s.cur, s.flushing = nil, g
	s.chunks, s.spare = s.spare, nil

	err := s.err
	var took time.Duration
	synced := false
	if err == nil {
		s.mu.Unlock()
		for i := range chunks {
			if err = s.writeChunk(&chunks[i]); err != nil {
				break
			}
		}
		if err == nil && s.o.Fsync == FsyncAlways {
			start := time.Now()
			if err = fdatasync(s.file); err != nil {
				err = fatalIO{fmt.Errorf("syncing audit spool segment %s: %w", s.segPath(s.fileSeg), err)}
			}
			took, synced = time.Since(start), true
		}
		s.mu.Lock()
	}
	for i := range chunks {
		if b := chunks[i].buf; cap(b) <= maxSpareBuf && len(s.free) < 4 {
			s.free = append(s.free, b[:0])
		}
		chunks[i] = chunk{}
	}
	s.spare = chunks[:0]

	if err != nil {
		s.fail(err)
		g.err = s.err
	} else {
		s.appended += g.n
		s.appendedBytes += g.bytes
		s.written = end
		s.segs[len(s.segs)-1].size = end.Offset
		if synced {
			s.fsyncs++
			s.lastFsync = took
			s.advanceSynced(end)
		}
	}
	s.flushing = nil
	err = g.err
	if g.done != nil {
		close(g.done)
	} else {
		*g = group{} // nobody else saw it: reuse it
		s.spareGroup = g
	}
	if s.cur != nil {
		s.cur.lead <- struct{}{} // stays leader: a waiter of cur takes over
	} else {
		s.leader = false
	}
	s.mu.Unlock()
	return err
}

// writeChunk writes one chunk, rotating first if it starts a new segment.
// Called by the leader without mu.
func (s *Spool) writeChunk(c *chunk) error {
	if c.seg != s.fileSeg {
		if err := s.rotate(c.seg); err != nil {
			return err
		}
	}
	if _, err := s.file.WriteAt(c.buf, c.off); err != nil {
		return fmt.Errorf("writing audit spool segment %s at offset %d: %w", s.segPath(c.seg), c.off, err)
	}
	s.fileEnd = c.off + int64(len(c.buf))
	return nil
}

// rotate seals the active segment (fdatasync) and makes segment id, a new
// file, the active one. Called by the leader without mu.
func (s *Spool) rotate(id uint64) error {
	old, oldID, oldSize := s.file, s.fileSeg, s.fileEnd
	start := time.Now()
	if err := fdatasync(old); err != nil {
		return fatalIO{fmt.Errorf("syncing audit spool segment %s: %w", s.segPath(oldID), err)}
	}
	took := time.Since(start)
	f, err := createSegment(s.dir, id)
	if err != nil {
		return err
	}
	s.syncMu.Lock()
	s.mu.Lock()
	s.file, s.fileSeg, s.fileEnd = f, id, 0
	s.segs[len(s.segs)-1].size = oldSize
	s.segs = append(s.segs, segment{id: id})
	s.fsyncs++
	s.lastFsync = took
	// written and synced stay at the last group's end: the old segment's
	// tail holds this group's first records, which are the group's to
	// publish when all of it is written (and a recovery's to truncate if
	// it fails).
	s.mu.Unlock()
	s.syncMu.Unlock()
	if err := old.Close(); err != nil {
		s.log.Warn("audit spool: closing a sealed segment", "file", s.segPath(oldID), "error", err)
	}
	return nil
}

// fatalIO marks an I/O error only a restart recovers from: a failed
// fdatasync, after which the kernel may have dropped the pages it could
// not write.
type fatalIO struct{ err error }

func (e fatalIO) Error() string { return e.err.Error() }
func (e fatalIO) Unwrap() error { return e.err }

// fail records an I/O failure; mu held. Appends fail with it from then on
// (groups queued already fail when their leader runs) until recovery
// clears it, which recoverLoop tries unless the failure is fatal.
func (s *Spool) fail(err error) {
	if s.fatal {
		return
	}
	if errors.As(err, new(fatalIO)) {
		s.fatal = true
		s.err = fmt.Errorf("%w (the audit spool refuses events; restart to recover)", err)
		s.log.Error("audit spool I/O failure; refusing events until a restart", "dir", s.dir, "error", err)
		return
	}
	if s.err != nil {
		return
	}
	s.err = fmt.Errorf("%w (the audit spool refuses events until the write succeeds again; it retries every %v)", err, s.o.RetryInterval)
	s.failedAt = time.Now()
	s.log.Error("audit spool write failure; refusing events until it recovers", "dir", s.dir, "error", err, "retry_every", s.o.RetryInterval.String())
	if err := os.Remove(s.reservePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("audit spool: deleting its reserve to make room", "file", s.reservePath(), "error", err)
	}
	if !s.closed {
		s.wg.Add(1)
		go s.recoverLoop()
	}
}

// recoverLoop tries to recover from a write failure every RetryInterval
// until it has, the failure turned fatal, or the spool closes.
func (s *Spool) recoverLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.RetryInterval)
	defer t.Stop()
	var logged time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		done, err := s.recoverWrite()
		if done {
			return
		}
		if err != nil && time.Since(logged) >= fullLogEvery {
			logged = time.Now()
			s.log.Warn("audit spool: still cannot write; refusing events", "dir", s.dir, "error", err)
		}
	}
}

// recoverWrite is one attempt to recover from a write failure. It takes
// the leadership, so no flush runs meanwhile (and appends fail on s.err),
// and reclaims what the failed groups wrote: from the end of the last
// group written on, in its segment and any after it. Then it drops the
// discarded records from the queue's state, lets OnDiscard rewind, and
// clears the failure. done reports that there is nothing more to try.
func (s *Spool) recoverWrite() (done bool, err error) {
	s.mu.Lock()
	switch {
	case s.closed || s.err == nil || s.fatal:
		s.mu.Unlock()
		return true, nil
	case s.leader: // failed groups are still being handed their error
		s.mu.Unlock()
		return false, nil
	}
	// Everything from the last group's end on was written by groups that
	// failed: the rest of that segment, and any segment after it.
	base := s.written
	if base.less(s.evicted) {
		// Left as it is, a restart keeps what was written whole and
		// continues the chain after it, as after a crash.
		s.fail(fatalIO{errors.New("the appends that failed were too large to keep in memory, so the audit chain cannot be rewound")})
		s.mu.Unlock()
		return true, s.err
	}
	s.leader = true
	var cuts []segment
	for _, sg := range s.segs {
		switch {
		case sg.id == base.Segment && (sg.id == s.fileSeg || sg.size > base.Offset):
			cuts = append(cuts, segment{id: sg.id, size: base.Offset})
		case sg.id > base.Segment:
			cuts = append(cuts, segment{id: sg.id})
		}
	}
	s.mu.Unlock()

	s.syncMu.Lock()
	err = s.reclaim(cuts)
	s.syncMu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = false
	if err != nil {
		err = fmt.Errorf("recovering audit spool %s from a write failure: %w", s.dir, err)
		if errors.As(err, new(fatalIO)) {
			s.fail(err)
			return true, err
		}
		return false, err
	}
	for _, c := range cuts {
		s.segs[s.segIndex(c.id)].size = c.size
	}
	// The discarded records are the newest queued, from base on; the
	// memory tail still has them all unless it dropped one for room.
	i := len(s.mem)
	for i > 0 && !s.mem[i-1].Pos.less(base) {
		i--
	}
	if i < len(s.mem) && s.o.OnDiscard != nil {
		if err := s.o.OnDiscard(s.mem[i].Data); err != nil {
			s.fail(fatalIO{fmt.Errorf("rewinding after discarding the failed appends: %w", err)})
			return true, s.err
		}
	}
	n := len(s.mem) - i
	for _, r := range s.mem[i:] {
		s.memBytes -= r.frameSize()
	}
	clear(s.mem[i:])
	s.mem = s.mem[:i]
	s.fileEnd = s.segs[len(s.segs)-1].size
	s.tail = Pos{Segment: s.fileSeg, Offset: s.fileEnd}
	s.unshipped = s.bytesBetween(s.cursor, s.written)
	s.err = nil
	s.recoveries++
	s.discarded += uint64(n)
	s.log.Warn("audit spool recovered from a write failure; accepting events again",
		"dir", s.dir, "refused_for", time.Since(s.failedAt).Round(time.Millisecond).String(), "discarded_unacknowledged", n)
	return true, nil
}

// reclaim truncates the segments in cuts to their sizes (dropping what
// failed writes left) and syncs them, checks that the file system has
// room for the reserve and RetryProbeBytes more, and writes the reserve
// back. Only a failed sync is fatal.
func (s *Spool) reclaim(cuts []segment) error {
	for _, c := range cuts {
		f := s.file
		if c.id != s.fileSeg {
			var err error
			if f, err = os.OpenFile(s.segPath(c.id), os.O_RDWR, 0); err != nil {
				return err
			}
			defer f.Close()
		}
		if err := f.Truncate(c.size); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return fatalIO{err}
		}
	}
	free, err := freeBytes(s.dir)
	if err != nil {
		return err
	}
	if free < ReserveBytes+RetryProbeBytes {
		return fmt.Errorf("the disk is still full: %d bytes free, want %d to write again", free, ReserveBytes+RetryProbeBytes)
	}
	return makeReserve(s.reservePath())
}

// makeReserve writes the reserve file, ReserveBytes of zeros, unless it
// is there; on failure it leaves none.
func makeReserve(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() == ReserveBytes {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing the audit spool's reserve: %w", err)
	}
	_, err = f.Write(make([]byte, ReserveBytes))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing the audit spool's reserve: %w", err)
	}
	return nil
}

func (s *Spool) reservePath() string { return filepath.Join(s.dir, reserveFile) }

// advanceSynced moves the durable end to p and notifies readers; called
// with mu held.
func (s *Spool) advanceSynced(p Pos) {
	if !s.synced.less(p) {
		return
	}
	s.synced = p
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// syncNow fdatasyncs the active segment if written data is not yet
// durable.
func (s *Spool) syncNow() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	end, f, need := s.written, s.file, s.synced.less(s.written)
	s.mu.Unlock()
	if f == nil {
		return fmt.Errorf("syncing audit spool %s: %w", s.dir, ErrClosed)
	}
	if !need {
		return nil
	}
	start := time.Now()
	err := fdatasync(f)
	took := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.fail(fatalIO{fmt.Errorf("syncing audit spool segment %s: %w", s.segPath(end.Segment), err)})
		return s.err
	}
	s.fsyncs++
	s.lastFsync = took
	s.advanceSynced(end)
	return nil
}

// syncLoop is FsyncInterval's background fdatasync.
func (s *Spool) syncLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.syncNow(); err != nil && !errors.Is(err, ErrClosed) {
				return // fatal, logged by fail
			}
		}
	}
}

// Admit reports whether an event may be recorded now: it returns an error
// wrapping [ErrFull] when unshipped data reached the budget under
// [OnFullRefuse], the I/O error after one, and nil otherwise (always under
// [OnFullDrop]). The gateway calls it before starting work it would have
// to audit.
func (s *Spool) Admit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("audit spool %s: %w", s.dir, ErrClosed)
	case s.err != nil:
		return s.err
	case s.o.OnFull == OnFullRefuse && s.o.BudgetBytes > 0 && s.unshipped >= s.o.BudgetBytes:
		return fmt.Errorf("audit spool %s: %d bytes unshipped, budget %d: %w", s.dir, s.unshipped, s.o.BudgetBytes, ErrFull)
	}
	return nil
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Segments:       len(s.segs),
		UnshippedBytes: s.unshipped,
		BudgetBytes:    s.o.BudgetBytes,
		Appended:       s.appended,
		AppendedBytes:  s.appendedBytes,
		Dropped:        s.dropped,
		Refused:        s.refused,
		Fsyncs:         s.fsyncs,
		LastFsync:      s.lastFsync,
		Recoveries:     s.recoveries,
		Discarded:      s.discarded,
	}
}

// Close waits for appends in progress, syncs and closes the spool. Later
// calls return nil.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true // no more groups
	last := s.cur
	if last == nil {
		last = s.flushing
	}
	if last != nil {
		last.wait()
		s.mu.Unlock()
		<-last.done
		s.mu.Lock()
	}
	fatal := s.fatal
	s.mu.Unlock()

	close(s.stop)
	s.wg.Wait()

	var errs []error
	if !fatal {
		if err := s.syncNow(); err != nil {
			errs = append(errs, err)
		}
	}
	s.syncMu.Lock()
	s.mu.Lock()
	f := s.file
	s.file = nil
	close(s.notify) // nothing can advance the durable end any more
	s.mu.Unlock()
	s.syncMu.Unlock()
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing audit spool segment %s: %w", s.segPath(s.fileSeg), err))
	}
	if err := unlockDir(s.lock); err != nil {
		errs = append(errs, fmt.Errorf("unlocking audit spool %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

func (s *Spool) segPath(id uint64) string { return filepath.Join(s.dir, segName(id)) }
