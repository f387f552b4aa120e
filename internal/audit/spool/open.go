package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

const (
	cursorFile  = "cursor.json"
	lockFile    = "lock"
	reserveFile = "reserve"
)

// Open opens the spool in dir, creating the directory if needed. It takes
// an exclusive lock on the directory (a second Open fails until Close),
// truncates a torn tail of the last segment, deletes segments that are
// entirely shipped, and starts a new segment for appends. It fails with a
// [*CorruptError] if the last segment is damaged other than at its tail.
func Open(dir string, opts Options) (*Spool, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating audit spool: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("locking audit spool %s: %w (is another gateway using it?)", dir, err)
	}
	s := &Spool{
		dir:    dir,
		o:      o,
		log:    o.Logger,
		lock:   lock,
		notify: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	if err := s.recover(); err != nil {
		if s.file != nil {
			s.file.Close()
		}
		unlockDir(lock)
		return nil, err
	}
	if err := makeReserve(s.reservePath()); err != nil {
		s.log.Warn("audit spool: no reserve for a full disk", "dir", dir, "error", err)
	}
	if o.Fsync == FsyncInterval {
		s.wg.Add(1)
		go s.syncLoop()
	}
	return s, nil
}

func (s *Spool) cursorPath() string { return filepath.Join(s.dir, cursorFile) }

// recover rebuilds the spool's state from the directory.
func (s *Spool) recover() error {
	cur, err := readCursor(s.cursorPath())
	if err != nil {
		return err
	}
	if err := os.Remove(s.cursorPath() + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing a stale audit spool cursor: %w", err)
	}
	ids, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	for _, id := range ids[:max(len(ids)-1, 0)] {
		fi, err := os.Stat(s.segPath(id))
		if err != nil {
			return fmt.Errorf("opening audit spool segment: %w", err)
		}
		s.segs = append(s.segs, segment{id: id, size: fi.Size()})
	}
	// The last segment may end in a torn write. Keep it if it holds
	// data, and append to a new one, so that positions are never reused.
	next := cur.Segment + 1
	if len(ids) > 0 {
		last := ids[len(ids)-1]
		path := s.segPath(last)
		end, size, reason, err := recoverTail(path)
		if err != nil {
			return err
		}
		if end < size {
			s.log.Warn("audit spool: truncating a torn write at the tail (a crash interrupted it; it was never acknowledged)",
				"file", path, "offset", end, "bytes", size-end, "reason", reason)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("opening audit spool segment: %w", err)
		}
		if end < size {
			err = f.Truncate(end)
		}
		if err == nil {
			err = fdatasync(f) // what survived a process crash may not be on disk yet
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("recovering audit spool segment %s: %w", path, err)
		}
		s.segs = append(s.segs, segment{id: last, size: end})
		if end == 0 {
			s.file, s.fileSeg = f, last
		} else {
			f.Close()
			next = last + 1
		}
	}
	if s.file == nil {
		f, err := createSegment(s.dir, next)
		if err != nil {
			return err
		}
		s.file, s.fileSeg = f, next
		s.segs = append(s.segs, segment{id: next})
	}
	s.written = Pos{Segment: s.fileSeg}
	s.synced, s.tail = s.written, s.written

	s.cursor = s.placeCursor(cur)
	s.unshipped = s.bytesBetween(s.cursor, s.written)
	// Segments before the committed one are shipped (a crash after Commit
	// wrote the cursor leaves them). The committed segment itself stays,
	// even if it is entirely shipped, so that the position as committed
	// remains readable; a cursor that names no segment deletes nothing.
	for s.segIndex(cur.Segment) >= 0 && s.segs[0].id < cur.Segment {
		if err := os.Remove(s.segPath(s.segs[0].id)); err != nil {
			return fmt.Errorf("deleting a shipped audit spool segment: %w", err)
		}
		s.segs = s.segs[1:]
	}
	return nil
}

// placeCursor maps the committed position onto the segments found. Only
// damage or files removed by hand make it differ, and then it moves to
// the nearest place that re-reads rather than skips what remains.
func (s *Spool) placeCursor(cur Pos) Pos {
	first, last := s.segs[0], s.segs[len(s.segs)-1]
	warn := func(msg string, at Pos) Pos {
		s.log.Warn("audit spool: "+msg, "dir", s.dir, "cursor", cur, "resuming_at", at)
		return at
	}
	switch {
	case cur == Pos{}:
		return Pos{Segment: first.id}
	case cur.Segment < first.id:
		return warn("the segment the cursor points into is missing; events may have been lost", Pos{Segment: first.id})
	case cur.Segment > last.id:
		return warn("the cursor is past the last segment; re-reading everything", Pos{Segment: first.id})
	}
	i := s.segIndex(cur.Segment)
	if i < 0 {
		i = slices.IndexFunc(s.segs, func(sg segment) bool { return sg.id > cur.Segment })
		return warn("the segment the cursor points into is missing; events may have been lost", Pos{Segment: s.segs[i].id})
	}
	if cur.Offset > s.segs[i].size {
		cur = warn("the cursor is past the end of its segment", Pos{Segment: cur.Segment, Offset: s.segs[i].size})
	}
	return s.normalize(cur)
}
