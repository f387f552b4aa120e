package approval

import "sync"

// hub tells waiters that approvals changed: per approval (a held call
// reports progress) and globally (approvers long-poll approvalChanged).
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
	all  chan struct{} // closed and replaced on every change
}

func newHub() *hub {
	return &hub{subs: map[string]map[chan struct{}]struct{}{}, all: make(chan struct{})}
}

// subscribe returns a channel that receives (without blocking the
// notifier) after each change of approval id.
func (h *hub) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan struct{}]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

// next returns a channel closed at the next change of any approval.
func (h *hub) next() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.all
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	close(h.all)
	h.all = make(chan struct{})
}
