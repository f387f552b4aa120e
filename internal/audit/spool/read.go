package spool

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Pos is a position in the spool: a segment number and the byte offset of
// a record in it. {N, size of N} and {N+1, 0} name the same place once
// segment N+1 exists; the spool accepts both.
type Pos struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// Compare orders positions: -1 if p is before q, 0 if equal, +1 after.
// It compares the fields, so {N, size of N} is before {N+1, 0}.
func (p Pos) Compare(q Pos) int {
	if c := cmp.Compare(p.Segment, q.Segment); c != 0 {
		return c
	}
	return cmp.Compare(p.Offset, q.Offset)
}

func (p Pos) less(q Pos) bool { return p.Compare(q) < 0 }

// String formats p as segment:offset.
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Record is one record read from the spool.
type Record struct {
	// Pos is where the record starts.
	Pos Pos
	// Data is the record as appended; the caller owns it.
	Data []byte
}

// End is the position just after r.
func (r Record) End() Pos {
	return Pos{Segment: r.Pos.Segment, Offset: r.Pos.Offset + r.frameSize()}
}

// frameSize is the bytes r takes in its segment, its frame header included.
func (r Record) frameSize() int64 { return frameHeaderSize + int64(len(r.Data)) }

// Cursor returns the committed position: reading resumes there after a
// restart.
func (s *Spool) Cursor() Pos {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

// Notify returns a channel that receives a value after more data became
// readable (durable), and is closed by Close. It holds at most one pending
// value, so it suits one consumer: read until Read returns nothing, then
// wait on the channel.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Read returns up to maxRecords records, together at most maxBytes of
// data (but always at least one record when one is readable), starting at
// from, and the position after the last one returned. maxRecords or
// maxBytes ≤ 0 means no limit. At the end of the data it returns no
// records, next == from and a nil error.
//
// Read returns every record whose Append has returned, and only durable
// ones: under FsyncInterval it runs an fdatasync first when it would stop
// at data not yet synced. A damaged record is a [*CorruptError]; a
// position before the first segment (shipped and deleted) or after the
// end is an error. See the package documentation for what a replay of the
// same Read returns.
func (s *Spool) Read(from Pos, maxRecords, maxBytes int) (recs []Record, next Pos, err error) {
	return s.read(from, maxRecords, maxBytes, true)
}

// ReadSynced is Read without the fdatasync: it returns only the records
// already durable. A reader woken by [Spool.Notify] uses it: it gets what
// the sync that woke it made durable, and what was appended since comes
// with the next sync, instead of a second fdatasync right after the
// first. Under FsyncAlways it is Read.
func (s *Spool) ReadSynced(from Pos, maxRecords, maxBytes int) (recs []Record, next Pos, err error) {
	return s.read(from, maxRecords, maxBytes, false)
}

func (s *Spool) read(from Pos, maxRecords, maxBytes int, sync bool) (recs []Record, next Pos, err error) {
	if sync {
		s.mu.Lock()
		if err := s.checkLocked(from); err != nil {
			s.mu.Unlock()
			return nil, from, fmt.Errorf("reading audit spool %s at %v: %w", s.dir, from, err)
		}
		need := s.synced.less(s.written) && s.normalize(from).less(s.normalize(s.written))
		s.mu.Unlock()
		if need {
			if err := s.syncNow(); err != nil {
				return nil, from, err
			}
		}
	}

	s.mu.Lock()
	if err := s.checkLocked(from); err != nil {
		s.mu.Unlock()
		return nil, from, fmt.Errorf("reading audit spool %s at %v: %w", s.dir, from, err)
	}
	start, end := s.normalize(from), s.normalize(s.synced)
	if !start.less(end) {
		s.mu.Unlock()
		return nil, from, nil
	}
	if recs, ok := s.readMem(start, end, maxRecords, maxBytes); ok {
		s.mu.Unlock()
		return recs, recs[len(recs)-1].End(), nil
	}
	i, j := s.segIndex(start.Segment), s.segIndex(end.Segment)
	segs := slices.Clone(s.segs[i : j+1])
	s.mu.Unlock()
	segs[len(segs)-1].size = end.Offset

	off, nbytes := start.Offset, 0
	for _, sg := range segs {
		if maxRecords > 0 && len(recs) >= maxRecords {
			break
		}
		var full bool
		recs, nbytes, full, err = s.readFrames(sg, off, recs, nbytes, maxRecords, maxBytes)
		if err != nil {
			return nil, from, err
		}
		if full {
			break
		}
		off = 0
	}
	if len(recs) == 0 {
		return nil, from, nil
	}
	return recs, recs[len(recs)-1].End(), nil
}

// readMem is Read from the memory tail: when a record there starts at
// start (normalized, before end), it returns the run of records from it
// that end by end (the durable end, normalized) within the limits, as
// Read would from the file, and forgets them and everything before; ok is
// false when start is not in the memory tail. mu held.
func (s *Spool) readMem(start, end Pos, maxRecords, maxBytes int) (recs []Record, ok bool) {
	i, found := slices.BinarySearchFunc(s.mem, start, func(r Record, p Pos) int { return r.Pos.Compare(p) })
	if !found {
		return nil, false
	}
	j, nbytes := i, 0
	for j < len(s.mem) {
		r := s.mem[j]
		if end.less(r.End()) ||
			(maxRecords > 0 && j-i >= maxRecords) ||
			(maxBytes > 0 && j > i && nbytes+len(r.Data) > maxBytes) {
			break
		}
		nbytes += len(r.Data)
		j++
	}
	if j == i {
		// Not durable yet: cannot happen, as start is before end and
		// records are contiguous; read the file, which will say why.
		return nil, false
	}
	recs = slices.Clone(s.mem[i:j])
	s.forget(j)
	return recs, true
}

// readFrames appends the records of sg from off to sg.size to recs, until
// a limit is reached (full).
func (s *Spool) readFrames(sg segment, off int64, recs []Record, nbytes, maxRecords, maxBytes int) (_ []Record, _ int, full bool, _ error) {
	if off >= sg.size {
		return recs, nbytes, false, nil
	}
	path := s.segPath(sg.id)
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading audit spool: %w", err)
	}
	defer f.Close()
	// The segment is read in chunks of up to readChunk bytes, and each
	// record's Data is a slice of its chunk: one read and one allocation
	// per chunk, not a buffered reader and an allocation per record.
	var buf []byte // the segment's bytes from bufOff
	bufOff := off
	fill := func(need int64) error { // makes buf hold [off, off+need)
		if off+need <= bufOff+int64(len(buf)) {
			return nil
		}
		b := make([]byte, max(need, min(sg.size-off, readChunk)))
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("reading audit spool segment %s at offset %d: %w", path, off, err)
		}
		buf, bufOff = b, off
		return nil
	}
	for off < sg.size {
		if maxRecords > 0 && len(recs) >= maxRecords {
			return recs, nbytes, true, nil
		}
		if sg.size-off < frameHeaderSize {
			return nil, 0, false, &CorruptError{File: path, Offset: off, Reason: "incomplete frame header"}
		}
		if err := fill(frameHeaderSize); err != nil {
			return nil, 0, false, err
		}
		hdr := buf[off-bufOff:]
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		switch {
		case n == 0 || n > MaxRecordBytes:
			return nil, 0, false, &CorruptError{File: path, Offset: off, Reason: fmt.Sprintf("invalid record length %d", n)}
		case off+frameHeaderSize+n > sg.size:
			return nil, 0, false, &CorruptError{File: path, Offset: off, Reason: fmt.Sprintf("record of %d bytes runs past the end of the data at %d", n, sg.size)}
		case maxBytes > 0 && len(recs) > 0 && nbytes+int(n) > maxBytes:
			return recs, nbytes, true, nil
		}
		if err := fill(frameHeaderSize + n); err != nil {
			return nil, 0, false, err
		}
		start := off - bufOff + frameHeaderSize
		data := buf[start : start+n : start+n]
		if frameCRC(uint32(n), data) != sum {
			return nil, 0, false, &CorruptError{File: path, Offset: off, Reason: "checksum mismatch"}
		}
		recs = append(recs, Record{Pos: Pos{Segment: sg.id, Offset: off}, Data: data})
		nbytes += int(n)
		off += frameHeaderSize + n
	}
	return recs, nbytes, false, nil
}

// Commit durably records that everything before pos is shipped, and
// deletes the segments before pos's segment (that one stays until a later
// Commit or Open, so that pos itself can still be read from). pos is a
// position Read returned (a record's start, or next). Committing a
// position at or before the cursor does nothing; one past the readable
// data is an error.
func (s *Spool) Commit(pos Pos) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	if !s.closed && !s.cursor.less(pos) {
		s.mu.Unlock()
		return nil // already committed
	}
	err := s.checkLocked(pos)
	p := pos
	if err == nil {
		p = s.normalize(pos)
		if s.normalize(s.synced).less(p) {
			err = fmt.Errorf("position is past the readable data, which ends at %v", s.synced)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("committing audit spool %s at %v: %w", s.dir, pos, err)
	}

	if err := writeCursor(s.cursorPath(), p); err != nil {
		return err
	}

	s.mu.Lock()
	s.unshipped -= s.bytesBetween(s.cursor, p)
	s.cursor = p
	// Delete before pos as given, not as normalized: a reader may go on
	// from {N, size of N}, so N stays until a later commit.
	var gone []uint64
	for len(s.segs) > 1 && s.segs[0].id < pos.Segment {
		gone = append(gone, s.segs[0].id)
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	for _, id := range gone {
		if err := os.Remove(s.segPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Open deletes it next time.
			s.log.Warn("audit spool: deleting a shipped segment", "file", s.segPath(id), "error", err)
		}
	}
	return nil
}

// checkLocked returns why p is not a position in the spool; mu held.
func (s *Spool) checkLocked(p Pos) error {
	switch {
	case s.closed:
		return ErrClosed
	case p.Offset < 0:
		return errors.New("negative offset")
	case p.Segment < s.segs[0].id:
		return fmt.Errorf("segment %d was shipped and deleted (the first segment is %d)", p.Segment, s.segs[0].id)
	}
	i := s.segIndex(p.Segment)
	if i < 0 {
		if p.Segment > s.segs[len(s.segs)-1].id {
			return fmt.Errorf("position is past the end of the spool, %v", s.written)
		}
		return fmt.Errorf("segment %d does not exist", p.Segment)
	}
	if p.Offset > s.segs[i].size {
		return fmt.Errorf("position is past the end of segment %d (%d bytes written)", p.Segment, s.segs[i].size)
	}
	return nil
}

// segIndex is the index of segment id in s.segs, or -1; mu held.
func (s *Spool) segIndex(id uint64) int {
	i, ok := slices.BinarySearchFunc(s.segs, id, func(sg segment, id uint64) int { return cmp.Compare(sg.id, id) })
	if !ok {
		return -1
	}
	return i
}

// normalize moves p from the end of a sealed segment to the start of the
// next one; mu held, p valid.
func (s *Spool) normalize(p Pos) Pos {
	i := s.segIndex(p.Segment)
	for i >= 0 && i < len(s.segs)-1 && p.Offset == s.segs[i].size {
		i++
		p = Pos{Segment: s.segs[i].id}
	}
	return p
}

// bytesBetween is the size of the data from a to b (a ≤ b, both valid
// and normalized); mu held.
func (s *Spool) bytesBetween(a, b Pos) int64 {
	if a.Segment == b.Segment {
		return b.Offset - a.Offset
	}
	i, j := s.segIndex(a.Segment), s.segIndex(b.Segment)
	n := s.segs[i].size - a.Offset + b.Offset
	for k := i + 1; k < j; k++ {
		n += s.segs[k].size
	}
	return n
}

// jsonUnmarshalStrict decodes one JSON value, rejecting unknown fields.
func jsonUnmarshalStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
