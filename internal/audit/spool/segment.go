package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// frameHeaderSize is the length and CRC before each payload.
const frameHeaderSize = 8

// readChunk is how much of a segment Read reads at once.
const readChunk = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameHeader is the header of the frame holding rec.
func frameHeader(rec []byte) [frameHeaderSize]byte {
	var h [frameHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(h[4:8], frameCRC(uint32(len(rec)), rec))
	return h
}

// frameCRC is the checksum of a frame: CRC-32C of the length field
// (little endian) followed by the payload.
func frameCRC(n uint32, payload []byte) uint32 {
	// The four length bytes go through the table here rather than
	// crc32.Update, which would make them escape (an allocation per
	// record).
	crc := ^uint32(0)
	for i := range 4 {
		crc = castagnoli[byte(crc)^byte(n>>(8*i))] ^ crc>>8
	}
	return crc32.Update(^crc, castagnoli, payload)
}

const segSuffix = ".seg"

// segName is the file name of segment id: 20 digits, so that names sort
// like numbers.
func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segSuffix) }

// parseSegName returns the id in a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil && id > 0
}

// CorruptError reports a frame that fails its checks where a torn write
// cannot explain it. Nothing after it is read: inspect the file, then
// move it aside or truncate it to Offset to discard the rest.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("audit spool segment %s is corrupt at offset %d: %s (inspect the file, then truncate it to %d bytes or move it aside to discard what follows)",
		e.File, e.Offset, e.Reason, e.Offset)
}

// createSegment creates the file of segment id, which must not exist, and
// makes its directory entry durable.
func createSegment(dir string, id uint64) (*os.File, error) {
	path := filepath.Join(dir, segName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating audit spool segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, fatalIO{err}
	}
	return f, nil
}

// syncDir fsyncs a directory, making entries created or renamed in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// listSegments returns the ids of the segment files in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing audit spool %s: %w", dir, err)
	}
	var ids []uint64
	for _, e := range ents {
		if id, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// recoverTail checks every frame of the last segment and returns where
// valid data ends: the file size, or the start of a torn tail (reason
// says why it counts as one). Bad frames that are not a torn tail are a
// [*CorruptError].
func recoverTail(path string) (end, size int64, reason string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, "", fmt.Errorf("opening audit spool segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, "", fmt.Errorf("opening audit spool segment: %w", err)
	}
	size = fi.Size()
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [frameHeaderSize]byte
	var buf []byte
	var off int64
	for off < size {
		bad := ""
		if size-off < frameHeaderSize {
			return off, size, "incomplete frame header", nil
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return 0, 0, "", fmt.Errorf("reading audit spool segment %s at offset %d: %w", path, off, err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		switch {
		case n == 0 || n > MaxRecordBytes:
			bad = fmt.Sprintf("invalid record length %d", n)
		case off+frameHeaderSize+n > size:
			return off, size, "record runs past the end of the file", nil
		default:
			buf = slices.Grow(buf[:0], int(n))[:n]
			if _, err := io.ReadFull(r, buf); err != nil {
				return 0, 0, "", fmt.Errorf("reading audit spool segment %s at offset %d: %w", path, off, err)
			}
			if frameCRC(uint32(n), buf) != binary.LittleEndian.Uint32(hdr[4:8]) {
				if off+frameHeaderSize+n == size {
					return off, size, "checksum mismatch in the last record", nil
				}
				bad = "checksum mismatch"
			}
		}
		if bad != "" {
			zero, err := zeroFrom(f, off, size)
			if err != nil {
				return 0, 0, "", fmt.Errorf("reading audit spool segment %s: %w", path, err)
			}
			if zero {
				return off, size, "zero bytes to the end of the file", nil
			}
			return 0, 0, "", &CorruptError{File: path, Offset: off, Reason: bad}
		}
		off += frameHeaderSize + n
	}
	return size, size, "", nil
}

// zeroFrom reports whether f holds only zero bytes in [off, size).
func zeroFrom(f *os.File, off, size int64) (bool, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), 1<<20)
	for {
		b, err := r.ReadByte()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if b != 0 {
			return false, nil
		}
	}
}

// readCursor reads the committed position; a missing file is the zero
// position.
func readCursor(path string) (Pos, error) {
	var p Pos
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("reading audit spool cursor: %w", err)
	}
	if err := jsonUnmarshalStrict(b, &p); err != nil {
		return p, fmt.Errorf("reading audit spool cursor %s: %w", path, err)
	}
	return p, nil
}

// writeCursor replaces the cursor file atomically and durably.
func writeCursor(path string, p Pos) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing audit spool cursor: %w", err)
	}
	_, err = fmt.Fprintf(f, "{\"segment\":%d,\"offset\":%d}\n", p.Segment, p.Offset)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("writing audit spool cursor %s: %w", tmp, err)
	}
	return syncDir(filepath.Dir(path))
}
