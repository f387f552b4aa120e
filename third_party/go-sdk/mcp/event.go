// Copyright 2025 The Go MCP SDK Authors. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

// This file is for SSE events.
// See https://developer.mozilla.org/en-US/docs/Web/API/Server-sent_events/Using_server-sent_events.

package mcp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// If true, MemoryEventStore will do frequent validation to check invariants, slowing it down.
// Enable for debugging.
const validateMemoryEventStore = false

// An Event is a server-sent event.
// See https://developer.mozilla.org/en-US/docs/Web/API/Server-sent_events/Using_server-sent_events#fields.
type Event struct {
	Name  string // the "event" field
	ID    string // the "id" field
	Data  []byte // the "data" field
	Retry string // the "retry" field
}

// Empty reports whether the Event is empty.
func (e Event) Empty() bool {
	return e.Name == "" && e.ID == "" && len(e.Data) == 0 && e.Retry == ""
}

// writeEvent writes the event to w, and flushes.
func writeEvent(w http.ResponseWriter, evt Event) (int, error) {
	n, err := writeEventBuffered(w, evt)
	rc := http.NewResponseController(w)
	// Ignore returned error as flushing is best-effort.
	_ = rc.Flush()
	return n, err
}

// writeEventBuffered is writeEvent without the flush: for the last event
// of a response, which the handler's return flushes together with the end
// of the body. The client then reads both at once, so an HTTP/1.1 client
// that stops reading at that event still finds the body complete and
// keeps the connection, and the server makes one write instead of two.
func writeEventBuffered(w http.ResponseWriter, evt Event) (int, error) {
	b := eventBuffers.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= maxPooledEventBuffer {
			b.Reset()
			eventBuffers.Put(b)
		}
	}()
	if evt.Name != "" {
		b.WriteString("event: ")
		b.WriteString(evt.Name)
		b.WriteByte('\n')
	}
	if evt.ID != "" {
		b.WriteString("id: ")
		b.WriteString(evt.ID)
		b.WriteByte('\n')
	}
	if evt.Retry != "" {
		b.WriteString("retry: ")
		b.WriteString(evt.Retry)
		b.WriteByte('\n')
	}
	// Write the payload directly into a pre-grown buffer to avoid the extra
	// copy from string(evt.Data) and repeated buffer regrowths.
	b.Grow(len("data: \n\n") + len(evt.Data))
	b.WriteString("data: ")
	b.Write(evt.Data)
	b.WriteString("\n\n")
	return w.Write(b.Bytes())
}

// eventBuffers holds writeEvent's buffers; those grown past
// maxPooledEventBuffer by a large event are left to the collector.
var eventBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledEventBuffer = 64 << 10

// DefaultMaxEventSize is the default maximum number of bytes buffered while
// reading a single server-sent event before the input is rejected.
const DefaultMaxEventSize = 16 << 20 // 16 MiB

// eventSizeLimit resolves a MaxEventSize option: 0 selects
// [DefaultMaxEventSize], a negative value means no cap.
func eventSizeLimit(n int) int {
	if n == 0 {
		return DefaultMaxEventSize
	}
	return n
}

// scanEventsLimited iterates SSE events in the given reader, buffering at most
// maxEventSize bytes per event. When maxEventSize > 0, an event is reported as
// [errMalformedEvent] once its size exceeds it; a non-positive maxEventSize
// disables the cap.
//
// The iterated error is terminal: if encountered, the stream is corrupt or
// broken and should no longer be used.
//
// TODO(rfindley): consider a different API here that makes failure modes more
// apparent.
func scanEventsLimited(r io.Reader, maxEventSize int) iter.Seq2[Event, error] {
	// TODO: investigate proper behavior when events are out of order, or have
	// non-standard names.
	var (
		eventKey = []byte("event")
		idKey    = []byte("id")
		dataKey  = []byte("data")
		retryKey = []byte("retry")
	)

	return func(yield func(Event, error) bool) {
		// The reader's 4 KB buffer is reused across streams (a client
		// reads one stream per request); events never alias it, their
		// data is copied out.
		reader := eventReaders.Get().(*bufio.Reader)
		reader.Reset(r)
		defer func() {
			reader.Reset(nil)
			eventReaders.Put(reader)
		}()
		// iterate event from the wire.
		// https://developer.mozilla.org/en-US/docs/Web/API/Server-sent_events/Using_server-sent_events#examples
		//
		//  - `key: value` line records.
		//  - Consecutive `data: ...` fields are joined with newlines.
		//  - Unrecognized fields are ignored. Since we only care about 'event', 'id', and
		//   'data', these are the only three we consider.
		//  - Lines starting with ":" are ignored.
		//  - Records are terminated with two consecutive newlines.
		var (
			evt        Event
			dataBuf    *bytes.Buffer // if non-nil, preceding field was also data
			eventBytes int           // bytes read for the current, in-progress event
		)
		yieldEvent := func() bool {
			if dataBuf != nil {
				evt.Data = dataBuf.Bytes()
				dataBuf = nil
			}
			if evt.Empty() {
				return true
			}
			if !yield(evt, nil) {
				return false
			}
			evt = Event{}
			return true
		}
		for {
			budget := -1
			if maxEventSize > 0 {
				budget = maxEventSize - eventBytes
			}
			line, err := readEventLine(reader, budget)
			if errors.Is(err, errEventTooLarge) {
				yield(Event{}, fmt.Errorf("%w: SSE event exceeded %d bytes without terminating", errMalformedEvent, maxEventSize))
				return
			}
			if err != nil && !errors.Is(err, io.EOF) {
				yield(Event{}, fmt.Errorf("error reading event: %v", err))
				return
			}
			eventBytes += len(line)
			line = bytes.TrimRight(line, "\r\n")
			isEOF := errors.Is(err, io.EOF)

			if len(line) == 0 {
				if !yieldEvent() {
					return
				}
				eventBytes = 0 // reset the budget between events
				if isEOF {
					return
				}
				continue
			}
			before, after, found := bytes.Cut(line, []byte{':'})
			if !found {
				yield(Event{}, fmt.Errorf("%w: malformed line in SSE stream: %q", errMalformedEvent, string(line)))
				return
			}
			switch {
			case bytes.Equal(before, eventKey):
				evt.Name = strings.TrimSpace(string(after))
			case bytes.Equal(before, idKey):
				evt.ID = strings.TrimSpace(string(after))
			case bytes.Equal(before, retryKey):
				evt.Retry = strings.TrimSpace(string(after))
			case bytes.Equal(before, dataKey):
				data := bytes.TrimSpace(after)
				if dataBuf == nil {
					dataBuf = new(bytes.Buffer)
				} else {
					dataBuf.WriteByte('\n')
				}
				dataBuf.Write(data)
			}

			if isEOF {
				yieldEvent()
				return
			}
		}
	}
}

var eventReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// An EventStore tracks data for SSE streams.
// A single EventStore suffices for all sessions, since session IDs are
// globally unique. So one EventStore can be created per process, for
// all Servers in the process.
// Such a store is able to bound resource usage for the entire process.
//
// All of an EventStore's methods must be safe for use by multiple goroutines.
type EventStore interface {
	// Open is called when a new stream is created. It may be used to ensure that
	// the underlying data structure for the stream is initialized, making it
	// ready to store and replay event streams.
	Open(_ context.Context, sessionID, streamID string) error

	// Append appends data for an outgoing event to given stream, which is part of the
	// given session.
	Append(_ context.Context, sessionID, streamID string, data []byte) error

	// After returns an iterator over the data for the given session and stream, beginning
	// just after the given index.
	//
	// Once the iterator yields a non-nil error, it will stop.
	// After's iterator must return an error immediately if any data after index was
	// dropped; it must not return partial results.
	// The stream must have been opened previously (see [EventStore.Open]).
	After(_ context.Context, sessionID, streamID string, index int) iter.Seq2[[]byte, error]

	// SessionClosed informs the store that the given session is finished, along
	// with all of its streams.
	//
	// A store cannot rely on this method being called for cleanup. It should institute
	// additional mechanisms, such as timeouts, to reclaim storage.
	SessionClosed(_ context.Context, sessionID string) error

	// There is no StreamClosed method. A server doesn't know when a stream is finished, because
	// the client can always send a GET with a Last-Event-ID referring to the stream.
}

// A dataList is a list of []byte.
// The zero dataList is ready to use.
type dataList struct {
	size  int // total size of data bytes
	first int // the stream index of the first element in data
	data  [][]byte
	// done: the stream will get no more data (see [MemoryEventStore.streamDone]);
	// once purged empty, the list is removed.
	done bool
	// streams (its session's map in [MemoryEventStore.store]) and stream
	// locate the list for the purge, which meets it in the store's append
	// order.
	streams map[string]*dataList
	stream  string
	// gone: the list was removed from the store (its session closed, or it
	// was done and purged empty); its entries left in the append order are
	// skipped.
	gone bool
}

func (dl *dataList) appendData(d []byte) {
	// Empty data consumes memory but doesn't increment size. However, it should
	// be rare.
	dl.data = append(dl.data, d)
	dl.size += len(d)
}

// removeFirst removes the first data item in dl, returning the size of the item.
// It panics if dl is empty.
func (dl *dataList) removeFirst() int {
	if len(dl.data) == 0 {
		panic("empty dataList")
	}
	r := len(dl.data[0])
	dl.size -= r
	dl.data[0] = nil // help GC
	dl.data = dl.data[1:]
	dl.first++
	return r
}

// A MemoryEventStore is an [EventStore] backed by memory.
//
// When its data exceed the limit (see [MemoryEventStore.SetMaxBytes]), the
// store drops the oldest data first, whichever stream holds them, so it
// keeps the most recent events of all streams for replay.
type MemoryEventStore struct {
	mu       sync.Mutex
	maxBytes int                             // max total size of all data
	nBytes   int                             // current total size of all data
	store    map[string]map[string]*dataList // session ID -> stream ID -> *dataList
	// order holds, oldest first from order[head], the list of every data
	// item stored, in the order the items were appended: the purge drops
	// the first item of order[head]'s list. Entries of gone lists (stale
	// counts them) are skipped, and compacted away once they are most.
	order []*dataList
	head  int
	stale int
}

// MemoryEventStoreOptions are options for a [MemoryEventStore].
type MemoryEventStoreOptions struct{}

// MaxBytes returns the maximum number of bytes that the store will retain before
// purging data.
func (s *MemoryEventStore) MaxBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxBytes
}

// SetMaxBytes sets the maximum number of bytes the store will retain before purging
// data. The argument must not be negative. If it is zero, a suitable default will be used.
// SetMaxBytes can be called at any time. The size of the store will be adjusted
// immediately.
func (s *MemoryEventStore) SetMaxBytes(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case n < 0:
		panic("negative argument")
	case n == 0:
		s.maxBytes = defaultMaxBytes
	default:
		s.maxBytes = n
	}
	s.purge()
}

const defaultMaxBytes = 10 << 20 // 10 MiB

// NewMemoryEventStore creates a [MemoryEventStore] with the default value
// for MaxBytes.
func NewMemoryEventStore(opts *MemoryEventStoreOptions) *MemoryEventStore {
	return &MemoryEventStore{
		maxBytes: defaultMaxBytes,
		store:    make(map[string]map[string]*dataList),
	}
}

// Open implements [EventStore.Open]. It ensures that the underlying data
// structures for the given session are initialized and ready for use.
func (s *MemoryEventStore) Open(_ context.Context, sessionID, streamID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init(sessionID, streamID)
	return nil
}

// init is an internal helper function that ensures the nested map structure for a
// given sessionID and streamID exists, creating it if necessary. It returns the
// dataList associated with the specified IDs.
// Requires s.mu.
func (s *MemoryEventStore) init(sessionID, streamID string) *dataList {
	streamMap, ok := s.store[sessionID]
	if !ok {
		streamMap = make(map[string]*dataList)
		s.store[sessionID] = streamMap
	}
	dl, ok := streamMap[streamID]
	if !ok {
		dl = &dataList{streams: streamMap, stream: streamID}
		streamMap[streamID] = dl
	}
	return dl
}

// Append implements [EventStore.Append] by recording data in memory.
func (s *MemoryEventStore) Append(_ context.Context, sessionID, streamID string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dl := s.init(sessionID, streamID)
	dl.appendData(data)
	s.nBytes += len(data)
	s.order = append(s.order, dl)
	// The item just added stays, even if it alone exceeds maxBytes.
	s.purgeKeeping(1)
	return nil
}

// streamDone implements [streamDoneNotifier]. A done stream keeps its data
// for replay until purged; once it holds none it is forgotten, so that a
// long session's stream IDs (one for every POST) do not accumulate. A
// replay of a forgotten stream fails as one of a purged stream does.
func (s *MemoryEventStore) streamDone(sessionID, streamID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sm := s.store[sessionID]
	if dl, ok := sm[streamID]; ok {
		dl.done = true
		s.forgetIfPurged(sm, streamID, dl)
	}
}

// forgetIfPurged removes dl, the list of streamID in sm, if it is done and
// holds no data. It must be called with s.mu held.
func (s *MemoryEventStore) forgetIfPurged(sm map[string]*dataList, streamID string, dl *dataList) {
	if dl.done && dl.size == 0 {
		delete(sm, streamID)
		s.drop(dl)
	}
}

// drop marks dl, just removed from the store, gone: its items left in
// s.order (empty ones, such as priming events) are stale. It must be
// called with s.mu held.
func (s *MemoryEventStore) drop(dl *dataList) {
	dl.gone = true
	s.stale += len(dl.data)
	dl.data = nil
	if live := len(s.order) - s.head - s.stale; s.stale > 256 && s.stale > live {
		// DeleteFunc zeroes the entries it leaves behind.
		s.order = slices.DeleteFunc(s.order[s.head:], func(dl *dataList) bool { return dl.gone })
		s.head, s.stale = 0, 0
	}
}

// streamDoneNotifier is implemented by event stores that want to know when
// a stream is logically complete: every request it carried was answered, so
// nothing more will be appended to it (a replay only reads it).
type streamDoneNotifier interface {
	streamDone(sessionID, streamID string)
}

// oldestIndexer is implemented by event stores that can tell the index of
// the oldest event they still hold for a stream, so that a new GET for the
// standalone stream replays what is left once older events were purged
// (see [streamableServerConn.acquireStream]).
type oldestIndexer interface {
	oldestIndex(sessionID, streamID string) (index int, ok bool)
}

// oldestIndex implements [oldestIndexer].
func (s *MemoryEventStore) oldestIndex(sessionID, streamID string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dl := s.store[sessionID][streamID]
	if dl == nil {
		return 0, false
	}
	return dl.first, true
}

// ErrEventsPurged is the error that [EventStore.After] should return if the event just after the
// index is no longer available.
var ErrEventsPurged = errors.New("data purged")

// errMalformedEvent is returned when an SSE event cannot be parsed due to format violations.
// This is a hard error indicating corrupted data or protocol violations, as opposed to
// transient I/O errors which may be retryable.
var errMalformedEvent = errors.New("malformed event")

// errEventTooLarge is returned by [readEventLine] when a single line would
// exceed the remaining per-event byte budget.
var errEventTooLarge = errors.New("SSE event exceeded maximum size")

// readEventLine reads a single '\n'-terminated line from r. When budget >= 0 it
// reads at most budget bytes, returning [errEventTooLarge] once that budget is
// exceeded before a newline arrives.
func readEventLine(r *bufio.Reader, budget int) ([]byte, error) {
	if budget < 0 {
		return r.ReadBytes('\n')
	}
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > budget {
			return nil, errEventTooLarge
		}
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // looking for delim
		}
		return line, err
	}
}

// After implements [EventStore.After].
func (s *MemoryEventStore) After(_ context.Context, sessionID, streamID string, index int) iter.Seq2[[]byte, error] {
	// Return the data items to yield.
	// We must copy, because dataList.removeFirst nils out slice elements.
	copyData := func() ([][]byte, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		streamMap, ok := s.store[sessionID]
		if !ok {
			return nil, fmt.Errorf("MemoryEventStore.After: unknown session ID %q", sessionID)
		}
		dl, ok := streamMap[streamID]
		if !ok {
			return nil, fmt.Errorf("MemoryEventStore.After: unknown stream ID %v in session %q", streamID, sessionID)
		}
		start := (index + 1) - dl.first
		if start < 0 {
			return nil, fmt.Errorf("MemoryEventStore.After: index %d, stream ID %v, session %q: %w",
				index, streamID, sessionID, ErrEventsPurged)
		}
		if start >= len(dl.data) {
			return nil, nil
		}
		return slices.Clone(dl.data[start:]), nil
	}

	return func(yield func([]byte, error) bool) {
		ds, err := copyData()
		if err != nil {
			yield(nil, err)
			return
		}
		for _, d := range ds {
			if !yield(d, nil) {
				return
			}
		}
	}
}

// SessionClosed implements [EventStore.SessionClosed].
func (s *MemoryEventStore) SessionClosed(_ context.Context, sessionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sm := s.store[sessionID]
	delete(s.store, sessionID)
	for _, dl := range sm {
		s.nBytes -= dl.size
		s.drop(dl)
	}
	s.validate()
	return nil
}

// purge removes data until no more than s.maxBytes bytes are in use.
// It must be called with s.mu held.
func (s *MemoryEventStore) purge() { s.purgeKeeping(0) }

// purgeKeeping removes the oldest data items, whichever streams hold
// them, until no more than s.maxBytes bytes are in use or only the keep
// newest items are left. Each removal is O(1), so an append never pays
// for more than the items it pushes out. It must be called with s.mu
// held.
func (s *MemoryEventStore) purgeKeeping(keep int) {
	for s.nBytes > s.maxBytes && len(s.order)-s.head > keep {
		dl := s.order[s.head]
		s.order[s.head] = nil // help GC
		s.head++
		if dl.gone {
			s.stale--
			continue
		}
		s.nBytes -= dl.removeFirst()
		s.forgetIfPurged(dl.streams, dl.stream, dl)
	}
	if s.head == len(s.order) {
		s.order, s.head = s.order[:0], 0
	} else if s.head > 1024 && s.head > len(s.order)/2 {
		n := copy(s.order, s.order[s.head:])
		clear(s.order[n:])
		s.order, s.head = s.order[:n], 0
	}
	s.validate()
}

// validate checks that the store's data structures are valid.
// It must be called with s.mu held.
func (s *MemoryEventStore) validate() {
	if !validateMemoryEventStore {
		return
	}
	// Check that we're accounting for the size correctly.
	n := 0
	for _, sm := range s.store {
		for _, dl := range sm {
			for _, d := range dl.data {
				n += len(d)
			}
		}
	}
	if n != s.nBytes {
		panic("sizes don't add up")
	}
	// Every item is in the append order once, after the stale entries.
	items, stale := 0, 0
	for _, dl := range s.order[s.head:] {
		if dl.gone {
			stale++
		} else {
			items++
		}
	}
	want := 0
	for _, sm := range s.store {
		for _, dl := range sm {
			want += len(dl.data)
		}
	}
	if items != want || stale != s.stale {
		panic("append order doesn't match the stored items")
	}
}

// debugString returns a string containing the state of s.
// Used in tests.
func (s *MemoryEventStore) debugString() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for i, sess := range slices.Sorted(maps.Keys(s.store)) {
		if i > 0 {
			fmt.Fprintf(&b, "; ")
		}
		sm := s.store[sess]
		for i, sid := range slices.Sorted(maps.Keys(sm)) {
			if i > 0 {
				fmt.Fprintf(&b, "; ")
			}
			dl := sm[sid]
			fmt.Fprintf(&b, "%s %s first=%d", sess, sid, dl.first)
			for _, d := range dl.data {
				fmt.Fprintf(&b, " %s", d)
			}
		}
	}
	return b.String()
}
