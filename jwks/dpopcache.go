package jwks

import (
	"container/heap"
	"context"
	"crypto/rand"
	"sync"
	"time"
)

// DPoPMemoryCache is the in-memory DPoPReplayCache: bounded in size and in
// time, safe for concurrent use.
//
// Entries leave when they expire (their proof's iat has left the window,
// so the proof is refused as stale anyway). When the cache is full, the
// entry closest to expiry is dropped early, and from then on every proof
// expiring no later than it is refused: a proof whose jti the cache may
// have forgotten is never accepted, so a flood of proofs can make old
// proofs fail (clients make a fresh one per request) but never let a
// replay through.
type DPoPMemoryCache struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	ids   map[string]struct{}
	order expiryHeap
	floor time.Time // proofs expiring at or before it are refused
}

// NewDPoPReplayCache returns a cache of at most max entries (at least 1)
// on the clock now (nil: time.Now).
func NewDPoPReplayCache(max int, now func() time.Time) *DPoPMemoryCache {
	if max < 1 {
		max = 1
	}
	if now == nil {
		now = time.Now
	}
	return &DPoPMemoryCache{max: max, now: now, ids: make(map[string]struct{})}
}

// Remember implements DPoPReplayCache.
func (m *DPoPMemoryCache) Remember(_ context.Context, id string, expires time.Time) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.order) > 0 && m.order[0].expires.Before(now) {
		delete(m.ids, heap.Pop(&m.order).(expiryEntry).id)
	}
	if _, seen := m.ids[id]; seen {
		return false, nil
	}
	if len(m.ids) >= m.max {
		e := heap.Pop(&m.order).(expiryEntry)
		delete(m.ids, e.id)
		if e.expires.After(m.floor) {
			m.floor = e.expires
		}
	}
	if !expires.After(m.floor) {
		return false, nil
	}
	m.ids[id] = struct{}{}
	heap.Push(&m.order, expiryEntry{id: id, expires: expires})
	return true, nil
}

// Len is the number of remembered proofs.
func (m *DPoPMemoryCache) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}

type expiryEntry struct {
	id      string
	expires time.Time
}

// expiryHeap is a min-heap on expires (container/heap).
type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// RotatingNonces is a DPoPNonces for one process: a random nonce that
// changes every period; the current and the previous one are valid, so a
// client that just fetched a nonce is not refused at the turn. Servers
// with several replicas need nonces every replica takes (a shared key or
// store) instead.
type RotatingNonces struct {
	period time.Duration
	now    func() time.Time

	mu      sync.Mutex
	cur     string
	prev    string
	rotated time.Time
}

// NewRotatingNonces returns nonces that rotate every period (at least a
// second) on the clock now (nil: time.Now).
func NewRotatingNonces(period time.Duration, now func() time.Time) *RotatingNonces {
	if period < time.Second {
		period = time.Second
	}
	if now == nil {
		now = time.Now
	}
	n := &RotatingNonces{period: period, now: now}
	n.cur, n.rotated = newNonce(), now()
	return n
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return b64.EncodeToString(b[:])
}

func (n *RotatingNonces) tick() {
	now := n.now()
	switch since := now.Sub(n.rotated); {
	case since >= 2*n.period:
		n.prev, n.cur, n.rotated = "", newNonce(), now
	case since >= n.period:
		n.prev, n.cur, n.rotated = n.cur, newNonce(), now
	}
}

// Current implements DPoPNonces.
func (n *RotatingNonces) Current() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tick()
	return n.cur
}

// Valid implements DPoPNonces.
func (n *RotatingNonces) Valid(nonce string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tick()
	return nonce != "" && (nonce == n.cur || nonce == n.prev)
}
