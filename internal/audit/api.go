package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// API is the read side of the audit trail for the admin API and the
// auditors' SQL endpoint: it queries the backend's tables.
type API struct {
	Backend Backend
	Tables  Tables
	// Keys are the checkpoint public keys by node (nil: signatures are
	// not checked, only chain links and hashes).
	Keys map[string]ed25519.PublicKey
	// MaxRows, Timeout and MaxMemory bound auditors' SQL. Defaults
	// 10,000, 30s and 1 GiB.
	MaxRows   int
	Timeout   time.Duration
	MaxMemory int64
	// MaxQueries bounds the auditors' SQL queries that run at once; one
	// more is refused with ErrBusy. The embedded engine runs one statement
	// at a time, so queued queries would hold up the audit trail's own
	// inserts (and the spool would grow toward its budget) for as long as
	// they all take. Default 1.
	MaxQueries int

	slotsOnce sync.Once
	slots     chan struct{}
}

// DefaultQueryMemory is the memory one auditor's query may use by default.
const DefaultQueryMemory = 1 << 30

// ErrBusy is Query's answer while MaxQueries queries run.
var ErrBusy = errors.New("another audit query is running: retry when it ends (auditors' queries run one at a time, so that they cannot hold up the audit trail's inserts)")

func (a *API) tables() Tables { return a.Tables.withDefaults() }

// Events lists events; see [Events].
func (a *API) Events(ctx context.Context, f Filter, asc bool, first int, after string) (*Page, error) {
	return Events(ctx, a.Backend, a.tables().Events, f, asc, first, after)
}

// Stats aggregates request events; see [Stats].
func (a *API) Stats(ctx context.Context, groupBy []string, interval time.Duration, f Filter) ([]Stat, error) {
	return Stats(ctx, a.Backend, a.tables().Events, groupBy, interval, f)
}

// Query runs an auditor's read-only SQL; see [Query].
func (a *API) Query(ctx context.Context, sql string) (*Result, error) {
	o := QueryOptions{MaxRows: a.MaxRows, Timeout: a.Timeout, MaxMemory: a.MaxMemory}
	if o.MaxRows <= 0 {
		o.MaxRows = 10000
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxMemory <= 0 {
		o.MaxMemory = DefaultQueryMemory
	}
	a.slotsOnce.Do(func() { a.slots = make(chan struct{}, max(a.MaxQueries, 1)) })
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	default:
		return nil, ErrBusy
	}
	return Query(ctx, a.Backend, sql, o)
}

// Verify checks the hash chain of node, or of every node when node is "".
func (a *API) Verify(ctx context.Context, node string) ([]*VerifyReport, error) {
	nodes := []string{node}
	if node == "" {
		var err error
		if nodes, err = Nodes(ctx, a.Backend, a.tables().Events); err != nil {
			return nil, err
		}
	}
	var out []*VerifyReport
	for _, n := range nodes {
		r, err := Verify(ctx, a.Backend, a.Tables, n, a.Keys[n])
		if err != nil {
			return nil, err
		}
		if node != "" && r.Events == 0 && r.Checkpoints == 0 && len(r.Problems) == 0 {
			// Nothing of that name: a mistyped node would read as a
			// chain verified.
			known, err := Nodes(ctx, a.Backend, a.tables().Events)
			if err != nil {
				return nil, err
			}
			return nil, &UnknownNodeError{Node: node, Known: known}
		}
		out = append(out, r)
	}
	return out, nil
}

// UnknownNodeError is Verify's answer for a node that recorded no events
// and no checkpoints.
type UnknownNodeError struct {
	Node  string
	Known []string // the nodes that recorded events
}

func (e *UnknownNodeError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("no audit events or checkpoints from node %q: the audit trail is empty", e.Node)
	}
	return fmt.Sprintf("no audit events or checkpoints from node %q (nodes with events: %s)", e.Node, strings.Join(e.Known, ", "))
}
